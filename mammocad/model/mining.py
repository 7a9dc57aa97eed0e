"""Hard-example mining: train on where the current model is wrong.

Random breast tiles rarely contain the few structures that fool a detector (vessel
crossings, dense parenchyma, skin folds), and Faster R-CNN's RoI sampler picks its
negatives at random inside a tile. Random lesion tiles, in turn, mostly show clusters the
model already finds: the faint ones it misses (amorphous, fine pleomorphic, fine-linear
clusters in dense tissue) are a small share of the lesions and so of the gradient.

So, every ``hard_negative_every`` steps, training runs the model over a seeded subset of its
own images and keeps, by the FROC's own rules (``metrics.centre_inside``):

- **hard negatives**: boxes whose centre lies in no annotated lesion (false positives);
  ``TileSampler`` centres ``hard_negative_fraction`` of all tiles on them;
- **hard positives**: annotated lesions that no box scoring ``hard_positive_max_score`` or
  more has its centre in (misses); ``TileSampler`` centres ``hard_positive_fraction`` of the
  *lesion* tiles on them.

The annotations inside such a tile are kept, so a tile is never labelled wrong. Both pools
are plain lists in the working frame, stored in the training state so a resumed run draws
the same tiles.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mammocad.model.dataset import image_probabilities
from mammocad.model.detector import DetectorSpec, inference_layout
from mammocad.model.metrics import centre_inside, centres
from mammocad.model.tiling import detect_tiled

#: A mined false positive: (image index, x centre, y centre, score).
HardNegative = tuple[int, float, float, float]
#: A mined miss: (image index, lesion index in that image, best score of a box centred in it).
HardPositive = tuple[int, int, float]


@dataclass(frozen=True)
class Mined:
    """One mining round's pools."""

    negatives: list[HardNegative] = field(default_factory=list)
    positives: list[HardPositive] = field(default_factory=list)


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


def missed_lesions(boxes: np.ndarray, scores: np.ndarray, truth: np.ndarray, max_score: float
                   ) -> list[tuple[int, float]]:
    """(lesion index, best score) of the ``truth`` boxes that no box scoring >= ``max_score``
    has its centre in: the detection rule of the FROC, so training mines what evaluation misses.
    The best score is 0.0 when no box at all is centred in the lesion."""
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64)
    if len(truth) == 0:
        return []
    if len(boxes) == 0:
        return [(j, 0.0) for j in range(len(truth))]
    best = np.where(centre_inside(boxes, truth), scores[:, None], 0.0).max(axis=0)
    return [(j, float(best[j])) for j in range(len(truth)) if best[j] < max_score]


def mine(model: torch.nn.Module, samples: Sequence[Any], spec: DetectorSpec, *, device: str,
         rng: np.random.Generator, n_images: int = 0, min_score: float = 0.3, per_image: int = 8,
         positive_max_score: float = 0.0) -> Mined:
    """False positives and misses of ``model`` on ``n_images`` samples drawn by ``rng`` (0: all).

    At most ``per_image`` false positives (the highest-scoring) per image, so one noisy image
    cannot fill the pool. Misses are collected only when ``positive_max_score`` > 0. Runs on a
    copy of the model: inference caches tensors (anchors, per-call head state) that autograd
    refuses to reuse in the next training step. The copy is laid out as ``Detector.load`` lays
    out the weights it analyses with (``detector.inference_layout``), so mining measures the
    network the node runs.
    """
    indices = np.arange(len(samples))
    if 0 < n_images < len(samples):
        # Weighted as the tile sampler draws (DataSource.weight), so a heavily drawn source is mined as often.
        indices = np.sort(rng.choice(len(samples), size=n_images, replace=False, p=image_probabilities(samples)))
    frozen = inference_layout(copy.deepcopy(model).eval())
    mined = Mined()
    for i in indices:
        s = samples[int(i)]
        det = detect_tiled(frozen, s.image, spec, device=device, amp=device.startswith("cuda"))
        # A mark on an ignored lesion (TileConfig.ignore_lesions) is no false positive.
        truth = np.concatenate([s.boxes.reshape(-1, 4), s.ignore.reshape(-1, 4)])
        found = false_positive_centres(det.boxes, det.scores, truth, min_score)
        found.sort(key=lambda f: -f[2])
        mined.negatives.extend((int(i), x, y, score) for x, y, score in found[:per_image])
        if positive_max_score > 0:
            mined.positives.extend((int(i), j, best) for j, best in
                                   missed_lesions(det.boxes, det.scores, s.boxes, positive_max_score))
    return mined
