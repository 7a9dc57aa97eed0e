"""Detection and classification metrics for the calcification detector (pure numpy).

Definitions (the numbers in a model card mean exactly this):

* **Detected lesion.** A ground-truth (GT) lesion is detected when the centre of a kept
  prediction lies inside its box (edges included). ``rule="iou"`` instead asks for
  IoU >= ``iou_threshold`` (0.3 by default). A prediction is kept when its detection
  score is >= the score threshold in use.
* **Best-matching prediction.** Among the predictions that detect a lesion: with the centre
  rule, the one with the highest detection score; with the IoU rule, the highest IoU.
* **Lesion-level accuracy** = lesions detected AND whose best-matching prediction has the
  GT class / all GT lesions. Undetected lesions count as wrong. (The reference study's
  code skipped lesions with no overlapping prediction, which inflates accuracy; we don't.)
* **Malignant-lesion sensitivity** = malignant lesions detected and called malignant /
  all malignant lesions. **Lesion-level specificity** = benign lesions detected and called
  benign / all benign lesions (a missed benign lesion is not a correct "benign" call).
* **Detection sensitivity** = detected lesions / all lesions, whatever the class.
* **Breast level.** One score per breast (the detector's breast risk over all its views);
  truth is "any malignant finding". Breasts without any lesion are included as negatives.
  Accuracy, sensitivity, specificity use ``score >= threshold`` as the positive call.
  ROC AUC is the Mann–Whitney U statistic / (n_pos * n_neg) with mid-ranks, so a tie
  between a positive and a negative counts one half.
* **Image level.** One score per image: the highest detection score among its *reported*
  boxes (score >= the lesion threshold in use), 0 when none is reported, which is what a
  reader of the node's output sees. Truth is "the image has an annotated lesion". Image
  ROC AUC (calcification vs none) is the same Mann–Whitney AUC over images; images without
  any box tie at 0 and count one half against each other. Issue 9's real-data check states
  its image-level target this way.
* **Bootstrap 95% intervals** resample *breasts* with replacement (lesions and images
  travel with their breast), percentile method, seeded: the same inputs give the same
  interval.
* **FROC.** Sweeping the detection-score threshold over every distinct prediction score:
  a kept prediction is a false positive when its centre lies in no GT box of its image
  (whatever the rule, so one cluster box split in two is not punished twice); sensitivity
  = detected lesions / all lesions (any class). Sensitivity at 0.25, 0.5, 1, 2, 4 false
  positives per image is read off the curve by linear interpolation between consecutive
  operating points (as the LUNA16 evaluation does), starting from (0 FP/image, 0); where
  points share one FP rate the curve rises vertically and a rate there reads its top;
  beyond the last operating point the last sensitivity holds.
* **Operating threshold** (chosen on validation breasts, never on the test set):
  ``youden`` maximises sensitivity + specificity - 1; ``sensitivity`` takes the highest
  threshold whose sensitivity reaches ``target``. Thresholds are midpoints between
  consecutive distinct scores so that a score equal to a validation score is not on a
  knife edge; ties in J go to the higher threshold (fewer recalls).
* **Malignant cut-off** (chosen on validation lesions): a reported box is called malignant
  when its ``probability_malignant >= cut-off``. Over the validation lesions that are
  detected, with their best-matching box's probability, the cut-off maximises the share
  called with their true class; ties go to the cut-off nearest 0.5. Default 0.5 (the
  larger of the two lesion-class probabilities). With ``method="sensitivity"`` it is instead
  the highest cut-off that still calls ``target`` of those malignant lesions malignant: the
  accuracy curve is flat over a wide range, so its argmax moves with a few lesions and with
  the validation set's benign/malignant mix, while a floor on malignant calls is what a
  reader would ask for and moves only with the malignant lesions themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

BENIGN, MALIGNANT = 1, 2
FROC_FP_RATES: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)


def _boxes(a: Any) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    return arr


@dataclass(frozen=True)
class ImageTruth:
    """GT of one image. boxes: [M, 4] x1, y1, x2, y2; labels: [M] 1 benign / 2 malignant."""

    boxes: np.ndarray
    labels: np.ndarray
    breast_id: str
    breast_malignant: bool

    @classmethod
    def make(cls, boxes: Any, labels: Any, breast_id: str, breast_malignant: bool | None = None) -> ImageTruth:
        b = _boxes(boxes)
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(b) != len(lab):
            raise ValueError(f"truth has {len(b)} boxes but {len(lab)} labels")
        if breast_malignant is None:
            breast_malignant = bool(np.any(lab == MALIGNANT))
        return cls(b, lab, breast_id, bool(breast_malignant))


@dataclass(frozen=True)
class ImagePredictions:
    """Predictions of one image: boxes [N, 4], scores [N] (detection), labels [N] 1/2."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    @classmethod
    def make(cls, boxes: Any, scores: Any, labels: Any) -> ImagePredictions:
        b = _boxes(boxes)
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        if not len(b) == len(s) == len(lab):
            raise ValueError(f"predictions: {len(b)} boxes, {len(s)} scores, {len(lab)} labels differ")
        return cls(b, s, lab)

    def above(self, threshold: float) -> ImagePredictions:
        keep = self.scores >= threshold
        return ImagePredictions(self.boxes[keep], self.scores[keep], self.labels[keep])


