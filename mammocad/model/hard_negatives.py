"""Hard-negative mining: where the current model fires on normal tissue, train on that.

Random breast tiles rarely contain the few structures that fool a detector (vessel
crossings, dense parenchyma, skin folds), and Faster R-CNN's RoI sampler picks its
negatives at random inside a tile. So, every ``hard_negative_every`` steps, training runs
the model over a seeded subset of its own images and keeps the boxes whose centre lies
in no annotated lesion (the FROC definition of a false positive). ``TileSampler`` then
centres ``hard_negative_fraction`` of its tiles on them; the annotations inside such a
tile are kept, so a tile is never labelled wrong.

The pool is a plain list of ``(image index, x centre, y centre, score)`` in the working
frame; it is stored in the training state so a resumed run draws the same tiles.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mammocad.model.detector import DetectorSpec
from mammocad.model.metrics import centre_inside, centres
from mammocad.model.tiling import detect_tiled

HardNegative = tuple[int, float, float, float]


def false_positive_centres(boxes: np.ndarray, scores: np.ndarray, truth: np.ndarray, min_score: float
                           ) -> list[tuple[float, float, float]]:
    """(x, y, score) of boxes scoring >= ``min_score`` whose centre is in no ``truth`` box.

    The false-positive rule of the FROC (``metrics.centre_inside``), so training mines what
    evaluation counts.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64)
    keep = (scores >= min_score) & ~centre_inside(boxes, np.asarray(truth, dtype=np.float64).reshape(-1, 4)).any(axis=1)
    xy = centres(boxes[keep])
    return [(float(x), float(y), float(sc)) for (x, y), sc in zip(xy, scores[keep], strict=True)]


def mine(model: torch.nn.Module, samples: Sequence[Any], spec: DetectorSpec, *, device: str,
         rng: np.random.Generator, n_images: int = 0, min_score: float = 0.3, per_image: int = 8
         ) -> list[HardNegative]:
    """False positives of ``model`` on ``n_images`` samples drawn by ``rng`` (0: all).

    At most ``per_image`` (the highest-scoring) per image, so one noisy image cannot fill
    the pool. Runs on a copy of the model: inference caches tensors (anchors, per-call
    head state) that autograd refuses to reuse in the next training step.
    """
    indices = np.arange(len(samples))
    if 0 < n_images < len(samples):
        indices = np.sort(rng.choice(len(samples), size=n_images, replace=False))
    frozen = copy.deepcopy(model).eval()
    pool: list[HardNegative] = []
    for i in indices:
        s = samples[int(i)]
        det = detect_tiled(frozen, s.image, spec, device=device, amp=device.startswith("cuda"))
        found = false_positive_centres(det.boxes, det.scores, s.boxes, min_score)
        found.sort(key=lambda f: -f[2])
        pool += [(int(i), x, y, score) for x, y, score in found[:per_image]]
    return pool
