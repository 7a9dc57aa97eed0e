"""Tiling: full coverage, and one box per lesion across tile seams.

The end-to-end seam test uses a tiny deterministic detector (bright connected components)
that honours the same contract as the Faster R-CNN in eval mode, so the expected boxes are
known exactly; the real network is exercised in test_inference.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torchvision.models.detection import FasterRCNN

from mammocad.model.detector import DetectorSpec, build_detector
from mammocad.model.tiling import detect_tiled, merge_detections, tile_grid, tile_mode, tile_starts


@pytest.mark.parametrize("length", [50, 128, 129, 500, 1000, 2333])
def test_tiles_cover_the_image_with_the_overlap(length: int) -> None:
    starts = tile_starts(length, 128, 16)
    assert starts[0] == 0 and (starts[-1] + 128 >= length)
    for a, b in zip(starts, starts[1:], strict=False):
        assert a + 128 - b >= 16, "neighbours must overlap by at least tile_overlap"
    assert len(tile_grid((length, 100), 128, 16)) == len(starts)


class BlobDetector(torch.nn.Module):
    """Boxes around connected bright (> 0.9) regions of each tile, centre convention."""

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for image in images:
            labels, _ = ndimage.label(image[0].numpy() > 0.9)
            boxes = [[s[1].start, s[0].start, s[1].stop - 1, s[0].stop - 1] for s in ndimage.find_objects(labels)]
            boxes_t = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
            n = len(boxes_t)
            out.append({"boxes": boxes_t, "labels": torch.full((n,), 2), "scores": torch.full((n,), 0.9),
                        "class_probs": torch.tensor([[0.1, 0.2, 0.7]]).repeat(n, 1)})
        return out


SPEC = DetectorSpec(tile_size=128, tile_overlap=32, inference_tile_size=0, box_head_size=64)


def image_with(*squares: tuple[int, int, int]) -> np.ndarray:
    image = np.full((300, 300), 0.3, dtype=np.float32)
    for x, y, size in squares:
        image[y:y + size, x:x + size] = 1.0
    return image


def test_box_on_a_seam_appears_once_with_its_true_extent() -> None:
    starts = tile_starts(300, 128, 32)
    seam = starts[1] + 5  # inside the overlap of tiles 0 and 1, cut by tile 1's left edge
    image = image_with((seam - 10, 150, 20), (40, 40, 10))
    det = detect_tiled(BlobDetector(), image, SPEC)
    assert len(det.boxes) == 2
    boxes = det.boxes[np.argsort(det.boxes[:, 0])]
    assert np.allclose(boxes[0], [40, 40, 49, 49])
    assert np.allclose(boxes[1], [seam - 10, 150, seam + 9, 169])
    assert np.allclose(det.probs[:, 2], 0.7) and np.allclose(det.scores, 0.9)


def test_lesion_wider_than_the_overlap_is_fused_into_one_box() -> None:
    starts = tile_starts(300, 128, 32)
    x = starts[1] - 20  # 60 px wide: no tile holds it whole
    det = detect_tiled(BlobDetector(), image_with((x, 60, 60)), SPEC)
    assert len(det.boxes) == 1
    assert np.allclose(det.boxes[0], [x, 60, x + 59, 119])


def test_merge_keeps_separate_lesions_and_fuses_duplicates() -> None:
    boxes = np.array([[10, 10, 30, 30], [11, 10, 31, 30], [200, 200, 220, 220], [100, 10, 121, 30]], float)
    scores = np.array([0.9, 0.6, 0.8, 0.5])
    probs = np.array([[0.1, 0.6, 0.3], [0.4, 0.3, 0.3], [0.2, 0.1, 0.7], [0.5, 0.4, 0.1]])
    cut = np.array([False, False, False, True])
    tiles = np.array([0, 1, 1, 2])
    det = merge_detections(boxes, scores, probs, cut, tiles, iou_thresh=0.3)
    assert len(det.boxes) == 3
    first = det.boxes[np.argmax(det.scores)]
    assert np.allclose(first, (boxes[0] * 0.6 + boxes[1] * 0.4)), "score-weighted fusion of the duplicate"
    assert np.isclose(det.scores.max(), 0.9)


def test_a_box_inside_a_better_one_of_the_same_tile_is_absorbed_not_fused() -> None:
    """One spot, one mark: torchvision's NMS (IoU 0.3) keeps a small box inside a large one. The
    mark takes the better score and classes, and the tighter box (the one centred on a cluster)."""
    boxes = np.array([[10, 10, 60, 60], [20, 20, 35, 35],  # small inside large, the large leads
                      [100, 100, 130, 130], [110, 110, 120, 120],  # the small one leads
                      [50, 150, 80, 180], [70, 150, 100, 180]], float)  # a third inside the other: both stay
    scores = np.array([0.9, 0.7, 0.8, 0.85, 0.6, 0.55])
    probs = np.tile([0.2, 0.5, 0.3], (6, 1))
    probs[1] = [0.1, 0.1, 0.8]
    det = merge_detections(boxes, scores, probs, np.zeros(6, bool), np.zeros(6, int), iou_thresh=0.3)
    order = np.argsort(-det.scores)
    np.testing.assert_allclose(det.scores[order], [0.9, 0.85, 0.6, 0.55])
    np.testing.assert_allclose(det.boxes[order][:2], [boxes[1], boxes[3]])  # each spot's tighter box
    np.testing.assert_allclose(det.probs[order][0], probs[0])  # with the better box's score and classes
    np.testing.assert_allclose(det.boxes[order][2:], boxes[4:])
    # From two tiles the same pair is one lesion seen twice: fused, as before.
    fused = merge_detections(boxes[:2], scores[:2], probs[:2], np.zeros(2, bool), np.array([0, 1]))
    assert len(fused.boxes) == 1 and not np.allclose(fused.boxes[0], boxes[0])


def test_background_only_image_runs_no_tile() -> None:
    model = build_detector(SPEC).eval()
    det = detect_tiled(model, np.zeros((400, 300), np.float32), SPEC)
    assert det.tiles == 0 and len(det.boxes) == 0 and det.probs.shape == (0, 3)


def test_real_network_boxes_stay_inside_the_image() -> None:
    torch.manual_seed(0)
    model = build_detector(SPEC).eval()
    image = np.random.default_rng(0).uniform(0.2, 0.8, (200, 150)).astype(np.float32)
    det = detect_tiled(model, image, SPEC, batch_size=2)
    assert det.tiles == len(tile_grid((200, 150), 128, 32))
    assert len(det.boxes) <= SPEC.detections_per_img
    if len(det.boxes):
        assert (det.boxes[:, [0, 2]] >= 0).all() and (det.boxes[:, [0, 2]] <= 149).all()
        assert (det.boxes[:, [1, 3]] >= 0).all() and (det.boxes[:, [1, 3]] <= 199).all()
        assert np.allclose(det.probs.sum(axis=1), 1, atol=1e-4)


def test_large_inference_tiles_reach_the_network_unresized() -> None:
    spec = DetectorSpec(tile_size=128, tile_overlap=32, inference_tile_size=256, rpn_post_nms_top_n_test=200)
    model = build_detector(spec).eval()
    with tile_mode(model, spec) as net:
        assert isinstance(net, FasterRCNN)
        images, _ = net.transform([torch.zeros(3, 256, 256)])
        assert tuple(images.tensors.shape[-2:]) == (256, 256) and images.image_sizes == [(256, 256)]
        assert net.rpn._post_nms_top_n["testing"] == spec.rpn_post_nms_top_n_test * 4
        assert net.backbone is model.backbone and net.roi_heads is model.roi_heads  # the same weights
        # The model itself is never switched: a model still in training keeps its training-tile transform.
        assert model.transform.min_size == (128,) and model.rpn._post_nms_top_n["testing"] == 200
    assert model.transform.min_size == (128,) and model.rpn._post_nms_top_n["testing"] == 200
    assert tile_grid((600, 600), spec.run_tile_size, 32) == [(x, y) for y in (0, 172, 344) for x in (0, 172, 344)]


def test_cpu_detection_is_float32_whatever_the_cpu() -> None:
    """The same image must get the same marks on every worker. bfloat16 autocast on CPUs with
    native bf16 once moved boxes by 10 px and dropped a mark against float32 (tiling.py)."""
    torch.manual_seed(1)
    model = build_detector(SPEC).eval()
    image = np.random.default_rng(1).uniform(0.2, 0.8, (260, 190)).astype(np.float32)
    mixed = detect_tiled(model, image, SPEC, batch_size=2, amp=True)
    full = detect_tiled(model, image, SPEC, batch_size=2, amp=False)
    assert len(full.boxes) > 0
    assert np.array_equal(mixed.boxes, full.boxes) and np.array_equal(mixed.scores, full.scores)
    assert np.array_equal(mixed.probs, full.probs)