def centres(boxes: np.ndarray) -> np.ndarray:
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)


def centre_inside(pred_boxes: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """[N_pred, N_gt] bool: the prediction's centre lies inside the GT box (edges included)."""
    c = centres(pred_boxes)[:, None, :]
    g = gt_boxes[None, :, :]
    return (c[..., 0] >= g[..., 0]) & (c[..., 0] <= g[..., 2]) & (c[..., 1] >= g[..., 1]) & (c[..., 1] <= g[..., 3])


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, M] intersection over union of two box sets."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_lesions(truth: ImageTruth, preds: ImagePredictions, *, rule: str = "centre",
                  iou_threshold: float = 0.3) -> np.ndarray:
    """For each GT lesion, the index of its best-matching prediction, or -1 when undetected.

    ``preds`` must already be filtered by the score threshold in use.
    """
    n_gt = len(truth.boxes)
    if n_gt == 0 or len(preds.boxes) == 0:
        return np.full(n_gt, -1, dtype=np.int64)
    if rule == "centre":
        hits = centre_inside(preds.boxes, truth.boxes)
        quality = np.where(hits, preds.scores[:, None], -np.inf)
    elif rule == "iou":
        overlaps = iou(preds.boxes, truth.boxes)
        hits = overlaps >= iou_threshold
        quality = np.where(hits, overlaps, -np.inf)
    else:
        raise ValueError(f"rule must be 'centre' or 'iou', got {rule!r}")
    best = np.argmax(quality, axis=0)
    return np.where(hits.any(axis=0), best, -1).astype(np.int64)


def false_positive_mask(truth: ImageTruth, preds: ImagePredictions) -> np.ndarray:
    """[N] bool: the prediction's centre lies in no GT box of the image."""
    if len(preds.boxes) == 0:
        return np.zeros(0, dtype=bool)
    if len(truth.boxes) == 0:
        return np.ones(len(preds.boxes), dtype=bool)
    # any(axis=1) of the 2-D [N, M] array is [N]; numpy's stubs also allow a scalar.
    return cast(np.ndarray, ~centre_inside(preds.boxes, truth.boxes).any(axis=1))


# Per-breast counts: the unit that the bootstrap resamples.
_COUNT_KEYS = ("lesions", "detected", "correct", "malignant", "malignant_tp", "benign", "benign_tn",
               "images", "false_positives")


@dataclass
class BreastRecord:
    """What one breast contributes to every metric."""

    breast_id: str
    malignant: bool
    score: float
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNT_KEYS, 0))
    #: (image has a lesion, image score) for each of the breast's images (module doc, "Image level").
    images: list[tuple[bool, float]] = field(default_factory=list)


