"""A plain --real folder in the realism report: its images are measured, its documents are not.

mini-MIAS ships Info.txt beside its films, and DICOM sets come with a README or a CSV. Such
files used to be listed as images, reported "not measured", and the command exited 1 on a
complete set. Text, documentation and hidden files are skipped now, and the report counts
them; a file that looks like an image but cannot be read is still reported (deliberately).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mammocad.model.annotations import AnnotatedImage, save_manifest
from mammocad.model.realism_report import measure_set, summarise
from mammocad.model.realism_sources import dicom_folder, scan_folder
from mammocad.model.realism_spread import BY_SOURCE, PER_IMAGE

DOCUMENTS = ("Info.txt", "README.md", "notes.csv", "Licence.pdf", ".DS_Store", "DICOMDIR")


def _film(path: Path, level: int) -> None:
    """A small 8-bit film: a half-disc breast of one grey on black, with a little grain."""
    rows, cols = np.mgrid[0:200, 0:160]
    breast = (rows - 100) ** 2 + cols**2 < 140**2
    grain = np.random.default_rng(level).normal(0, 4, breast.shape)
    Image.fromarray(np.clip(np.where(breast, level + grain, 3), 0, 255).astype(np.uint8)).save(path)


def _mias_with_documents(folder: Path) -> Path:
    """mdb001-mdb004 (two women) with the text files a downloaded set carries."""
    folder.mkdir()
    for k, level in enumerate((120, 125, 170, 175), start=1):
        _film(folder / f"mdb{k:03d}.pgm", level)
    for name in DOCUMENTS:
        (folder / name).write_text("mdb001 F NORM\n")
    return folder


def _synthetic_manifest(folder: Path) -> Path:
    """A tiny synthetic side (two PNG films in a manifest): no generation needed."""
    folder.mkdir()
    images = []
    for k, (lat, level) in enumerate((("L", 130), ("R", 160))):
        _film(folder / f"{k}.png", level)
        images.append(AnnotatedImage(image_path=folder / f"{k}.png", laterality=lat, view="MLO",
                                     breast_id=f"SYNTH_0001_{lat}", pixel_spacing_mm=0.2))
    save_manifest(folder, images)
    return folder


def test_documents_are_skipped_and_counted_unreadable_images_still_reported(tmp_path: Path) -> None:
    folder = _mias_with_documents(tmp_path / "mias")
    (folder / "scan.dcm").write_bytes(b"not a DICOM file")
    scan = scan_folder(folder)
    assert sorted(p.name for p in scan.skipped) == sorted(DOCUMENTS)
    assert [p.path.name for p in scan.images] == ["mdb001.pgm", "mdb002.pgm", "mdb003.pgm", "mdb004.pgm", "scan.dcm"]
    assert [p.path for p in dicom_folder(folder)] == [p.path for p in scan.images]
    side = summarise("real", "mias", measure_set(scan.images, 0.2, progress=False))
    assert side["n_measured"] == 4 and [Path(f["path"]).name for f in side["failed"]] == ["scan.dcm"]


def test_a_dicom_file_named_by_its_uid_is_no_document(tmp_path: Path) -> None:
    """DICOM names carry any suffix (a UID's last component): only known document suffixes skip."""
    (tmp_path / "1.2.840.113619.2.55.3.604688119.969.1268071029.320").write_bytes(b"x")
    (tmp_path / "IM0001").write_bytes(b"x")
    scan = scan_folder(tmp_path)
    assert len(scan.images) == 2 and scan.skipped == ()


def test_a_folder_of_documents_only_is_refused_with_what_it_holds(tmp_path: Path) -> None:
    (tmp_path / "Info.txt").write_text("mdb001 F NORM\n")
    with pytest.raises(FileNotFoundError, match="no image files .only 1 non-image files"):
        scan_folder(tmp_path)


def test_the_command_measures_a_mini_mias_folder_with_its_info_txt(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  logging_restored: None) -> None:
    from mammocad.cli import main

    real = _mias_with_documents(tmp_path / "mias")
    synthetic = _synthetic_manifest(tmp_path / "synth")
    argv = ["model", "realism", "--synthetic", str(synthetic), "--real", str(real), "--real-spacing", "0.2",
            "--no-detector", "--quiet"]
    assert main([*argv, "--json"]) == 0  # was 1: Info.txt and the others "not measured"
    sets = json.loads(capsys.readouterr().out)["sets"]
    assert sets["real"]["n_images"] == 4 and not sets["real"]["failed"]
    assert sets["real"]["non_image_files_skipped"] == len(DOCUMENTS)
    assert sets["synthetic"]["non_image_files_skipped"] == 0
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert f"skipped (real): {len(DOCUMENTS)} non-image files" in table and "not measured" not in table
    assert "skipped (synthetic)" not in table
    assert "2 (one per patient the source names)" in table


def test_the_table_says_plainly_that_each_image_is_an_exam(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           logging_restored: None) -> None:
    from mammocad.cli import main

    real = tmp_path / "pngs"
    real.mkdir()
    for name, level in (("left.png", 120), ("right.png", 170)):
        _film(real / name, level)
    argv = ["model", "realism", "--synthetic", str(_synthetic_manifest(tmp_path / "synth")), "--real", str(real),
            "--real-spacing", "0.2", "--no-detector", "--quiet"]
    assert main([*argv, "--json"]) == 0
    sets = json.loads(capsys.readouterr().out)["sets"]
    assert sets["real"]["exams"] == {"n": 2, "grouped_by": PER_IMAGE}  # the JSON as it was
    assert sets["synthetic"]["exams"] == {"n": 1, "grouped_by": BY_SOURCE}
    assert main(argv) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("exams"))
    assert "1 (one per patient the source names)" in row and row.endswith("2 (one per image: no exam named)")
    assert "by image" not in row
