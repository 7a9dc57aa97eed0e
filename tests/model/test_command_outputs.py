"""``--out`` that exists already: no model command replaces a previous run or the shipped weights.

A site calibrating and evaluating again and again with the same ``--out`` lost the earlier
checkpoint or report without a word, and ``calibrate``/``average`` wrote over
``mammocad/model/weights/demo.pt`` when told to. They now refuse before any work, unless
``--overwrite`` says the earlier file may go; the package's weights folder is never written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tomlkit
import torch

from mammocad.model.checkpoint import DEMO_WEIGHTS, save_checkpoint
from mammocad.model.commands import outputs
from mammocad.model.detector import build_detector
from mammocad.model.standardise import PreprocessSpec
from tests.model.conftest import TINY_META, TINY_SPEC
from tests.model.in_process import run_main
from tests.model.test_train import tiny_config


@pytest.fixture(autouse=True)
def _logging(logging_restored: None) -> None:
    """Commands run in this process: see conftest's ``logging_restored``."""


@pytest.fixture(scope="module")
def coarse_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny test network working at 1 mm, so that it reads a 1-mm synthetic study in seconds."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "coarse.pt"
    return save_checkpoint(path, build_detector(TINY_SPEC), TINY_SPEC, PreprocessSpec(working_spacing_mm=1.0),
                           TINY_META)


@pytest.fixture(scope="module")
def one_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mammocad.model.synth import generate_dataset

    folder = tmp_path_factory.mktemp("synth") / "site"
    generate_dataset(folder, 1, seed=4, spacing_mm=1.0, progress=False)
    return folder




def test_evaluate_keeps_an_earlier_report_unless_told_to_replace_it(
        tmp_path: Path, coarse_checkpoint: Path, one_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval"
    out.mkdir()
    (out / "metrics.json").write_text('{"earlier": true}')
    argv = ["model", "evaluate", "--data", str(one_study), "--weights", str(coarse_checkpoint), "--out", str(out),
            "--device", "cpu", "--bootstrap", "5"]
    code, err = run_main(argv, capsys)
    assert code == 2 and f"--out {out} holds a previous run (metrics.json)" in err and "--overwrite" in err
    assert (out / "metrics.json").read_text() == '{"earlier": true}'
    code, err = run_main([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert "earlier" not in (out / "metrics.json").read_text() and (out / "froc.png").is_file()


def test_calibrate_and_average_never_replace_a_checkpoint_file_unasked_nor_the_shipped_weights(
        tmp_path: Path, coarse_checkpoint: Path, one_study: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    earlier = tmp_path / "site.pt"
    earlier.write_bytes(b"an earlier calibration")
    calibrate = ["model", "calibrate", "--data", str(one_study), "--weights", str(coarse_checkpoint),
                 "--device", "cpu", "--out"]
    code, err = run_main([*calibrate, str(earlier)], capsys)
    assert code == 2 and f"--out {earlier} exists already" in err and "--overwrite" in err
    average = ["model", "average", "--weights", str(coarse_checkpoint), "--weights", str(coarse_checkpoint), "--out"]
    code, err = run_main([*average, str(earlier)], capsys)
    assert code == 2 and "exists already" in err
    assert earlier.read_bytes() == b"an earlier calibration"
    code, err = run_main([*average, str(earlier), "--overwrite"], capsys)
    assert code == 0, err
    assert earlier.read_bytes() != b"an earlier calibration"

    # A stand-in for the package's weights folder: were the guard broken, this test must not clobber demo.pt.
    assert outputs.SHIPPED_WEIGHTS_DIR == DEMO_WEIGHTS.parent
    monkeypatch.setattr(outputs, "SHIPPED_WEIGHTS_DIR", tmp_path / "package-weights")
    shipped = tmp_path / "package-weights" / "demo.pt"
    shipped.parent.mkdir()
    shipped.write_bytes(b"the shipped weights")
    for argv in ([*calibrate, str(shipped), "--overwrite"], [*average, str(shipped), "--overwrite"],
                 [*calibrate, str(shipped.parent / "site.pt")]):
        code, err = run_main(argv, capsys)
        assert code == 2 and "weights folder" in err and "which no command writes" in err, argv
    assert shipped.read_bytes() == b"the shipped weights"
    assert not (shipped.parent / "site.pt").exists()


def test_train_keeps_a_previous_run_and_an_existing_release_file_unless_told(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    raw = tiny_config(tmp_path / "synth")
    config = tmp_path / "site.toml"
    config.write_text(tomlkit.dumps(raw))
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes(b"last week's model")
    argv = ["model", "train", "--config", str(config), "--out", str(run), "--device", "cpu", "--no-progress"]
    code, err = run_main(argv, capsys)
    assert code == 2 and f"--out {run} holds a previous run (model.pt)" in err
    monkeypatch.setattr(outputs, "SHIPPED_WEIGHTS_DIR", tmp_path / "package-weights")
    code, err = run_main([*argv[:4], "--out", str(tmp_path / "package-weights" / "run"), "--device", "cpu"], capsys)
    assert code == 2 and "weights folder" in err
    release = tmp_path / "released.pt"
    release.write_bytes(b"the shipped file")
    config.write_text(tomlkit.dumps({**raw, "release_path": str(release)}))
    code, err = run_main([*argv[:4], "--out", str(tmp_path / "new-run"), "--device", "cpu"], capsys)
    assert code == 2 and f"release_path {release} exists" in err and "--overwrite" in err
    assert (run / "model.pt").read_bytes() == b"last week's model" and release.read_bytes() == b"the shipped file"
    assert not (tmp_path / "synth").exists() and not (tmp_path / "new-run").exists()