def image_counts(truth: ImageTruth, preds: ImagePredictions, *, rule: str = "centre",
                 iou_threshold: float = 0.3) -> dict[str, int]:
    """Lesion-level counts of one image for kept predictions (already thresholded)."""
    match = match_lesions(truth, preds, rule=rule, iou_threshold=iou_threshold)
    detected = match >= 0
    called = np.where(detected, preds.labels[np.clip(match, 0, None)] if len(preds.labels) else 0, 0)
    correct = detected & (called == truth.labels)
    is_mal = truth.labels == MALIGNANT
    return {
        "lesions": int(len(truth.labels)),
        "detected": int(detected.sum()),
        "correct": int(correct.sum()),
        "malignant": int(is_mal.sum()),
        "malignant_tp": int((correct & is_mal).sum()),
        "benign": int((~is_mal).sum()),
        "benign_tn": int((correct & ~is_mal).sum()),
        "images": 1,
        "false_positives": int(false_positive_mask(truth, preds).sum()),
    }


def breast_records(truths: Sequence[ImageTruth], preds: Sequence[ImagePredictions],
                   breast_scores: dict[str, float], *, score_threshold: float,
                   rule: str = "centre", iou_threshold: float = 0.3) -> list[BreastRecord]:
    """Group per-image counts by breast; ``breast_scores`` maps breast_id to its risk."""
    if len(truths) != len(preds):
        raise ValueError(f"{len(truths)} truths but {len(preds)} prediction sets")
    records: dict[str, BreastRecord] = {}
    for truth, pred in zip(truths, preds, strict=True):
        if truth.breast_id not in breast_scores:
            raise KeyError(f"no breast score for breast {truth.breast_id!r}")
        rec = records.setdefault(truth.breast_id, BreastRecord(truth.breast_id, False,
                                                               float(breast_scores[truth.breast_id])))
        rec.malignant = rec.malignant or truth.breast_malignant
        reported = pred.above(score_threshold)
        counts = image_counts(truth, reported, rule=rule, iou_threshold=iou_threshold)
        for key, value in counts.items():
            rec.counts[key] += value
        rec.images.append((len(truth.labels) > 0, image_score(reported)))
    return list(records.values())


def image_score(reported: ImagePredictions) -> float:
    """The image's score for image-level AUC: its most confident reported box, 0 without one."""
    return float(reported.scores.max()) if len(reported.scores) else 0.0


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given the mean of the ranks they span."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    start = 0
    while start < len(xs):
        stop = start + 1
        while stop < len(xs) and xs[stop] == xs[start]:
            stop += 1
        ranks[order[start:stop]] = (start + stop + 1) / 2.0
        start = stop
    return ranks


