"""The realism report's spread: per-image sd and the bootstrap interval over exams, on inputs
whose answer is known, and through the command.

With two exams a bootstrap over exams draws one of them twice a quarter of the time each, so
its 95% interval runs exactly from one exam's figure to the other's: the films' roll-off
(0.109 and 0.142 per exam, docs/DATASETS.md "Roll-off") is the example the report must show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from mammocad.model import realism, realism_spread, realism_stats
from mammocad.model.commands import realism as realism_cmd
from mammocad.model.realism_layout import layout_contrast
from mammocad.model.realism_report import ImageMeasure, public, realism_spec, summarise
from mammocad.model.realism_sources import default_real_folder
from mammocad.model.realism_spread import exam_groups, mean_spread, patient_key, percentile_spread
from mammocad.model.standardise import standardise
from tests.services import torch_threads

# Per-image roll-off contrast of two four-view exams whose means are the films' 0.109 and 0.142.
EXAM_A = [0.100, 0.112, 0.104, 0.120]
EXAM_B = [0.130, 0.151, 0.139, 0.148]
TWO_STUDIES = [("1.2.3.1", "SYNTH_0001")] * 4 + [("1.2.3.2", "SYNTH_0002")] * 4


def _flat_histogram(level: float) -> np.ndarray:
    """A breast of one intensity: its every percentile is ``level``'s bin centre."""
    return realism_stats.intensity_histogram(np.full((20, 20), level), np.ones((20, 20), dtype=bool))


def test_two_exams_interval_runs_from_one_exams_mean_to_the_other() -> None:
    groups = exam_groups(TWO_STUDIES)
    assert groups.n == 2 and groups.grouped_by == "StudyInstanceUID"
    spread = mean_spread(EXAM_A + EXAM_B, groups)
    assert spread["ci95"] == pytest.approx([np.mean(EXAM_A), np.mean(EXAM_B)], abs=1e-12)
    assert spread["sd"] == pytest.approx(np.std(EXAM_A + EXAM_B, ddof=1))
    assert mean_spread(EXAM_A + EXAM_B, groups) == spread  # seeded: one input, one answer


def test_three_exams_interval_spans_the_exams_and_leaves_unmeasured_images_out() -> None:
    # Each exam is drawn three times in 1/27 = 3.7% of the draws: the 2.5% ends are the extreme exams.
    ids = [("s1", "")] * 2 + [("s2", "")] * 2 + [("s3", "")] * 2
    values = [0.1, 0.1, 0.2, float("nan"), 0.6, 0.6]
    spread = mean_spread(values, exam_groups(ids))
    assert spread["ci95"] == pytest.approx([0.1, 0.6], abs=1e-12)
    assert spread["sd"] == pytest.approx(np.std([0.1, 0.1, 0.2, 0.6, 0.6], ddof=1))


def test_one_exam_has_no_interval_and_one_image_no_sd() -> None:
    assert mean_spread(EXAM_A, exam_groups(TWO_STUDIES[:4])) == {"sd": pytest.approx(np.std(EXAM_A, ddof=1)),
                                                                "ci95": None}
    assert mean_spread([0.1], exam_groups([("", "")])) == {"sd": None, "ci95": None}
    with pytest.raises(ValueError, match="one value per image"):
        mean_spread([0.1, 0.2], exam_groups([("", "")]))


def test_intensity_percentiles_are_bootstrapped_on_the_pooled_histogram() -> None:
    low, high = _flat_histogram(0.2), _flat_histogram(0.6)
    spread = percentile_spread([low, low, high, high, None], exam_groups(TWO_STUDIES[:2] + TWO_STUDIES[4:7]))
    centre_low, centre_high = 0.2005, 0.6005  # bin centres, 1/1000 wide
    for key in ("p5", "p50", "p95"):
        assert spread[key]["ci95"] == pytest.approx([centre_low, centre_high], abs=1e-9), key
        assert spread[key]["sd"] == pytest.approx(np.std([centre_low] * 2 + [centre_high] * 2, ddof=1)), key
    # The pooled figure the report prints lies inside: half the pixels dark, half bright.
    pooled = realism_stats.histogram_percentiles(np.mean([low, low, high, high], axis=0))
    assert pooled["p5"] == pytest.approx(centre_low) and pooled["p95"] == pytest.approx(centre_high)


