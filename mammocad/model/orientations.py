"""Test-time orientations: run the detector on the image flipped and transposed, and average the marks.

Why: training flips and transposes every tile (``dataset.py``), so each of these orientations is
an equally valid view for the network. A spot the network scores highly in one orientation and
not in the others is the network's noise, not the image's. The fused score of a spot is its mean
score over the orientations, an orientation without a box there counting 0, so such a spot drops
while one seen in every orientation keeps its score. On 0.14.0-demo's weights 4 whole
orientations lowered the marks on the real films at every synthetic sensitivity, 2 did not, and
4 cost more than a 2-core CPU's budget (model card, "Experiments not shipped").

``DetectorSpec.test_time_orientations`` says how many (1, 2, 4 or 8) and travels in the
checkpoint, because the lesion score threshold is chosen on fused scores and means nothing
without them. Training and hard-negative mining stay at one orientation.

``DetectorSpec.orientation_crop_size`` runs the other orientations only on crops around the
first orientation's candidates (``verify_in_crops``): the same averaging where it matters, at
about half the cost of whole passes on synthetic images. 0.15.0-demo ships that way (4
orientations, 384-px crops; model card, "How they were made", stage 10).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mammocad.model.detector import DetectorSpec
from mammocad.model.frame import flip_boxes
from mammocad.model.tiling import Detections, clip_boxes, detect_tiled, spot_pairs


@dataclass(frozen=True)
class Orientation:
    """Transpose first, then mirror left-right, then top-bottom (the inverse undoes them backwards)."""

    transpose: bool = False
    flip_h: bool = False
    flip_v: bool = False

    def apply(self, image: np.ndarray) -> np.ndarray:
        out = image.T if self.transpose else image
        if self.flip_h:
            out = out[:, ::-1]
        if self.flip_v:
            out = out[::-1, :]
        return np.ascontiguousarray(out)

    def boxes_back(self, boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Boxes (x1, y1, x2, y2, pixel centres at integers, as the network was trained on:
        ``frame.flip_boxes``) found on ``apply(image)`` in the frame of ``image`` of ``shape`` (rows, cols)."""
        seen = (shape[1], shape[0]) if self.transpose else shape
        b = flip_boxes(boxes, seen, horizontal=self.flip_h, vertical=self.flip_v)
        if self.transpose:
            b = b[:, [1, 0, 3, 2]]
        return b


#: In the order they are added: the first n of these are run for ``test_time_orientations = n``.
ORIENTATIONS = (
    Orientation(),
    Orientation(flip_v=True),
    Orientation(flip_h=True),
    Orientation(flip_h=True, flip_v=True),
    Orientation(transpose=True),
    Orientation(transpose=True, flip_v=True),
    Orientation(transpose=True, flip_h=True),
    Orientation(transpose=True, flip_h=True, flip_v=True),
)


def fuse(passes: list[Detections], *, iou_thresh: float, cover: float = 0.5) -> Detections:
    """One detection per spot over several orientations' detections (already in one frame).

    A spot gathers, around its highest-scoring box, the best box of every other orientation that
    is the same spot by the rule tiles are merged with (``tiling.spot_pairs``). Its score is the
    sum of those scores over ``len(passes)``; its box and class probabilities are the
    score-weighted means.
    """
    n = len(passes)
    num_classes = passes[0].probs.shape[1] if passes and passes[0].probs.ndim == 2 else 3
    tiles = sum(p.tiles for p in passes)
    if n == 0 or not any(len(p.boxes) for p in passes):
        return Detections.empty(num_classes, tiles)
    boxes = np.concatenate([p.boxes for p in passes if len(p.boxes)])
    scores = np.concatenate([p.scores for p in passes if len(p.boxes)])
    probs = np.concatenate([p.probs for p in passes if len(p.boxes)])
    source = np.concatenate([np.full(len(p.boxes), i) for i, p in enumerate(passes) if len(p.boxes)])
    same = spot_pairs(boxes, iou_thresh=iou_thresh, cover=cover) & (source[:, None] != source[None, :])
    taken = np.zeros(len(boxes), dtype=bool)
    out_b, out_s, out_p = [], [], []
    for lead in np.argsort(-scores, kind="stable"):
        if taken[lead]:
            continue
        members = [int(lead)]
        for other in range(n):
            if other == source[lead]:
                continue
            candidates = np.where(same[lead] & ~taken & (source == other))[0]
            if len(candidates):
                members.append(int(candidates[np.argmax(scores[candidates])]))
        taken[members] = True
        box, score, prob = _one_spot(boxes[members], scores[members], probs[members], n)
        out_b.append(box)
        out_s.append(score)
        out_p.append(prob)
    order = np.argsort(-np.array(out_s), kind="stable")
    return Detections(np.array(out_b)[order], np.array(out_s)[order], np.array(out_p)[order], tiles)


def _one_spot(boxes: np.ndarray, scores: np.ndarray, probs: np.ndarray, n: int) -> tuple[np.ndarray, float, np.ndarray]:
    """One spot's marks, at most one per orientation: the score-weighted box and class
    probabilities, and the summed score over ``n`` (an orientation without a mark adds 0)."""
    w = scores / max(float(scores.sum()), 1e-12)
    return (boxes * w[:, None]).sum(axis=0), float(scores.sum()) / n, (probs * w[:, None]).sum(axis=0)