def roc_auc(y_true: Any, scores: Any) -> float:
    """Mann–Whitney AUC with mid-ranks (ties count 1/2); NaN when a class is absent."""
    y = np.asarray(y_true, dtype=bool).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = midranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) for calls ``score >= threshold``; starts at (0, 0) with +inf."""
    y = np.asarray(y_true, dtype=bool).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    thresholds = np.concatenate([[np.inf], np.unique(s)[::-1]])
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    tpr = np.array([(s[y] >= t).sum() / n_pos for t in thresholds])
    fpr = np.array([(s[~y] >= t).sum() / n_neg for t in thresholds])
    return fpr, tpr, thresholds


def choose_threshold(y_true: Any, scores: Any, *, method: str = "youden", target: float = 0.9) -> float:
    """Operating threshold for ``score >= t`` chosen on validation data (see module doc)."""
    y = np.asarray(y_true, dtype=bool).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.sum() == 0 or (~y).sum() == 0:
        raise ValueError("threshold selection needs validation breasts of both classes; "
                         f"got {int(y.sum())} malignant and {int((~y).sum())} non-malignant")
    u = np.unique(s)
    candidates = np.concatenate([[min(1.0, u[-1] + 1e-6)], ((u[1:] + u[:-1]) / 2.0)[::-1], [u[0] / 2.0]])
    sens = np.array([(s[y] >= t).mean() for t in candidates])
    spec = np.array([(s[~y] < t).mean() for t in candidates])
    if method == "youden":
        return float(candidates[int(np.argmax(sens + spec - 1.0))])  # argmax: first = highest t
    if method == "sensitivity":
        ok = np.nonzero(sens >= target)[0]
        return float(candidates[ok[0]]) if len(ok) else float(candidates[-1])
    raise ValueError(f"method must be 'youden' or 'sensitivity', got {method!r}")


def choose_class_threshold(p_malignant: Any, is_malignant: Any, *, method: str = "accuracy",
                           target: float = 0.9) -> float:
    """Malignant cut-off on ``probability_malignant`` from validation lesions (see module doc).

    Why not 0.5: a detector trained with classes balanced per tile is not calibrated to the
    benign/malignant mix of whole images; the cut-off that classifies validation lesions
    best corrects that without retraining. Raises ValueError without lesions of both classes.
    """
    p = np.asarray(p_malignant, dtype=np.float64).reshape(-1)
    y = np.asarray(is_malignant, dtype=bool).reshape(-1)
    if len(p) != len(y):
        raise ValueError(f"{len(p)} probabilities but {len(y)} labels")
    if y.sum() == 0 or (~y).sum() == 0:
        raise ValueError("the malignant cut-off needs detected validation lesions of both classes; "
                         f"got {int(y.sum())} malignant and {int((~y).sum())} benign")
    u = np.unique(np.concatenate([p, [0.0, 1.0]]))
    candidates = np.concatenate([(u[1:] + u[:-1]) / 2.0, [0.5]])
    if method == "sensitivity":
        if not 0.0 < target <= 1.0:
            raise ValueError(f"the malignant-lesion sensitivity target must be in (0, 1], got {target}")
        # The k-th highest malignant probability is the highest cut-off calling k of them malignant.
        k = max(1, int(np.ceil(target * y.sum() - 1e-9)))
        kth = np.sort(p[y])[::-1][k - 1]
        below = candidates[candidates <= kth]
        return float(below.max()) if len(below) else 0.0
    if method != "accuracy":
        raise ValueError(f"the malignant cut-off method must be 'accuracy' or 'sensitivity', got {method!r}")
    correct = np.array([((p >= t) == y).sum() for t in candidates])
    best = np.nonzero(correct == correct.max())[0]
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])


def froc_curve(truths: Sequence[ImageTruth], preds: Sequence[ImagePredictions], *, rule: str = "centre",
               iou_threshold: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fp_per_image, sensitivity, thresholds), one point per distinct score, descending threshold."""
    n_images = len(truths)
    n_lesions = sum(len(t.boxes) for t in truths)
    all_scores = np.concatenate([p.scores for p in preds]) if preds else np.zeros(0)
    thresholds = np.unique(all_scores)[::-1]
    fpi = np.zeros(len(thresholds))
    sens = np.zeros(len(thresholds))
    for i, thr in enumerate(thresholds):
        fp = detected = 0
        for truth, pred in zip(truths, preds, strict=True):
            kept = pred.above(thr)
            fp += int(false_positive_mask(truth, kept).sum())
            detected += int((match_lesions(truth, kept, rule=rule, iou_threshold=iou_threshold) >= 0).sum())
        fpi[i] = fp / max(n_images, 1)
        sens[i] = _ratio(detected, n_lesions) if n_lesions else float("nan")
    return fpi, sens, thresholds


def froc_at(fpi: np.ndarray, sens: np.ndarray, rates: Sequence[float] = FROC_FP_RATES) -> dict[str, float]:
    """Sensitivity at the given FP/image rates by linear interpolation (module doc).

    ``fpi``/``sens`` are :func:`froc_curve`'s points in its order (descending threshold, so
    both never fall). The curve joins *consecutive* points: where several share one FP rate
    it climbs straight up there, and a rate on that vertical gets its top. A rate between two
    FP rates is read on the segment from the last point of the lower rate to the *first*
    point of the higher one; joining it to the higher rate's best point instead skips the
    operating points between them and reads a sensitivity the curve (and froc.png) never
    shows. LUNA16's ``np.interp`` over the raw points reads the same.
    """
    x = np.concatenate([[0.0], np.asarray(fpi, dtype=np.float64)])
    y = np.concatenate([[0.0], np.asarray(sens, dtype=np.float64)])
    out = {}
    for r in rates:
        i = int(np.searchsorted(x, r, side="right")) - 1  # the last point at or left of r
        if i == len(x) - 1 or x[i] == r:
            value = y[i]  # on a vertical (x ties: y[i] is its top), or past the curve's end
        else:
            value = y[i] + (y[i + 1] - y[i]) * (r - x[i]) / (x[i + 1] - x[i])
        out[f"{r:g}"] = float(value)
    return out