def test_cbis_ddsm_views_are_grouped_into_their_patients_exams() -> None:
    """Each CBIS-DDSM view has its own study, and its PatientID names the view: 8 images, 2 exams."""
    ids = []
    for path in sorted(default_real_folder().rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        ids.append((str(ds.StudyInstanceUID), str(ds.PatientID)))
    assert len({s for s, _ in ids}) == 8
    groups = exam_groups(ids)
    assert groups.grouped_by == "PatientID" and groups.index == (0, 0, 0, 0, 1, 1, 1, 1)
    assert patient_key("Calc-Training_P_00005_RIGHT_MLO_1") == "P_00005" == patient_key("Mass-Test_P_00005_LEFT_CC")
    assert patient_key("SITE-123") == "SITE-123"
    assert exam_groups([("", ""), ("", "")]) == realism_spread.ExamGroups(index=(0, 1), grouped_by=realism_spread.PER_IMAGE)


def _measure(k: int, study: str, patient: str, rolloff: float, level: float) -> ImageMeasure:
    return ImageMeasure(path=f"/x/{k}.dcm", layout=(0.05, rolloff), histogram=_flat_histogram(level),
                        study_uid=study, patient_id=patient)


def test_a_sides_summary_carries_the_spread_under_new_keys_and_no_identifiers() -> None:
    measures = [_measure(k, s, p, v, 0.2 if k < 4 else 0.6) for k, ((s, p), v) in
                enumerate(zip(TWO_STUDIES, EXAM_A + EXAM_B, strict=True))]
    measures.append(ImageMeasure(path="/x/bad.dcm", error="InvalidDicomError: not DICOM"))
    side = summarise("real", "test", measures)
    roll = side["layout"]["rolloff_contrast"]
    assert roll["mean"] == pytest.approx(np.mean(EXAM_A + EXAM_B), abs=1e-4)  # unchanged meaning
    assert roll["sd"] == pytest.approx(np.std(EXAM_A + EXAM_B, ddof=1), abs=1e-4)
    assert roll["ci95"] == pytest.approx([0.109, 0.142], abs=1e-4)
    assert side["layout"]["patch_contrast"]["ci95"] == pytest.approx([0.05, 0.05])
    assert side["exams"] == {"n": 2, "grouped_by": "StudyInstanceUID"}
    assert side["intensity"]["p50"] == pytest.approx(0.2005)
    assert side["intensity_spread"]["p95"]["ci95"] == pytest.approx([0.2005, 0.6005])
    assert [im["exam"] for im in side["per_image"]] == [1, 1, 1, 1, 2, 2, 2, 2, None]
    assert "SYNTH_0001" not in json.dumps(public(side))  # identifiers stay out of the report


def _as_cbis_films(synthetic: Path, out: Path) -> None:
    """The synthetic views as CBIS-DDSM stores its films: a study per view, the view in the PatientID."""
    out.mkdir()
    for k, path in enumerate(sorted(synthetic.rglob("*.dcm"))):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[str(path)])
        side, view = path.stem.split("_")  # L_CC
        patient = int(path.parent.name.split("_")[-1])  # SYNTH_0001
        ds.PatientID = f"Mass-Test_P_{patient:05d}_{'LEFT' if side == 'L' else 'RIGHT'}_{view}"
        ds.save_as(out / f"{k}.dcm")


@pytest.mark.timeout(900)
def test_command_json_and_table_show_the_spread_over_exams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mammocad.model.synth import generate_dataset

    generate_dataset(tmp_path / "synth", 2, seed=4, size="small", spacing_mm=0.4, progress=False)
    _as_cbis_films(tmp_path / "synth", tmp_path / "real")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
    env.update(OMP_NUM_THREADS=torch_threads(), PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, "-m", "mammocad", "model", "realism", "--synthetic", str(tmp_path / "synth"),
                           "--real", str(tmp_path / "real"), "--no-detector", "--json", "--quiet"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["method"]["bootstrap"]["replicates"] == realism_spread.BOOTSTRAP_REPLICATES
    sides = report["sets"]
    assert sides["synthetic"]["exams"] == {"n": 2, "grouped_by": "StudyInstanceUID"}
    assert sides["real"]["exams"] == {"n": 2, "grouped_by": "PatientID"}
    for side in sides.values():
        images = side["per_image"]
        assert sorted(im["exam"] for im in images) == [1] * 4 + [2] * 4
        for key in ("patch_contrast", "rolloff_contrast"):
            # Two exams: the interval runs from one exam's mean to the other's.
            means = sorted(np.mean([im[key] for im in images if im["exam"] == e]) for e in (1, 2))
            assert side["layout"][key]["ci95"] == pytest.approx(means, abs=2e-4), key
            assert side["layout"][key]["sd"] == pytest.approx(np.std([im[key] for im in images], ddof=1), abs=2e-4)
        for key in ("p5", "p50", "p95"):
            low, high = side["intensity_spread"][key]["ci95"]
            assert low <= side["intensity"][key] <= high and side["intensity_spread"][key]["sd"] > 0
    realism_cmd.print_table(report)
    table = capsys.readouterr().out
    assert "exams (the bootstrap's unit)" in table and "2 (by PatientID)" in table
    roll = sides["real"]["layout"]["rolloff_contrast"]
    assert f"CI {roll['ci95'][0]:.3f}-{roll['ci95'][1]:.3f}" in table


def test_the_cbis_films_roll_off_interval_is_their_two_exams() -> None:
    """The case that was misread: the 8 films' roll-off, 0.126 pooled, is 0.109 on P_00173's exam
    and 0.142 on P_00820's (docs/DATASETS.md "Roll-off"); the report's interval must say so."""
    ids, rolloff = [], []
    for path in sorted(default_real_folder().rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        std = standardise(ds, realism_spec(0.05))
        mask = realism.breast_mask(std.image, 0.2)
        rolloff.append(layout_contrast(std.image, mask.breast, mask.usable)[1])
        ids.append((str(ds.StudyInstanceUID), str(ds.PatientID)))
    spread = mean_spread(rolloff, exam_groups(ids))
    assert spread["ci95"] == pytest.approx([np.mean(rolloff[:4]), np.mean(rolloff[4:])])
    assert spread["ci95"] == pytest.approx([0.109, 0.142], abs=0.005)
