"""Choosing the thresholds on validation predictions: lesion score, malignant cut-off, breast.

Hand-made predictions (no model), so the right thresholds are known: these check that
``evaluate.choose_thresholds`` and ``relabel`` apply the rules of ``metrics`` to a data set
the way the Detector reports it, and that [validation] sources join the held-out patients.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import matplotlib.cbook
import pytest
from matplotlib.figure import Figure

from mammocad.model import evaluate as ev_mod
from mammocad.model import metrics as m
from mammocad.model import plots, train
from mammocad.model.annotations import AnnotatedImage, AnnotatedLesion
from mammocad.model.results import ImageRef, ImageResult, Lesion, LesionClass
from tests.model.test_train import tiny_config

Box = tuple[float, float, float, float]
BOX: Box = (10.0, 10.0, 30.0, 30.0)
FAR: Box = (200.0, 200.0, 220.0, 220.0)


def _image(breast: str, view: str, truth: list[tuple[Box, str]],
           found: list[tuple[Box, float, float]]) -> tuple[AnnotatedImage, ImageResult]:
    item = AnnotatedImage(image_path=Path(f"{breast}_{view}.dcm"), laterality=breast[-1], view=view,
                          breast_id=breast, lesions=tuple(AnnotatedLesion(box=b, lesion_class=LesionClass(c))
                                                          for b, c in truth))
    ref = ImageRef(study_uid="1", series_uid="2", sop_instance_uid=f"{breast}.{view}", sop_class_uid="",
                   laterality=breast[-1], view=view, rows=300, columns=300)
    lesions = tuple(Lesion(box=b, lesion_class=LesionClass.MALIGNANT if p >= 0.5 else LesionClass.BENIGN,
                           probability_malignant=p, score=s) for b, s, p in found)
    return item, ImageResult(image=ref, lesions=lesions)


def _evaluated_of(*pairs: tuple[AnnotatedImage, ImageResult]) -> ev_mod.Evaluated:
    """The data set of these images, in order (``Evaluated`` holds the two halves in parallel lists)."""
    return ev_mod.Evaluated([item for item, _ in pairs], [result for _, result in pairs])


def _evaluated() -> ev_mod.Evaluated:
    """Malignant lesions whose p(malignant) is only 0.3-0.4, benign ones at 0.1: 0.5 calls all benign."""
    pairs = [
        _image("p1_L", "CC", [(BOX, "malignant")], [(BOX, 0.9, 0.35)]),
        _image("p1_L", "MLO", [(BOX, "malignant")], [(BOX, 0.8, 0.3)]),
        _image("p2_R", "CC", [(BOX, "benign")], [(BOX, 0.9, 0.1), (FAR, 0.2, 0.9)]),
        _image("p2_R", "MLO", [(BOX, "benign")], [(BOX, 0.7, 0.12)]),
        _image("p3_L", "CC", [], [(FAR, 0.6, 0.9)]),  # a false positive on one view only
        _image("p3_L", "MLO", [], []),
        _image("p4_R", "CC", [(BOX, "malignant")], [(BOX, 0.95, 0.4)]),
        _image("p4_R", "MLO", [(BOX, "malignant")], [(BOX, 0.9, 0.38)]),
    ]
    return _evaluated_of(*pairs)


def test_thresholds_chosen_on_validation_predictions() -> None:
    ev = _evaluated()
    chosen = ev_mod.choose_thresholds(ev, risk_method="two_view", max_fp_per_image=0.125)
    # 8 images: one FP allowed. The 0.6 FP fits, the 0.2 one would make two.
    assert chosen["lesion_score_threshold"] == pytest.approx(0.6)
    assert 0.12 < chosen["malignant_threshold"] <= 0.3
    # two_view: p3_L's lone false positive counts half (0.27) against p1_L's 0.28, p4_R's 0.36.
    assert 0.27 < chosen["operating_threshold"] <= 0.28
    fixed = ev_mod.choose_thresholds(ev, risk_method="max", max_fp_per_image=0.125, class_threshold=False)
    assert fixed["malignant_threshold"] == 0.5
    # Under max the FP (0.54) outranks both malignant breasts: the best cut calls p3_L malignant.
    assert fixed["operating_threshold"] == pytest.approx((0.09 + 0.315) / 2)
    auc = {method: ev_mod.compute_report(ev, breast_threshold=0.3, lesion_threshold=0.6, risk_method=method,
                                         n_bootstrap=5)["metrics"]["breast_roc_auc"] for method in ("max", "two_view")}
    assert auc == {"max": 0.5, "two_view": 1.0}


def test_the_new_thresholds_are_counted_beside_the_checkpoints_on_the_same_images() -> None:
    """Malignant lesions at p 0.3-0.4: the old 0.5 cut-off classes only the 2 benign ones right, the
    chosen one all 6; the old breast threshold 0.5 misses both malignant breasts (risks 0.28, 0.36)."""
    from mammocad.model import calibrate as calibration

    ev = _evaluated()
    rules = train.ThresholdConfig(max_fp_per_image=0.125)
    cal = calibration.calibrate(ev, risk_method="two_view", rules=rules, n_bootstrap=0)
    right = calibration.against_previous(ev, cal, malignant_threshold=0.5, operating_threshold=0.5)
    assert right == {"lesions": calibration.RightCounts(new=6, previous=2, total=6),
                     "breasts": calibration.RightCounts(new=4, previous=2, total=4)}
    same = calibration.against_previous(ev, cal, malignant_threshold=cal.malignant_threshold,
                                        operating_threshold=cal.operating_threshold)
    assert all(c.new == c.previous for c in same.values())


def test_a_malignant_sensitivity_floor_gives_the_highest_cut_off_that_keeps_it() -> None:
    """Found malignant lesions at p 0.3, 0.35, 0.38, 0.4, benign at 0.1, 0.12: best accuracy is any
    cut in (0.12, 0.3]; a floor of 3 of 4 malignant calls allows up to 0.35, one malignant lesion
    fewer called."""
    from mammocad.model import calibrate as calibration

    ev = _evaluated()
    by_accuracy = calibration.calibrate(ev, risk_method="two_view", n_bootstrap=0,
                                        rules=train.ThresholdConfig(max_fp_per_image=0.125))
    floor = train.ThresholdConfig(max_fp_per_image=0.125, class_method="sensitivity", class_target_sensitivity=0.75)
    by_floor = calibration.calibrate(ev, risk_method="two_view", rules=floor, n_bootstrap=0)
    assert by_accuracy.malignant_threshold == pytest.approx(0.21)
    assert by_floor.malignant_threshold == pytest.approx(0.325)
    assert by_floor.lesion_score_threshold == by_accuracy.lesion_score_threshold
    right = calibration.against_previous(ev, by_floor, malignant_threshold=by_accuracy.malignant_threshold,
                                         operating_threshold=by_accuracy.operating_threshold)
    assert right["lesions"] == calibration.RightCounts(new=5, previous=6, total=6)


@pytest.mark.parametrize(("rules", "message"), [
    ({"class_method": "youden"}, "thresholds.class_method must be 'accuracy' or 'sensitivity'"),
    ({"class_target_sensitivity": 1.5}, "thresholds.class_target_sensitivity must be in (0, 1]"),
    ({"method": "accuracy"}, "thresholds.method must be 'youden' or 'sensitivity'"),
    ({"max_fp_per_image": -1}, "thresholds.max_fp_per_image must be >= 0"),
])
def test_threshold_rules_in_a_training_config_are_checked(tiny_data: Path, rules: dict[str, object],
                                                           message: str) -> None:
    raw = tiny_config(tiny_data)
    raw["thresholds"] = rules
    with pytest.raises(ValueError) as err:
        train.config_from_dict(raw)
    assert message in str(err.value)


def test_relabel_changes_classes_and_the_lesion_accuracy() -> None:
    ev = _evaluated()
    before = ev_mod.compute_report(ev, breast_threshold=0.3, lesion_threshold=0.6, n_bootstrap=5)
    after = ev_mod.compute_report(ev_mod.relabel(ev, 0.25), breast_threshold=0.3, lesion_threshold=0.6,
                                  n_bootstrap=5)
    assert before["metrics"]["lesion_accuracy"] == pytest.approx(2 / 6)
    assert after["metrics"]["lesion_accuracy"] == pytest.approx(1.0)
    assert [les.lesion_class for les in ev.results[0].lesions] == [LesionClass.BENIGN]  # input untouched


def test_validation_sources_join_the_held_out_patients(tiny_data: Path, tmp_path: Path) -> None:
    raw = tiny_config(tiny_data)
    plain = train.prepare_data(train.config_from_dict(raw))[1]
    raw["validation"] = {"format": "synthetic", "path": str(tmp_path / "val"), "n_studies": 1, "seed": 5, "spacing_mm": 1.0}
    cfg = train.config_from_dict(raw)
    samples, val, _ = train.prepare_data(cfg)
    extra = [i for i in val if i.breast_id.startswith("val1:")]
    assert len(extra) == 4 and len(val) == len(plain) + 4
    # Same patient ids as the training set (SYNTH_0001...), kept apart as other breasts.
    assert {i.breast_id for i in extra}.isdisjoint({s.breast_id for s in samples})


def test_misses_are_counted_by_description() -> None:
    """Which kinds are missed or called wrong, counted at the lesion threshold and printed."""
    ev = _evaluated()
    kinds = ["amorphous", "amorphous", "popcorn", "popcorn", "", "", "amorphous", "amorphous"]
    items = [dataclasses.replace(it, lesions=tuple(dataclasses.replace(les, description=kind) for les in it.lesions))
             for it, kind in zip(ev.items, kinds, strict=True)]
    # p2_R's MLO lesion (score 0.7) is missed at 0.8; the malignant ones are called benign at 0.5.
    report = ev_mod.compute_report(ev_mod.Evaluated(items, ev.results), breast_threshold=0.3, lesion_threshold=0.8,
                                   n_bootstrap=5)
    assert report["by_description"] == [
        {"description": "amorphous", "lesions": 4, "found": 4, "class_right": 0},
        {"description": "popcorn", "lesions": 2, "found": 1, "class_right": 1}]
    table = ev_mod.format_table(report)
    assert "misses at the lesion threshold, by description" in table
    assert "     4    0    4  amorphous" in table and "     2    1    0  popcorn" in table
    # One free text per lesion (INbreast ROI names) groups nothing: no table, the JSON keeps it.
    unique = [dataclasses.replace(it, lesions=tuple(dataclasses.replace(les, description=f"roi {i}")
                                                    for les in it.lesions)) for i, it in enumerate(ev.items)]
    plain = ev_mod.compute_report(ev_mod.Evaluated(unique, ev.results), breast_threshold=0.3, lesion_threshold=0.8,
                                  n_bootstrap=5)
    assert len(plain["by_description"]) == 6 and "by description" not in ev_mod.format_table(plain)



def test_a_budget_that_reports_one_class_keeps_its_lesion_threshold_and_the_default_cut_off(
        caplog: pytest.LogCaptureFixture) -> None:
    """With no false positive allowed only the malignant lesions (0.9, 0.95) are reported, above
    the 0.8 false positive: no benign one to set the cut-off against, so it stays 0.5 with a
    warning, while the lesion and breast thresholds are still the budget's (a tighter budget
    never lowers the lesion threshold)."""
    pairs = [
        _image("a_L", "CC", [(BOX, "malignant")], [(BOX, 0.95, 0.4)]),
        _image("a_L", "MLO", [(BOX, "malignant")], [(BOX, 0.9, 0.35)]),
        _image("b_R", "CC", [(BOX, "benign")], [(BOX, 0.5, 0.1)]),
        _image("b_R", "MLO", [(BOX, "benign")], [(BOX, 0.45, 0.12)]),
        _image("c_L", "CC", [], [(FAR, 0.8, 0.9)]),
        _image("c_L", "MLO", [], []),
    ]
    ev = _evaluated_of(*pairs)
    caplog.set_level("WARNING", logger="mammocad.model.evaluate")
    tight = ev_mod.choose_thresholds(ev, risk_method="two_view", max_fp_per_image=0.0)
    assert tight["lesion_score_threshold"] == pytest.approx(0.9)
    assert tight["malignant_threshold"] == 0.5
    assert 0.0 < tight["operating_threshold"] < 1.0
    warned = [r for r in caplog.records if r.getMessage() == "threshold_default"]
    assert len(warned) == 1 and getattr(warned[0], "threshold", "") == "malignant"
    assert "both classes" in str(getattr(warned[0], "reason", ""))
    loose = ev_mod.choose_thresholds(ev, risk_method="two_view", max_fp_per_image=0.2)
    assert loose["lesion_score_threshold"] == pytest.approx(0.45)
    assert 0.12 < loose["malignant_threshold"] <= 0.35
    assert len([r for r in caplog.records if r.getMessage() == "threshold_default"]) == 1


def test_froc_on_a_set_without_lesions_is_not_applicable(tmp_path: Path) -> None:
    """Lesion-free images (a site's normals): FROC sensitivity is undefined, never 0 or a bare NaN."""
    unmarked = _evaluated_of(_image("n1_L", "CC", [], []), _image("n1_L", "MLO", [], []))
    marked = _evaluated_of(_image("n1_L", "CC", [], [(FAR, 0.7, 0.2)]), _image("n1_L", "MLO", [], []))
    for ev in (unmarked, marked):
        report = ev_mod.compute_report(ev, breast_threshold=0.5, lesion_threshold=0.5, n_bootstrap=5)
        assert set(report["froc"]["sensitivity_at_fp_per_image"].values()) == {None}
        text = json.dumps(report, allow_nan=False)  # strict JSON: raises on NaN
        assert json.loads(text)["froc"]["sensitivity_at_fp_per_image"]["1"] is None
        assert "FROC sensitivity at 1 FP/image" in ev_mod.format_table(report)
        assert [ln.split()[-1] for ln in ev_mod.format_table(report).splitlines() if "FROC" in ln] == ["n/a"] * 5
        assert plots.froc_png(report, tmp_path / "froc.png").stat().st_size > 0
    assert math.isclose(ev_mod.compute_report(marked, breast_threshold=0.5, lesion_threshold=0.5,
                                              n_bootstrap=5)["metrics"]["false_positives_per_image"], 0.5)


def test_froc_rates_past_the_curve_end_are_marked_in_the_table() -> None:
    """Every mark of 4 images gives 2 FP, 0.5 FP/image: 1, 2 and 4 FP/image are never reached."""
    ev = _evaluated_of(
        _image("a_L", "CC", [(BOX, "malignant")], [(BOX, 0.9, 0.8), (FAR, 0.6, 0.2)]),
        _image("a_L", "MLO", [(BOX, "malignant")], []),
        _image("b_R", "CC", [], [(FAR, 0.7, 0.2)]),
        _image("b_R", "MLO", [], []))
    report = ev_mod.compute_report(ev, breast_threshold=0.5, lesion_threshold=0.5, n_bootstrap=5)
    # Curve: (0, 0.5) at 0.9, (0.25, 0.5) at 0.7, (0.5, 0.5) at 0.6; 2 lesions, one found.
    assert report["froc"]["curve_ends_at_fp_per_image"] == 0.5
    assert report["froc"]["sensitivity_at_fp_per_image"] == {"0.25": 0.5, "0.5": 0.5, "1": 0.5, "2": 0.5, "4": 0.5}
    lines = {ln.split(" FP/image")[0]: ln for ln in ev_mod.format_table(report).splitlines() if "FROC" in ln}
    assert [("not reached" in lines[f"FROC sensitivity at {r}"]) for r in ("0.25", "0.5", "1", "2", "4")] == [
        False, False, True, True, True]
    assert "the curve ends at 0.5 FP/image, read there" in lines["FROC sensitivity at 1"]


def test_roc_picture_encloses_the_auc_it_prints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Breasts: malignant risks 0.8, 0 and 0; others 0.5, 0, 0, 0 (ties at 0 across classes).

    Mid-rank AUC: pairs (0.8 beats all 4) + 2 x (loses to 0.5, ties 3 zeros: 1.5) = 7 of 12.
    The drawn curve (0,0) (0,1/3) (1/4,1/3) (1,1) encloses 1/4 x 1/3 + 3/4 x (1/3 + 1)/2 = 7/12.
    """
    y, s = [1, 1, 1, 0, 0, 0, 0], [0.8, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0]
    fpr, tpr, _ = m.roc_curve(y, s)
    auc = m.roc_auc(y, s)
    assert auc == pytest.approx(7 / 12)
    axes: list[Any] = []
    real_subplots = plots.plt.subplots

    def subplots(*args: Any, **kwargs: Any) -> tuple[Figure, Any]:
        fig, ax = real_subplots(*args, **kwargs)
        axes.append(ax)
        return fig, ax

    monkeypatch.setattr(plots.plt, "subplots", subplots)
    plots.roc_png({"metrics": {"breast_roc_auc": auc}, "ci95": {}, "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()}},
                  tmp_path / "roc.png")
    line = axes[0].lines[0]
    xs, ys = matplotlib.cbook.STEP_LOOKUP_MAP[line.get_drawstyle()](*line.get_data())
    drawn = float(sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in zip(xs[:-1], xs[1:], ys[:-1], ys[1:],
                                                                          strict=True)))
    assert drawn == pytest.approx(auc)
