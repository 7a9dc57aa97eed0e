"""``mammocad analyze`` as a user runs it: a real subprocess on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mammocad.cli import main
from tests.factories import make_mammogram, write
from tests.services import torch_threads

MAMMOCAD = [sys.executable, "-m", "mammocad"]


def run_cli(args: list[str], cwd: Path, *, program: tuple[str, ...] = tuple(MAMMOCAD)) -> subprocess.CompletedProcess[str]:
    """``mammocad ARGS`` (or ``program ARGS``) in a child process with this checkout on its path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
    env["OMP_NUM_THREADS"] = torch_threads()
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return subprocess.run([*program, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def test_analyze_folder_json_reports_images_breasts_and_skips(tmp_path: Path, tiny_checkpoint: Path) -> None:
    folder = tmp_path / "in"
    write(make_mammogram(laterality="L", view="CC", rows=200, columns=160, study_uid="1.2.826.0.1.3680043.8.498.1"),
          folder / "a" / "lcc.dcm")
    write(make_mammogram(laterality="R", view="MLO", rows=200, columns=160, study_uid="1.2.826.0.1.3680043.8.498.1"),
          folder / "rmlo.dcm")
    (folder / "notes.txt").write_text("not dicom")
    proc = run_cli(["analyze", str(folder), "--json", "--weights", str(tiny_checkpoint), "--device", "cpu"], tmp_path)
    assert proc.returncode == 1, proc.stderr  # 1: a file was skipped
    report = json.loads(proc.stdout)
    assert report["model_name"] == "mammocad-test-tiny" and report["synthetic_weights"] is True
    assert "not a diagnosis" in report["notice"].lower() or "not for diagnostic use" in report["notice"]
    assert [s["path"].endswith("notes.txt") for s in report["skipped"]] == [True]
    (reason,) = [s["reason"] for s in report["skipped"]]
    assert "not a DICOM file" in reason and "force=True" not in reason  # pydicom's advice is for programmers
    (study,) = report["studies"]
    assert len(study["images"]) == 2 and all(im["error"] is None for im in study["images"])
    assert sorted(b["laterality"] for b in study["breasts"]) == ["L", "R"]
    for image in study["images"]:
        for lesion in image["lesions"]:
            x1, y1, x2, y2 = lesion["box"]
            assert 0 <= x1 < x2 <= 159 and 0 <= y1 < y2 <= 199


def test_analyze_text_output_and_clear_errors(tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str], logging_restored: None) -> None:
    path = write(make_mammogram(rows=160, columns=128), tmp_path / "one.dcm")
    proc = run_cli(["analyze", str(path), "--weights", str(tiny_checkpoint), "--device", "cpu",
                    "--out", str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "NOT a diagnosis" in proc.stdout and "SYNTHETIC" in proc.stdout and "breast L: risk" in proc.stdout
    written = sorted(p.name.split("_")[0] for p in (tmp_path / "out").iterdir())
    assert "SR" in written and "PR" in written, written  # CAD SR / TID 1500 SR, GSPS from the builders
    # The refusal ends before any model work: the same entry point in this process, as run_cli would
    # run it (no MAMMOCAD_ settings, in tmp_path), without a second child's start-up.
    for name in [k for k in os.environ if k.startswith("MAMMOCAD_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    code = main(["analyze", str(path), "--weights", str(tmp_path / "missing.pt")])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_analyze_out_keeps_names_out_of_stderr(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """A CBIS-style one-component name makes highdicom warn, quoting it; stderr (often collected
    into a log) gets the warning redacted, the written results keep the name."""
    name = "Mass-Test_P_00173_LEFT_CC"
    path = write(make_mammogram(rows=160, columns=128, patient_name=name, patient_id="CBIS-P-00173-Q"),
                 tmp_path / "one.dcm")
    proc = run_cli(["analyze", str(path), "--weights", str(tiny_checkpoint), "--device", "cpu",
                    "--out", str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if "unlikely to represent the intended person name" in line]
    assert warned and all("<redacted>" in line for line in warned), proc.stderr[-2000:]
    assert "P_00173" not in proc.stderr and "CBIS-P-00173-Q" not in proc.stderr
    import pydicom

    written = [pydicom.dcmread(p, stop_before_pixels=True) for p in (tmp_path / "out").glob("SR_*.dcm")]
    assert written and {str(ds.PatientName) for ds in written} == {name}
