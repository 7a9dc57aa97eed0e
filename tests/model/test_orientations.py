"""Test-time orientations: every orientation's boxes come back onto the spot, and a mark only
some orientations see keeps that share of its score.

The end-to-end tests use a tiny deterministic detector (bright connected components, boxes
framing their pixels with pixel centres at integers, as the network is trained) whose answer
depends on the orientation, so the fused scores are known exactly; the real network is run once
at the end.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage

from mammocad.model.detector import DetectorSpec
from mammocad.model.inference import Detector
from mammocad.model.orientations import ORIENTATIONS, Orientation, crop_window, detect_oriented, fuse
from mammocad.model.tiling import Detections, detect_tiled

SPEC = DetectorSpec(tile_size=128, tile_overlap=32, inference_tile_size=0, box_head_size=64)


class StreakDetector(torch.nn.Module):
    """Boxes around bright (> 0.9) regions: 0.9 for a square, 0.8 for one wider than tall, and
    nothing for one taller than wide. A network that has learnt an orientation looks like this."""

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for image in images:
            labels, _ = ndimage.label(image[0].numpy() > 0.9)
            boxes, scores = [], []
            for s in ndimage.find_objects(labels):
                width, height = s[1].stop - s[1].start, s[0].stop - s[0].start
                if width >= height:
                    boxes.append([s[1].start - 0.5, s[0].start - 0.5, s[1].stop - 0.5, s[0].stop - 0.5])
                    scores.append(0.9 if width == height else 0.8)
            n = len(boxes)
            out.append({"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        "labels": torch.full((n,), 2), "scores": torch.tensor(scores, dtype=torch.float32),
                        "class_probs": torch.tensor([[0.1, 0.2, 0.7]]).repeat(n, 1)})
        return out


def image_with(*rects: tuple[int, int, int, int]) -> np.ndarray:
    """A 300 x 260 image (rows x cols, not square, so a transpose that is not undone shows)."""
    image = np.full((300, 260), 0.3, dtype=np.float32)
    for x, y, w, h in rects:
        image[y:y + h, x:x + w] = 1.0
    return image


@pytest.mark.parametrize("orientation", ORIENTATIONS, ids=str)
def test_each_orientation_brings_its_box_back_onto_the_spot(orientation: Orientation) -> None:
    image = image_with((30, 200, 7, 4))
    seen = orientation.apply(image)
    ys, xs = np.nonzero(seen > 0.9)
    box = np.array([[xs.min() - 0.5, ys.min() - 0.5, xs.max() + 0.5, ys.max() + 0.5]], float)
    np.testing.assert_allclose(orientation.boxes_back(box, image.shape), [[29.5, 199.5, 36.5, 203.5]])


def test_the_eight_orientations_are_distinct() -> None:
    image = np.arange(12.0).reshape(3, 4)
    seen = {orientation.apply(image).tobytes() + bytes(orientation.apply(image).shape) for orientation in ORIENTATIONS}
    assert len(seen) == 8


def test_a_spot_keeps_its_mean_score_over_the_orientations_missing_counting_zero() -> None:
    probs = np.array([[0.1, 0.2, 0.7]])
    spot, elsewhere = np.array([[10.0, 10, 30, 30]]), np.array([[100.0, 100, 120, 120]])
    passes = [Detections(spot, np.array([0.9]), probs),
              Detections(spot + 1, np.array([0.7]), np.array([[0.3, 0.6, 0.1]])),
              Detections(np.concatenate([spot, elsewhere]), np.array([0.5, 0.8]), np.repeat(probs, 2, 0)),
              Detections.empty()]
    fused = fuse(passes, iou_thresh=0.3)
    order = np.argsort(fused.boxes[:, 0])
    np.testing.assert_allclose(fused.scores[order], [(0.9 + 0.7 + 0.5) / 4, 0.8 / 4])
    w = np.array([0.9, 0.7, 0.5]) / 2.1
    np.testing.assert_allclose(fused.boxes[order][0], w @ np.stack([spot[0], spot[0] + 1, spot[0]]))
    np.testing.assert_allclose(fused.probs[order][0], w @ np.array([[0.1, 0.2, 0.7], [0.3, 0.6, 0.1], [0.1, 0.2, 0.7]]))


def test_two_spots_of_one_orientation_are_never_fused_into_one() -> None:
    """Within an orientation the tiles were already merged: two boxes left there are two spots."""
    boxes = np.array([[10.0, 10, 30, 30], [14, 10, 34, 30]])
    fused = fuse([Detections(boxes, np.array([0.9, 0.6]), np.tile([0.1, 0.2, 0.7], (2, 1)))], iou_thresh=0.3)
    np.testing.assert_allclose(np.sort(fused.scores), [0.6, 0.9])


def test_orientation_averaging_lowers_a_mark_only_some_orientations_see() -> None:
    """A square is seen in every orientation and keeps 0.9; a horizontal streak is seen only
    where it stays horizontal: in the 4 flips (0.8), in 4 of the 8 with transposes (0.4)."""
    image = image_with((40, 50, 12, 12), (150, 220, 24, 6))
    single = detect_tiled(StreakDetector(), image, SPEC)
    for count, streak in ((4, 0.8), (8, 0.4)):
        spec = dataclasses.replace(SPEC, test_time_orientations=count)
        det = detect_oriented(StreakDetector(), image, spec)
        assert det.tiles == count * single.tiles
        order = np.argsort(det.boxes[:, 0])
        np.testing.assert_allclose(det.boxes[order], [[39.5, 49.5, 51.5, 61.5], [149.5, 219.5, 173.5, 225.5]])
        np.testing.assert_allclose(det.scores[order], [0.9, streak])
    one = detect_oriented(StreakDetector(), image, SPEC)
    np.testing.assert_allclose(one.boxes, single.boxes)
    np.testing.assert_allclose(one.scores, single.scores)


def test_orientations_in_crops_average_the_candidates_as_whole_passes_do() -> None:
    """The other orientations see only a crop around each candidate, and the candidates' scores
    are the whole passes' (test above); a mark below the candidate score gets score / count."""
    image = image_with((40, 50, 12, 12), (150, 220, 24, 6))
    single = detect_tiled(StreakDetector(), image, SPEC)
    for count, streak in ((4, 0.8), (8, 0.4)):
        spec = dataclasses.replace(SPEC, test_time_orientations=count, orientation_crop_size=64)
        det = detect_oriented(StreakDetector(), image, spec)
        # one 128-px tile per crop and orientation: far fewer than the whole passes' count * single.tiles
        assert det.tiles == single.tiles + 2 * (count - 1) < count * single.tiles
        order = np.argsort(det.boxes[:, 0])
        np.testing.assert_allclose(det.boxes[order], [[39.5, 49.5, 51.5, 61.5], [149.5, 219.5, 173.5, 225.5]])
        np.testing.assert_allclose(det.scores[order], [0.9, streak])
    spec = dataclasses.replace(SPEC, test_time_orientations=8, orientation_crop_size=64,
                               orientation_crop_min_score=0.85)
    det = detect_oriented(StreakDetector(), image, spec)
    assert det.tiles == single.tiles + 7  # the streak (0.8) is no candidate: one crop, the square's
    np.testing.assert_allclose(det.scores, [0.9, 0.8 / 8])
    capped = dataclasses.replace(spec, orientation_crop_min_score=0.5, orientation_crop_max_crops=1)
    det = detect_oriented(StreakDetector(), image, capped)
    assert det.tiles == single.tiles + 7  # both are candidates; only the higher-scoring square gets a crop
    np.testing.assert_allclose(det.scores, [0.9, 0.8 / 8])