def detect_oriented(model: torch.nn.Module, image: np.ndarray, spec: DetectorSpec, *,
                    device: str | torch.device = "cpu", batch_size: int = 4, amp: bool = True) -> Detections:
    """``detect_tiled`` in each of the spec's ``test_time_orientations``, fused (module doc).

    With ``spec.orientation_crop_size`` the other orientations only see crops around the first
    one's candidates (``verify_in_crops``).
    """
    count = spec.test_time_orientations
    first = detect_tiled(model, image, spec, device=device, batch_size=batch_size, amp=amp)
    if count == 1:
        return first
    if spec.orientation_crop_size:
        fused = verify_in_crops(model, image, first, spec, device=device, batch_size=batch_size, amp=amp)
    else:
        passes = [first] + [oriented_pass(model, image, orientation, spec, device=device, batch_size=batch_size,
                                          amp=amp) for orientation in ORIENTATIONS[1:count]]
        fused = fuse(passes, iou_thresh=spec.box_nms_thresh)
    clip_boxes(fused.boxes, image.shape)  # fusion arithmetic may step 1e-6 outside
    keep = slice(0, spec.detections_per_img)
    return Detections(fused.boxes[keep], fused.scores[keep], fused.probs[keep], fused.tiles)


def verify_in_crops(model: torch.nn.Module, image: np.ndarray, first: Detections, spec: DetectorSpec, *,
                    device: str | torch.device = "cpu", batch_size: int = 4, amp: bool = True) -> Detections:
    """``first`` (the image in its own orientation) with each candidate's score averaged over the
    other orientations of a crop around it.

    Why crops: a network's lone false mark is what the other orientations remove, and that needs
    them only where the first pass marked something; a crop near a training tile's size gives
    the network about the context it was trained with, at a fraction of a whole pass. A candidate (score at
    least ``spec.orientation_crop_min_score``) is fused as in ``fuse`` with the best same-spot mark
    of each other orientation of its crop. A candidate well inside an earlier crop (a quarter of
    the crop from its inner edges) reuses that crop. Marks below the candidate score, and
    candidates that would need a crop beyond ``spec.orientation_crop_max_crops`` (which bounds
    the time), are divided by the orientation count, as a mark no other orientation saw would be.
    """
    count = spec.test_time_orientations
    boxes, scores, probs = first.boxes.copy(), first.scores / count, first.probs.copy()
    crops: list[tuple[tuple[int, int, int, int], list[Detections]]] = []
    tiles = first.tiles
    order = np.argsort(-first.scores, kind="stable")
    candidates = order[first.scores[order] >= spec.orientation_crop_min_score]
    for index in candidates:
        box = first.boxes[index]
        found = next((seen for window, seen in crops if _well_inside(box, window, image.shape)), None)
        if found is None:
            if len(crops) == spec.orientation_crop_max_crops:
                continue
            window = crop_window(box, spec.orientation_crop_size, image.shape)
            x0, y0, x1, y1 = window
            found = [oriented_pass(model, image[y0:y1, x0:x1], orientation, spec, offset=(x0, y0), device=device,
                                   batch_size=batch_size, amp=amp) for orientation in ORIENTATIONS[1:count]]
            tiles += sum(det.tiles for det in found)
            crops.append((window, found))
        members_b, members_s, members_p = [box], [first.scores[index]], [first.probs[index]]
        for det in found:
            same = spot_pairs(np.concatenate([box[None], det.boxes]), iou_thresh=spec.box_nms_thresh)[0, 1:]
            if same.any():
                best = int(np.flatnonzero(same)[np.argmax(det.scores[same])])
                members_b.append(det.boxes[best])
                members_s.append(det.scores[best])
                members_p.append(det.probs[best])
        boxes[index], scores[index], probs[index] = _one_spot(np.array(members_b), np.array(members_s),
                                                              np.array(members_p), count)
    order = np.argsort(-scores, kind="stable")
    return Detections(boxes[order], scores[order], probs[order], tiles)


def oriented_pass(model: torch.nn.Module, image: np.ndarray, orientation: Orientation, spec: DetectorSpec, *,
                  offset: tuple[int, int] = (0, 0), device: str | torch.device = "cpu", batch_size: int = 4,
                  amp: bool = True) -> Detections:
    """``detect_tiled`` on ``image`` in ``orientation``, its boxes mapped back to ``image``'s frame
    and shifted by ``offset`` (x, y: where ``image`` is a crop of a larger one)."""
    det = detect_tiled(model, orientation.apply(image), spec, device=device, batch_size=batch_size, amp=amp)
    boxes = orientation.boxes_back(det.boxes, image.shape)
    boxes[:, [0, 2]] += offset[0]
    boxes[:, [1, 3]] += offset[1]
    return Detections(boxes, det.scores, det.probs, det.tiles)


def crop_window(box: np.ndarray, size: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): a ``size``-px square centred on ``box``, shifted to lie inside an image of
    ``shape`` (rows, cols) and cut to it where the image is smaller."""
    rows, cols = shape
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0 = int(np.clip(round(cx - size / 2), 0, max(cols - size, 0)))
    y0 = int(np.clip(round(cy - size / 2), 0, max(rows - size, 0)))
    return x0, y0, min(x0 + size, cols), min(y0 + size, rows)


def _well_inside(box: np.ndarray, window: tuple[int, int, int, int], shape: tuple[int, int]) -> bool:
    """``box`` lies a quarter of the window's size from each of its edges that is not the image's."""
    x0, y0, x1, y1 = window
    rows, cols = shape
    margin = max(x1 - x0, y1 - y0) / 4
    return bool((box[0] >= x0 + margin or x0 == 0) and (box[1] >= y0 + margin or y0 == 0)
                and (box[2] <= x1 - margin or x1 == cols) and (box[3] <= y1 - margin or y1 == rows))