def summarise(records: Sequence[BreastRecord], threshold: float) -> dict[str, float]:
    """Every scalar metric from per-breast records (used for point estimates and bootstrap)."""
    tot = dict.fromkeys(_COUNT_KEYS, 0)
    for rec in records:
        for key in _COUNT_KEYS:
            tot[key] += rec.counts[key]
    y = np.array([r.malignant for r in records], dtype=bool)
    s = np.array([r.score for r in records], dtype=np.float64)
    call = s >= threshold
    return {
        "lesion_detection_sensitivity": _ratio(tot["detected"], tot["lesions"]),
        "lesion_accuracy": _ratio(tot["correct"], tot["lesions"]),
        "malignant_lesion_sensitivity": _ratio(tot["malignant_tp"], tot["malignant"]),
        "lesion_specificity": _ratio(tot["benign_tn"], tot["benign"]),
        "false_positives_per_image": _ratio(tot["false_positives"], tot["images"]),
        "breast_accuracy": _ratio((call == y).sum(), len(y)),
        "breast_sensitivity": _ratio((call & y).sum(), y.sum()),
        "breast_specificity": _ratio((~call & ~y).sum(), (~y).sum()),
        "breast_roc_auc": roc_auc(y, s),
        "image_roc_auc": roc_auc([has for r in records for has, _ in r.images],
                                 [score for r in records for _, score in r.images]),
    }


def bootstrap_ci(records: Sequence[BreastRecord], statistic: Callable[[Sequence[BreastRecord]], dict[str, float]],
                 *, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each statistic, resampling breasts with replacement."""
    rng = np.random.default_rng(seed)
    n = len(records)
    if n == 0:
        return {}
    draws: dict[str, list[float]] = {}
    for _ in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        for key, value in statistic([records[i] for i in idx]).items():
            draws.setdefault(key, []).append(value)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out: dict[str, tuple[float, float]] = {}
    for key, values in draws.items():
        arr = np.asarray(values, dtype=np.float64)
        arr = arr[~np.isnan(arr)]
        out[key] = (float(np.percentile(arr, lo)), float(np.percentile(arr, hi))) if len(arr) else (
            float("nan"), float("nan"))
    return out


def counts_total(records: Sequence[BreastRecord]) -> dict[str, int]:
    tot = dict.fromkeys(_COUNT_KEYS, 0)
    for rec in records:
        for key in _COUNT_KEYS:
            tot[key] += rec.counts[key]
    tot["breasts"] = len(records)
    tot["images_with_lesions"] = sum(has for r in records for has, _ in r.images)
    tot["malignant_breasts"] = sum(1 for r in records if r.malignant)
    return tot


def threshold_for_fp_rate(fpi: np.ndarray, sens: np.ndarray, thresholds: np.ndarray, max_fp_per_image: float
                          ) -> float:
    """Lowest detection-score threshold whose FP/image stays <= the budget (chosen on validation).

    Lowest, because sensitivity and lesion accuracy only grow as the threshold falls: the
    whole false-positive budget is spent on finding lesions (a threshold that merely ties
    the best validation sensitivity sits too high and generalises worse). With no point
    inside the budget the highest threshold is returned (1.0 when there are no predictions).
    """
    del sens  # monotone in the threshold: the budget alone decides
    if len(thresholds) == 0:
        return 1.0
    ok = np.nonzero(np.asarray(fpi) <= max_fp_per_image)[0]
    if len(ok) == 0:
        return float(thresholds[0])
    return float(thresholds[ok[-1]])  # thresholds descend: the last point inside is the lowest