def test_a_candidate_well_inside_an_earlier_crop_reuses_it() -> None:
    """Two squares 20 px apart share the first one's 96-px crop; one 150 px away gets its own."""
    near = image_with((100, 100, 8, 8), (120, 104, 8, 8))
    far = image_with((60, 60, 8, 8), (210, 210, 8, 8))
    spec = dataclasses.replace(SPEC, test_time_orientations=4, orientation_crop_size=96)
    for image, crops in ((near, 1), (far, 2)):
        single = detect_tiled(StreakDetector(), image, SPEC)
        det = detect_oriented(StreakDetector(), image, spec)
        assert det.tiles == single.tiles + 3 * crops
        np.testing.assert_allclose(det.scores, [0.9, 0.9])
    # With one crop allowed the near pair still shares it; of the far pair the second gets none.
    one_crop = dataclasses.replace(spec, orientation_crop_max_crops=1)
    np.testing.assert_allclose(detect_oriented(StreakDetector(), near, one_crop).scores, [0.9, 0.9])
    np.testing.assert_allclose(detect_oriented(StreakDetector(), far, one_crop).scores, [0.9, 0.9 / 4])


def test_a_crop_window_stays_inside_the_image() -> None:
    box = np.array([10.0, 280, 20, 290])
    assert crop_window(box, 64, (300, 260)) == (0, 236, 64, 300)  # shifted in at the corner
    assert crop_window(np.array([100.0, 100, 110, 110]), 64, (300, 260)) == (73, 73, 137, 137)
    assert crop_window(box, 512, (300, 260)) == (0, 0, 260, 300)  # an image smaller than the crop


def test_the_spec_takes_one_two_four_or_eight_orientations() -> None:
    with pytest.raises(ValueError, match="test_time_orientations"):
        DetectorSpec(test_time_orientations=3)
    assert DetectorSpec.from_dict({**SPEC.to_dict(), "test_time_orientations": 8}).test_time_orientations == 8
    with pytest.raises(ValueError, match="orientation_crop_size must be 0 or a multiple of 32"):
        DetectorSpec(orientation_crop_size=100)
    with pytest.raises(ValueError, match="orientation_crop_max_crops"):
        DetectorSpec(orientation_crop_max_crops=0)
    with pytest.raises(ValueError, match="orientation_crop_min_score"):
        DetectorSpec(orientation_crop_min_score=1.5)
    assert DetectorSpec.from_dict({**SPEC.to_dict(), "orientation_crop_size": 384}).orientation_crop_size == 384


def test_a_detector_with_more_orientations_is_a_new_object_on_the_same_weights() -> None:
    det = Detector.load(device="cpu").with_spec(test_time_orientations=1)  # the shipped file may use more
    rng = np.random.default_rng(3)
    image = np.clip(rng.normal(0.5, 0.08, (240, 200)), 0, 1).astype(np.float32)
    image[100:103, 90:93] = 1.0
    four = det.with_spec(test_time_orientations=4, orientation_crop_size=0)  # whole passes
    assert det.spec.test_time_orientations == 1 and four.spec.test_time_orientations == 4
    assert four.model is det.model and four.info == det.info
    once, fused = det.predict_standardised(image), four.predict_standardised(image)
    assert fused.tiles == 4 * once.tiles > 0
    assert len(fused.boxes) and (fused.boxes[:, [0, 2]] <= 199).all() and (fused.boxes[:, [1, 3]] <= 239).all()
    again = det.predict_standardised(image)  # the first detector is untouched by the second
    np.testing.assert_allclose(again.scores, once.scores)
