"""Metrics on hand-made cases whose right answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mammocad.model import metrics as m
from mammocad.model.metrics import ImagePredictions as P
from mammocad.model.metrics import ImageTruth as T

BOX_A = (10, 10, 30, 30)
BOX_B = (100, 100, 140, 140)


def _records(truths, preds, scores, thr=0.5, **kw):
    return m.breast_records(truths, preds, scores, score_threshold=thr, **kw)


def test_perfect_detection_and_classification() -> None:
    truths = [T.make([BOX_A, BOX_B], [1, 2], "p1-L"), T.make([], [], "p2-R")]
    preds = [P.make([BOX_A, BOX_B], [0.9, 0.8], [1, 2]), P.make([], [], [])]
    recs = _records(truths, preds, {"p1-L": 0.9, "p2-R": 0.1})
    s = m.summarise(recs, threshold=0.5)
    assert s["lesion_detection_sensitivity"] == 1.0
    assert s["lesion_accuracy"] == 1.0
    assert s["malignant_lesion_sensitivity"] == 1.0
    assert s["lesion_specificity"] == 1.0
    assert s["false_positives_per_image"] == 0.0
    assert s["breast_accuracy"] == s["breast_sensitivity"] == s["breast_specificity"] == 1.0
    assert s["breast_roc_auc"] == 1.0


def test_all_missed() -> None:
    truths = [T.make([BOX_A], [2], "a"), T.make([BOX_B], [1], "b")]
    preds = [P.make([], [], []), P.make([(200, 200, 210, 210)], [0.9], [1])]
    s = m.summarise(_records(truths, preds, {"a": 0.0, "b": 0.0}), threshold=0.5)
    assert s["lesion_detection_sensitivity"] == 0.0
    assert s["lesion_accuracy"] == 0.0
    assert s["malignant_lesion_sensitivity"] == 0.0
    assert s["lesion_specificity"] == 0.0
    assert s["false_positives_per_image"] == 0.5
    assert s["breast_sensitivity"] == 0.0 and s["breast_specificity"] == 1.0


def test_undetected_lesions_count_as_wrong() -> None:
    # 4 lesions: 1 detected and right, 1 detected and wrong class, 2 missed.
    truths = [T.make([BOX_A, BOX_B, (200, 10, 220, 30), (300, 10, 320, 30)], [2, 1, 2, 1], "x")]
    preds = [P.make([BOX_A, BOX_B], [0.9, 0.9], [2, 2])]
    s = m.summarise(_records(truths, preds, {"x": 1.0}), threshold=0.5)
    assert s["lesion_detection_sensitivity"] == 0.5
    assert s["lesion_accuracy"] == 0.25  # the reference study's code would have said 0.5
    assert s["malignant_lesion_sensitivity"] == 0.5
    assert s["lesion_specificity"] == 0.0


def test_centre_rule_vs_iou_rule_and_best_match() -> None:
    gt = T.make([(0, 0, 100, 100)], [2], "b")
    # Small box whose centre is inside: detected by centre, not by IoU 0.3.
    small = P.make([(40, 40, 50, 50)], [0.9], [2])
    assert m.match_lesions(gt, small).tolist() == [0]
    assert m.match_lesions(gt, small, rule="iou").tolist() == [-1]
    # Two hits: best = higher score (centre rule), whose class decides accuracy.
    two = P.make([(40, 40, 50, 50), (0, 0, 90, 90)], [0.6, 0.95], [1, 2])
    assert m.match_lesions(gt, two).tolist() == [1]
    assert m.match_lesions(gt, two, rule="iou").tolist() == [1]
    with pytest.raises(ValueError, match="rule"):
        m.match_lesions(gt, two, rule="dice")


def test_one_false_positive_and_score_threshold() -> None:
    truths = [T.make([BOX_A], [1], "n")]
    preds = [P.make([BOX_A, (50, 50, 60, 60), (70, 70, 80, 80)], [0.9, 0.7, 0.2], [1, 1, 2])]
    s = m.summarise(_records(truths, preds, {"n": 0.1}, thr=0.5), threshold=0.5)
    assert s["false_positives_per_image"] == 1.0  # the 0.2 box is below the threshold
    assert s["lesion_accuracy"] == 1.0


def test_negative_breasts_count_in_breast_metrics() -> None:
    truths = [T.make([BOX_A], [2], "m1"), T.make([], [], "n1"), T.make([], [], "n2"), T.make([], [], "n2")]
    preds = [P.make([], [], [])] * 4
    recs = _records(truths, preds, {"m1": 0.8, "n1": 0.6, "n2": 0.2})
    assert len(recs) == 3  # two images of n2 make one breast
    s = m.summarise(recs, threshold=0.5)
    assert s["breast_specificity"] == 0.5
    assert s["breast_accuracy"] == pytest.approx(2 / 3)
    assert s["breast_roc_auc"] == 1.0
    assert m.counts_total(recs)["images"] == 4


def test_image_auc_ranks_images_by_their_top_reported_mark() -> None:
    # Images with a lesion: top reported marks 0.9 and 0.6 (the 0.3 box is below the 0.5
    # threshold). Images without: 0.7, and nothing reported (0.4 is below the threshold) -> 0.
    truths = [T.make([BOX_A], [1], "b1"), T.make([BOX_B], [2], "b1"),
              T.make([], [], "b2"), T.make([], [], "b3")]
    preds = [P.make([BOX_A, BOX_B], [0.9, 0.55], [1, 1]),
             P.make([BOX_A, BOX_B], [0.6, 0.3], [2, 2]),
             P.make([BOX_A], [0.7], [1]),
             P.make([BOX_B], [0.4], [1])]
    recs = _records(truths, preds, {"b1": 0.9, "b2": 0.7, "b3": 0.0})
    assert [img for r in recs for img in r.images] == [(True, 0.9), (True, 0.6), (False, 0.7), (False, 0.0)]
    # pairs: 0.9 > 0.7, 0.9 > 0, 0.6 < 0.7, 0.6 > 0 -> 3 of 4.
    assert m.summarise(recs, threshold=0.5)["image_roc_auc"] == pytest.approx(3 / 4)
    assert m.counts_total(recs)["images_with_lesions"] == 2
    # The image is the unit, not the breast: b1 holds two images, and its breast AUC is 1.
    assert m.summarise(recs, threshold=0.5)["breast_roc_auc"] == 1.0
    # A reported mark in a lesion-free image that outscores every lesion image drags it down.
    hot = _records(truths, preds[:3] + [P.make([BOX_B], [0.99], [1])], {"b1": 0.9, "b2": 0.7, "b3": 0.99})
    assert m.summarise(hot, threshold=0.5)["image_roc_auc"] == pytest.approx(1 / 4)


def test_auc_ties_count_half() -> None:
    assert m.roc_auc([1, 0], [0.5, 0.5]) == 0.5
    # pos {0.8, 0.5}, neg {0.5, 0.1}: pairs 1 + 1 + 0.5 + 1 = 3.5 of 4.
    assert m.roc_auc([1, 1, 0, 0], [0.8, 0.5, 0.5, 0.1]) == pytest.approx(3.5 / 4)
    assert m.roc_auc([0, 0, 1], [0.9, 0.8, 0.1]) == 0.0
    assert math.isnan(m.roc_auc([1, 1], [0.1, 0.2]))
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200).astype(bool)
    s = rng.integers(0, 5, 200).astype(float)  # many ties
    brute = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a in s[y] for b in s[~y]])
    assert m.roc_auc(y, s) == pytest.approx(brute)


def test_roc_curve_endpoints() -> None:
    fpr, tpr, thr = m.roc_curve([1, 0, 1, 0], [0.9, 0.8, 0.4, 0.1])
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.isinf(thr[0])


def test_froc_interpolation() -> None:
    # Image 1: lesion A detected at score 0.9; FP at 0.8. Image 2: lesion B detected at 0.6; FP at 0.3.
    truths = [T.make([BOX_A], [2], "1"), T.make([BOX_B], [1], "2")]
    preds = [P.make([BOX_A, (50, 50, 60, 60)], [0.9, 0.8], [2, 2]),
             P.make([BOX_B, (300, 300, 310, 310)], [0.6, 0.3], [1, 1])]
    fpi, sens, thr = m.froc_curve(truths, preds)
    assert thr.tolist() == [0.9, 0.8, 0.6, 0.3]
    assert fpi.tolist() == [0.0, 0.5, 0.5, 1.0]
    assert sens.tolist() == [0.5, 0.5, 1.0, 1.0]
    at = m.froc_at(fpi, sens, rates=(0.25, 0.5, 0.75, 1.0, 4.0))
    # The curve: (0, 0) up to (0, 0.5) [0.9], across to (0.5, 0.5) [0.8], up to (0.5, 1.0)
    # [0.6], across to (1, 1) [0.3]. 0.25 lies on the flat (0, 0.5)-(0.5, 0.5): 0.5, not the
    # 0.75 of a line from (0, 0.5) to (0.5, 1.0) that skips the 0.8 operating point. At 0.5 the
    # vertical's top counts.
    assert at == {"0.25": 0.5, "0.5": 1.0, "0.75": 1.0, "1": 1.0, "4": 1.0}


def test_froc_reads_the_segment_between_consecutive_points() -> None:
    # 4 images, 4 lesions (A in images 1-3, B in image 4); FP marks far from any lesion.
    far = (300, 300, 310, 310)
    truths = [T.make([BOX_A], [2], "1"), T.make([BOX_A], [2], "2"), T.make([BOX_A], [1], "3"),
              T.make([BOX_B], [1], "4")]
    preds = [P.make([BOX_A, far], [0.9, 0.7], [2, 2]),     # TP 0.9, FP 0.7
             P.make([BOX_A, far], [0.6, 0.4], [2, 2]),     # TP 0.6, FP 0.4
             P.make([BOX_A], [0.5], [1]),                  # TP 0.5
             P.make([BOX_B, far], [0.4, 0.2], [1, 1])]     # TP 0.4 tied with image 2's FP; FP 0.2
    fpi, sens, thr = m.froc_curve(truths, preds)
    assert thr.tolist() == [0.9, 0.7, 0.6, 0.5, 0.4, 0.2]
    assert fpi.tolist() == [0.0, 0.25, 0.25, 0.25, 0.5, 0.75]
    assert sens.tolist() == [0.25, 0.25, 0.5, 0.75, 1.0, 1.0]
    at = m.froc_at(fpi, sens, rates=(0.125, 0.25, 0.375, 0.5, 0.625, 1.0))
    # 0.125: on the flat (0, 0.25)-(0.25, 0.25). 0.25: top of the vertical, 0.75.
    # 0.375: on the tie's diagonal (0.25, 0.75)-(0.5, 1.0) (one TP and one FP at 0.4: the
    # trapezoid), 0.875. 0.625: flat at 1.0. Past 0.75 FP/image (the curve's end) 1.0 holds.
    assert at == pytest.approx({"0.125": 0.25, "0.25": 0.75, "0.375": 0.875, "0.5": 1.0, "0.625": 1.0,
                                "1": 1.0})
    # LUNA16 reads np.interp over the raw points, (0, 0) first: the same figures.
    x, y = np.r_[0.0, fpi], np.r_[0.0, sens]
    assert [at[k] for k in at] == pytest.approx([float(np.interp(r, x, y)) for r in (0.125, 0.25, 0.375, 0.5,
                                                                                   0.625, 1.0)])


def test_froc_without_predictions() -> None:
    fpi, sens, thr = m.froc_curve([T.make([BOX_A], [1], "1")], [P.make([], [], [])])
    assert len(thr) == 0
    assert m.froc_at(fpi, sens)["1"] == 0.0


def test_choose_threshold() -> None:
    y = [0, 0, 0, 1, 1, 1]
    s = [0.1, 0.2, 0.6, 0.4, 0.8, 0.9]
    t = m.choose_threshold(y, s)  # Youden: best J = 2/3 at t in (0.6, 0.8] or (0.2, 0.4]; higher wins
    assert t == pytest.approx(0.7)
    t_sens = m.choose_threshold(y, s, method="sensitivity", target=1.0)
    assert t_sens == pytest.approx(0.3)
    assert all(v >= t_sens for v, lab in zip(s, y, strict=True) if lab)
    with pytest.raises(ValueError, match="both classes"):
        m.choose_threshold([1, 1], [0.2, 0.3])


def test_bootstrap_is_seeded_and_brackets_estimate() -> None:
    rng = np.random.default_rng(0)
    recs = []
    for i in range(60):
        mal = bool(i % 2)
        rec = m.BreastRecord(str(i), mal, float(rng.normal(1.0 if mal else 0.0, 1.0)))
        rec.counts.update(lesions=2, detected=1 + (i % 2), correct=1, images=2)
        recs.append(rec)
    point = m.summarise(recs, 0.5)
    ci1 = m.bootstrap_ci(recs, lambda r: m.summarise(r, 0.5), n_resamples=300, seed=7)
    ci2 = m.bootstrap_ci(recs, lambda r: m.summarise(r, 0.5), n_resamples=300, seed=7)
    assert repr(ci1) == repr(ci2)  # NaN (no benign lesions here) != NaN, so compare text
    lo, hi = ci1["breast_roc_auc"]
    assert lo < point["breast_roc_auc"] < hi and hi - lo > 0.05
    assert ci1["lesion_detection_sensitivity"][0] < 0.75 < ci1["lesion_detection_sensitivity"][1]


def test_threshold_for_fp_rate_spends_the_budget() -> None:
    fpi = np.array([0.0, 0.5, 0.5, 1.0, 2.0])
    sens = np.array([0.5, 0.5, 0.8, 0.9, 1.0])
    thr = np.array([0.9, 0.8, 0.6, 0.3, 0.1])
    assert m.threshold_for_fp_rate(fpi, sens, thr, 1.0) == 0.3
    assert m.threshold_for_fp_rate(fpi, sens, thr, 0.5) == 0.6
    assert m.threshold_for_fp_rate(fpi[1:], sens[1:], thr[1:], 0.1) == 0.8  # none inside: highest
    assert m.threshold_for_fp_rate(np.zeros(0), np.zeros(0), np.zeros(0), 1.0) == 1.0


def test_class_threshold_maximises_lesion_accuracy_and_ties_go_nearest_half() -> None:
    # Malignant lesions at 0.35, 0.45, 0.8; benign at 0.1, 0.2, 0.4: only a cut in (0.4, 0.45]
    # gets 5/6 right besides 0.3 < t <= 0.35 (also 5/6); the one nearer 0.5 wins.
    t = m.choose_class_threshold([0.35, 0.45, 0.8, 0.1, 0.2, 0.4], [1, 1, 1, 0, 0, 0])
    assert t == pytest.approx(0.425)
    assert m.choose_class_threshold([0.9, 0.95, 0.05, 0.3], [1, 1, 0, 0]) == 0.5  # separable: 0.5 stays
    low = m.choose_class_threshold([0.2, 0.25, 0.3, 0.05, 0.1], [1, 1, 1, 0, 0])
    assert 0.1 < low <= 0.2
    with pytest.raises(ValueError, match="both classes"):
        m.choose_class_threshold([0.2, 0.7], [1, 1])


def test_class_threshold_by_sensitivity_is_the_highest_cut_that_keeps_the_floor() -> None:
    p, y = [0.35, 0.45, 0.8, 0.1, 0.2, 0.4], [1, 1, 1, 0, 0, 0]
    # All three malignant called: below 0.35, between it and the next score down (0.2).
    assert m.choose_class_threshold(p, y, method="sensitivity", target=1.0) == pytest.approx(0.275)
    # Two of three (0.9 rounds up to three, 0.5 up to two): just below 0.45, above the benign 0.4.
    assert m.choose_class_threshold(p, y, method="sensitivity", target=0.9) == pytest.approx(0.275)
    assert m.choose_class_threshold(p, y, method="sensitivity", target=0.5) == pytest.approx(0.425)
    # One of three: any cut in (0.45, 0.8] keeps it; the midpoint 0.625 is above 0.5.
    assert m.choose_class_threshold(p, y, method="sensitivity", target=0.3) == pytest.approx(0.625)
    # 0.5 keeps the floor and is the highest candidate when it lies in the gap.
    assert m.choose_class_threshold([0.55, 0.9, 0.1], [1, 1, 0], method="sensitivity", target=1.0) == 0.5
    assert m.choose_class_threshold([0.0, 0.9, 0.1], [1, 1, 0], method="sensitivity", target=1.0) == 0.0
    # A tiny target still keeps one malignant lesion called malignant (the highest).
    assert m.choose_class_threshold(p, y, method="sensitivity", target=1e-12) == pytest.approx(0.625)
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        m.choose_class_threshold(p, y, method="sensitivity", target=0.0)
    with pytest.raises(ValueError, match="'accuracy' or 'sensitivity'"):
        m.choose_class_threshold(p, y, method="youden")
