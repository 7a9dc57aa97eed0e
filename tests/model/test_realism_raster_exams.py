"""Raster sets in the realism report's bootstrap over exams: views of one woman are one exam.

A raster file (mini-MIAS PGM, PNG) has no header, so the report used to count each image as
an exam of its own: mini-MIAS's mdb001 and mdb002, one woman's right and left films, were
resampled as independent exams and the intervals came out too narrow. The source's own names
group them now (``realism_sources``); where nothing names an exam the report says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mammocad.model.realism_report import ImageMeasure, measure_set, summarise
from mammocad.model.realism_sources import annotated_set, breast_exam, dicom_folder, raster_exam
from mammocad.model.realism_spread import BY_SOURCE, PER_IMAGE, exam_groups

# Per-image roll-off contrast of two women's films whose means are 0.109 and 0.142.
WOMAN_1 = [0.100, 0.118]
WOMAN_2 = [0.130, 0.154]


def _film(path: Path, level: int) -> None:
    """A small 8-bit film: a half-disc breast of one grey on black, with a little grain."""
    rows, cols = np.mgrid[0:200, 0:160]
    breast = (rows - 100) ** 2 + cols**2 < 140**2
    grain = np.random.default_rng(level).normal(0, 4, breast.shape)
    Image.fromarray(np.clip(np.where(breast, level + grain, 3), 0, 255).astype(np.uint8)).save(path)


@pytest.fixture
def mias_folder(tmp_path: Path) -> Path:
    """mdb001-mdb004 as mini-MIAS ships them: two women, each a right (odd) and a left (even) film."""
    for k, level in enumerate((120, 125, 170, 175), start=1):
        _film(tmp_path / f"mdb{k:03d}.pgm", level)
    (tmp_path / "Info.txt").write_text("".join(f"mdb{k:03d} F NORM\n" for k in range(1, 5)))
    return tmp_path


@pytest.mark.parametrize("source", ["plain folder", "mias reader"])
def test_mini_mias_pairs_are_one_womans_exam(mias_folder: Path, source: str) -> None:
    if source == "plain folder":
        (mias_folder / "Info.txt").unlink()  # the names alone, as a folder of converted films
        items = dicom_folder(mias_folder)
    else:
        items = annotated_set(mias_folder, "mias")
    side = summarise("real", source, measure_set(items, 0.2, progress=False))
    assert side["n_measured"] == 4 and not side["failed"]
    assert side["exams"] == {"n": 2, "grouped_by": BY_SOURCE}
    assert [im["exam"] for im in side["per_image"]] == [1, 1, 2, 2]
    assert "mias_001" not in str(side)  # the exams are numbered, never named


def test_raster_files_no_name_groups_are_an_exam_each_and_the_report_says_so(tmp_path: Path) -> None:
    for name, level in (("left.png", 120), ("right.png", 170)):
        _film(tmp_path / name, level)
    side = summarise("real", "pngs", measure_set(dicom_folder(tmp_path), 0.2, progress=False))
    assert side["exams"] == {"n": 2, "grouped_by": PER_IMAGE}
    assert PER_IMAGE == "image (no exam named)"  # the JSON's grouped_by; the table: "2 (one per image: no exam named)"


def test_named_exams_widen_the_interval_to_the_womens_means() -> None:
    """Four films of two women: the interval runs from one woman's mean to the other's, where
    four independent exams would put it inside."""
    measures = [ImageMeasure(path=f"/x/mdb{k:03d}.pgm", layout=(0.05, v), histogram=np.ones(1000),
                             named_exam=f"mias_{(k + 1) // 2:03d}")
                for k, v in enumerate(WOMAN_1 + WOMAN_2, start=1)]
    roll = summarise("real", "test", measures)["layout"]["rolloff_contrast"]
    assert roll["ci95"] == pytest.approx([0.109, 0.142], abs=1e-4)


def test_the_sources_names_give_the_exam() -> None:
    assert raster_exam(Path("a/mdb001.pgm")) == raster_exam(Path("a/MDB002.PNG")) == "mias_001"
    assert raster_exam(Path("a/mdb003.pgm")) == "mias_002"
    assert raster_exam(Path("a/mdb001.dcm")) == ""  # a DICOM file's exam is its header's
    assert raster_exam(Path("a/left.png")) == ""
    assert breast_exam("mias_001_R") == "mias_001" == breast_exam("mias_001_L@0.2 mm, 8 bits")
    assert breast_exam("case-7") == "case-7"  # a breast only: its views still go together


def test_headers_win_over_names_and_unnamed_images_stay_alone() -> None:
    ids = [("", "")] * 3
    assert exam_groups(ids, ["w1", "w1", ""]).index == (0, 0, 1)
    assert exam_groups([("", "P1"), ("", "P1")], ["a", "b"]).grouped_by == "PatientID"
    with pytest.raises(ValueError, match="one named exam per image"):
        exam_groups(ids, ["w1"])
