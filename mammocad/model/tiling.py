"""Run the detector over overlapping tiles and merge what the tiles saw.

Why tiles: the model works at native detail (0.15 mm); a whole breast at that spacing is
~1900×2300 px, too big for one pass on CPU and larger than the detector's fixed input.
Tiles overlap by ``tile_overlap`` so a lesion narrower than the overlap lies whole in at
least one tile. Merging, in model-frame pixels:

1. a box touching an *inner* tile edge (a seam, not the image border) is "cut"; it is
   dropped when a box from another tile covers at least half of it (that tile saw it whole);
2. the rest are clustered across tiles (IoU ≥ ``box_nms_thresh``, or one covering half of
   the other when they come from different tiles) and fused: the box is the score-weighted
   mean (the union when pieces were cut in every tile), the score the maximum and the class
   probabilities the score-weighted mean;
3. a box from the same tile that lies for at least half of its area inside a better-scored one
   (or holds it so) is absorbed: one spot gets one mark, with the better score and classes and
   the tighter of the two boxes. Torchvision's NMS (IoU) lets a small box inside a large one
   stand, and the shipped detector put such a pair on one spot of a real film (1-131); a reader
   sees two marks, the FROC two false positives. The tighter box, not the better-scored one:
   a small box on a cluster inside a large box around it is the one centred on the cluster
   (keeping the large box lost 2 of 94 clusters of a synthetic seed for one candidate, MODEL_CARD.md).
Background tiles (almost no tissue) are skipped.

Inference tiles are ``spec.run_tile_size`` (default 768 px), larger than the training tiles:
the network is fully convolutional, so the features are the same, while a 256-px tile with
a 96-px overlap would run every pixel ~2.5 times and pay the RPN/box-head overhead per tile.
The RPN's proposal budgets (per image in torchvision) are scaled with the tile area, capped,
so a big tile keeps roughly the proposal density the model was trained with.

Precision: autocast float16 on CUDA, float32 on every CPU (and when ``amp=False``). The same
image must get the same marks on every worker of a site. bfloat16 autocast on CPUs with native
bf16 (AVX512-BF16/AMX) did not: on an H200 box (2026-12-04) the demo weights' CUDA float16 marks
matched float32 within 0.4 px and 0.005 in score, while the same box's CPU in bfloat16 moved a
cluster box by 10 px and dropped a malignant mark scored 0.567 (bench/README.md, "Precision").
It was also no faster end to end on the 2-core development machine.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from mammocad.model.detector import DetectorSpec

#: A box edge within this many pixels of a seam counts as cut by it.
CUT_MARGIN_PX = 2.0
#: Tiles with less tissue than this fraction (pixels above TISSUE_LEVEL) are skipped.
MIN_TISSUE_FRACTION = 0.005
TISSUE_LEVEL = 0.02

M = TypeVar("M", bound=torch.nn.Module)


@dataclass(frozen=True)
class Detections:
    """boxes: float[N, 4] model-frame (x1, y1, x2, y2); scores: float[N] (1 − p_background);
    probs: float[N, num_classes] softmax; tiles: number of tiles run."""

    boxes: np.ndarray
    scores: np.ndarray
    probs: np.ndarray
    tiles: int = 0

    @classmethod
    def empty(cls, num_classes: int = 3, tiles: int = 0) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros((0, num_classes)), tiles)

    def select(self, keep: np.ndarray) -> Detections:
        """The detections where ``keep`` (bool [N]) is True."""
        return Detections(self.boxes[keep], self.scores[keep], self.probs[keep], self.tiles)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread starts covering [0, length) with at least ``overlap`` between tiles."""
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    return sorted({round(i * (length - tile) / (n - 1)) for i in range(n)})


def tile_grid(shape: tuple[int, int], tile: int, overlap: int) -> list[tuple[int, int]]:
    """(x0, y0) of every tile of an image of ``shape`` (rows, cols)."""
    rows, cols = shape
    return [(x0, y0) for y0 in tile_starts(rows, tile, overlap) for x0 in tile_starts(cols, tile, overlap)]


def detect_tiled(model: torch.nn.Module, image: np.ndarray, spec: DetectorSpec, *,
                 device: str | torch.device = "cpu", batch_size: int = 4, amp: bool = True) -> Detections:
    """Run ``model`` (eval mode, from ``build_detector``) over ``image`` float32 [H, W] in [0, 1].

    Tiles are ``spec.run_tile_size`` px (one smaller tile when the whole image fits in it).
    """
    rows, cols = image.shape
    # Small images need no more than one tile of their own size (multiple of 32, >= training tile).
    tile = max(spec.tile_size, min(spec.run_tile_size, -(-max(rows, cols) // 32) * 32))
    device = torch.device(device)
    full = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(device)
    grid = [(x0, y0) for x0, y0 in tile_grid((rows, cols), tile, spec.tile_overlap)
            if _has_tissue(full[y0:y0 + tile, x0:x0 + tile])]
    if not grid:
        return Detections.empty(spec.num_classes)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    with torch.inference_mode(), autocast_for(device, amp), tile_mode(model, spec, tile) as net:
        for start in range(0, len(grid), batch_size):
            batch = grid[start:start + batch_size]
            inputs = [_tile_tensor(full, x0, y0, tile) for x0, y0 in batch]
            outputs = net(inputs)
            for index, ((x0, y0), out) in enumerate(zip(batch, outputs, strict=True)):
                boxes = out["boxes"].float().cpu().numpy().astype(np.float64)
                boxes[:, [0, 2]] += x0
                boxes[:, [1, 3]] += y0
                clip_boxes(boxes, (rows, cols))
                cut = _cut_by_seam(boxes, x0, y0, tile, rows, cols)
                tile_ids = np.full(len(boxes), start + index)
                parts.append((boxes, out["scores"].float().cpu().numpy(),
                              out["class_probs"].float().cpu().numpy(), cut, tile_ids))
    boxes, scores, probs, cut, tile_ids = (np.concatenate([p[i] for p in parts]) for i in range(5))
    merged = merge_detections(boxes, scores, probs, cut, tile_ids, iou_thresh=spec.box_nms_thresh)
    keep = np.argsort(-merged.scores, kind="stable")[: spec.detections_per_img]
    boxes = merged.boxes[keep]
    clip_boxes(boxes, (rows, cols))  # fusion arithmetic may step 1e-6 outside
    return Detections(boxes, merged.scores[keep], merged.probs[keep], tiles=len(grid))


def clip_boxes(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``boxes`` clipped in place to an image of ``shape`` (rows, cols), and returned."""
    rows, cols = shape
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, cols - 1)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, rows - 1)
    return boxes


def autocast_for(device: torch.device, amp: bool = True) -> Any:
    """float16 autocast on CUDA when ``amp``; float32 (no autocast) on CPUs (see module doc)."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


@contextmanager
def tile_mode(model: torch.nn.Module, spec: DetectorSpec, tile: int | None = None) -> Iterator[torch.nn.Module]:
    """Within the block, the network to call on ``tile``-px tiles: a torchvision Faster R-CNN that
    takes them unresized.

    That network is a view of ``model`` sharing its weights, whose transform's min/max size is the
    tile (so it never rescales) and whose RPN's per-image proposal budgets scale with the tile area
    relative to training tiles (capped at 3000 before NMS, 1000 after). ``model`` itself is never
    changed, so calls that overlap (two threads, two detectors on one set of weights) each get their
    own tile size: switching ``model``'s own settings for the block once let a small image's call
    shrink a large image's 768-px tiles that another thread was running. A model still being
    trained (validation during training) keeps its training transform. The memory layout is chosen
    where the model is loaded (``detector.inference_layout``), never here.
    """
    tile = tile or spec.run_tile_size
    transform, rpn = getattr(model, "transform", None), getattr(model, "rpn", None)
    if transform is None or rpn is None:  # not a torchvision R-CNN: nothing to adapt
        yield model
        return
    ratio = (tile / spec.tile_size) ** 2
    tile_transform, tile_rpn, net = _view(transform), _view(rpn), _view(model)
    tile_transform.min_size, tile_transform.max_size = (tile,), tile
    tile_rpn._pre_nms_top_n = {**rpn._pre_nms_top_n,
                               "testing": int(min(max(spec.rpn_pre_nms_top_n_test * ratio, 1), 3000))}
    tile_rpn._post_nms_top_n = {**rpn._post_nms_top_n,
                                "testing": int(min(max(spec.rpn_post_nms_top_n_test * ratio, 1), 1000))}
    net._modules["transform"], net._modules["rpn"] = tile_transform, tile_rpn
    yield net


def _view(module: M) -> M:
    """A copy of ``module`` sharing its parameters, buffers, hooks and submodules, whose own
    attributes and submodule slots can be set without touching ``module``."""
    other = copy.copy(module)
    other._modules = dict(module._modules)  # copy.copy would share the dict that holds the submodules
    return other


def _has_tissue(tile: torch.Tensor) -> bool:
    return bool((tile > TISSUE_LEVEL).float().mean() >= MIN_TISSUE_FRACTION)


def _tile_tensor(full: torch.Tensor, x0: int, y0: int, tile: int) -> torch.Tensor:
    """[3, tile, tile]: the gray tile replicated to 3 channels, zero-padded at the image border."""
    crop = full[y0:y0 + tile, x0:x0 + tile]
    if crop.shape != (tile, tile):
        padded = torch.zeros((tile, tile), dtype=full.dtype, device=full.device)
        padded[: crop.shape[0], : crop.shape[1]] = crop
        crop = padded
    return crop.unsqueeze(0).expand(3, tile, tile)


def _cut_by_seam(boxes: np.ndarray, x0: int, y0: int, tile: int, rows: int, cols: int) -> np.ndarray:
    """True where a box touches a tile edge that lies inside the image (a seam)."""
    m = CUT_MARGIN_PX
    cut = np.zeros(len(boxes), dtype=bool)
    if x0 > 0:
        cut |= boxes[:, 0] <= x0 + m
    if y0 > 0:
        cut |= boxes[:, 1] <= y0 + m
    if x0 + tile < cols:
        cut |= boxes[:, 2] >= x0 + tile - 1 - m
    if y0 + tile < rows:
        cut |= boxes[:, 3] >= y0 + tile - 1 - m
    return cut


def _area(b: np.ndarray) -> np.ndarray:
    return np.maximum(b[..., 2] - b[..., 0], 0) * np.maximum(b[..., 3] - b[..., 1], 0)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection areas, float[len(a), len(b)]."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    return np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)


def overlaps(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise IoU and the share of the smaller box inside the other, float[N, N] each."""
    return _overlap_ratios(_intersection(boxes, boxes), np.maximum(_area(boxes), 1e-6))


def _overlap_ratios(inter: np.ndarray, area: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`overlaps` from intersections and areas already computed."""
    return inter / (area[:, None] + area[None, :] - inter), inter / np.minimum(area[:, None], area[None, :])


def spot_pairs(boxes: np.ndarray, *, iou_thresh: float, cover: float = 0.5) -> np.ndarray:
    """bool[N, N]: the pairs that mark one spot, seen by two runs of the network (two tiles, two
    orientations): IoU at least ``iou_thresh``, or the smaller box at least ``cover`` inside the other."""
    iou, min_cover = overlaps(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
    return (iou >= iou_thresh) | (min_cover >= cover)


def merge_detections(boxes: np.ndarray, scores: np.ndarray, probs: np.ndarray, cut: np.ndarray,
                     tile_ids: np.ndarray, *, iou_thresh: float = 0.3, cover: float = 0.5) -> Detections:
    """Merge per-tile detections already shifted to model-frame coordinates (see module doc)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    if n == 0:
        return Detections.empty(probs.shape[1] if probs.ndim == 2 else 3)
    area = np.maximum(_area(boxes), 1e-6)
    inter = _intersection(boxes, boxes)
    other_tile = tile_ids[:, None] != tile_ids[None, :]
    covered = (inter / area[:, None] >= cover) & other_tile & ~cut[None, :]
    keep = ~(cut & covered.any(axis=1))
    boxes, scores, probs, cut, tile_ids = boxes[keep], scores[keep], probs[keep], cut[keep], tile_ids[keep]
    area, inter = area[keep], inter[np.ix_(keep, keep)]
    iou, min_cover = _overlap_ratios(inter, area)
    same_tile = tile_ids[:, None] == tile_ids[None, :]
    same = (iou >= iou_thresh) | (~same_tile & (min_cover >= cover))
    nested = same_tile & (min_cover >= cover) & ~same
    order = np.argsort(-scores, kind="stable")
    taken = np.zeros(len(boxes), dtype=bool)
    out_b, out_s, out_p = [], [], []
    for lead in order:
        if taken[lead]:
            continue
        members = np.where(same[lead] & ~taken)[0]
        members = np.union1d(members, [lead])
        taken[members] = True
        inside = np.where(nested[lead] & ~taken)[0]
        taken[inside] = True
        if len(inside):  # absorbed: the spot keeps the lead's score and classes, and its tightest box
            small = inside[np.argmin(area[inside])]
            if area[small] < area[lead]:
                boxes[lead] = boxes[small]
        w = scores[members] / max(float(scores[members].sum()), 1e-12)
        if cut[members].any() and len(np.unique(tile_ids[members])) > 1:
            b = boxes[members]
            fused = np.array([b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()])
        else:
            fused = (boxes[members] * w[:, None]).sum(axis=0)
        out_b.append(fused)
        out_s.append(float(scores[members].max()))
        out_p.append((probs[members] * w[:, None]).sum(axis=0))
    return Detections(np.array(out_b), np.array(out_s), np.array(out_p))
