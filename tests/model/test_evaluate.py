"""End to end on tiny synthetic data: ``mammocad model train`` then ``mammocad model evaluate``.

The real commands run as subprocesses (as a user runs them); the model is trained for a
few steps only, so these tests check the contracts (files, metadata, thresholds, report
shape), not detection quality. Commands whose output several tests read run once per module
(fixtures); the refusals run through the same ``mammocad.cli.main`` in this process, since
they end before any model work and a child process would only add its start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomlkit
import torch

from mammocad.model.checkpoint import load_checkpoint
from tests.model.in_process import run_main
from tests.model.test_train import tiny_config
from tests.services import torch_threads

PNG = b"\x89PNG\r\n\x1a\n"
ENV = {**os.environ, "OMP_NUM_THREADS": torch_threads()}


def _mammocad(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mammocad", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)




@pytest.fixture(autouse=True)
def _in_process_runs_leave_logging_as_it_was(logging_restored: None) -> None:
    """The refusals run ``main`` here: see conftest's ``logging_restored``."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train_cli")
    config = root / "tiny.toml"
    config.write_text(tomlkit.dumps(tiny_config(root / "data", root / "test", steps=4)))
    proc = _mammocad("model", "train", "--config", str(config), "--out", str(root / "run"), "--device", "cpu",
                     "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "not for diagnostic use" in proc.stdout
    return root


@pytest.fixture(scope="module")
def calibrated(trained: Path) -> dict[str, Path]:
    """The trained checkpoint calibrated on the pooled sets at two false-positive budgets (0 and 4),
    the first with the malignant cut-off chosen by a floor on malignant calls."""
    outs = {}
    for budget in ("0", "4"):
        out = trained / f"calibrated-{budget}.pt"
        proc = _mammocad("model", "calibrate", "--data", str(trained / "data"), "--data", str(trained / "test"),
                         "--weights", str(trained / "run" / "model.pt"), "--out", str(out), "--device", "cpu",
                         "--risk-method", "two_view", "--max-fp-per-image", budget, "--version", f"0.0.2-cal{budget}",
                         *(["--orientations", "2", "--orientation-crop", "96"] if budget == "4" else
                           ["--class-method", "sensitivity", "--class-target-sensitivity", "0.8"]))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "breast ROC AUC" in proc.stdout and "not for diagnostic use" in proc.stdout
        assert "measure on other images" in proc.stdout
        assert "found lesions classed right at the new cut-off" in proc.stdout
        assert ("(the highest calling 80% of found malignant lesions malignant)" if budget == "0"
                else "(best lesion accuracy)") in proc.stdout
        # The checkpoint's breast threshold was chosen for rule 'max': the old count says it is read by another.
        assert "chosen for its breast risk rule 'max', counted here by 'two_view'" in proc.stdout
        outs[budget] = out
    return outs


@pytest.fixture(scope="module")
def pooled_calibrated(trained: Path, calibrated: dict[str, Path]) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``evaluate`` of the calibrated file on the test set given twice: read by the pooling test
    (counts do not depend on the weights) and by the calibration test (the thresholds it reports)."""
    out = trained / "pooled"
    proc = _mammocad("model", "evaluate", "--data", str(trained / "test"), "--data", str(trained / "test"),
                     "--weights", str(calibrated["4"]), "--out", str(out), "--device", "cpu", "--bootstrap", "20")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, out


@pytest.mark.slow
def test_train_command_writes_a_described_checkpoint(trained: Path) -> None:
    run = trained / "run"
    for name in ("model.pt", "state.pt", "train.csv", "loss.png", "metrics.json", "roc.png", "froc.png"):
        assert (run / name).is_file(), name
    ckpt = load_checkpoint(run / "model.pt")
    meta = ckpt.metadata
    assert meta["model_name"] == "mammocad-frcnn-resnet18" and meta["version"] == "0.0.1-test"
    assert meta["synthetic"] is True
    assert meta["training"]["command"].startswith("mammocad model train --config")
    assert meta["training"]["config"]["train"]["steps"] == 4 and meta["training"]["steps"] == 4
    assert meta["thresholds"]["chosen_on"] == "validation"
    assert ckpt.spec.operating_threshold == pytest.approx(meta["thresholds"]["operating_threshold"])
    assert 0.0 <= meta["lesion_score_threshold"] <= 1.0 and 0.0 < meta["malignant_threshold"] < 1.0
    assert meta["thresholds"]["malignant_threshold"] == meta["malignant_threshold"]
    assert set(meta["metrics"]) == {"validation", "test"}
    assert "breast_roc_auc" in meta["metrics"]["test"]["metrics"]
    # Release weights are stored in half precision (the demo file must stay small).
    payload = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    assert payload["state_dict"]["rpn.head.conv.0.0.weight"].dtype == torch.float16


@pytest.mark.slow
def test_evaluate_command_writes_metrics_and_plots(
        trained: Path, pooled_calibrated: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    out = trained / "eval"
    proc = _mammocad("model", "evaluate", "--data", str(trained / "test"), "--weights",
                     str(trained / "run" / "model.pt"), "--out", str(out), "--device", "cpu", "--bootstrap", "50")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for line in ("breast ROC AUC", "image ROC AUC", "FROC sensitivity at 1 FP/image"):
        assert line in proc.stdout
    assert "chosen on validation data at training" in proc.stdout
    assert "trained on synthetic data only" in proc.stdout
    report = json.loads((out / "metrics.json").read_text())
    assert report["model"]["name"] == "mammocad-frcnn-resnet18"
    assert report["counts"]["images"] == 4 and report["counts"]["breasts"] == 2
    assert set(report["froc"]["sensitivity_at_fp_per_image"]) == {"0.25", "0.5", "1", "2", "4"}
    for key in ("lesion_accuracy", "breast_sensitivity", "breast_roc_auc"):
        assert key in report["metrics"] and key in report["ci95"]
    assert report["definitions"]["detection_rule"] == "centre"
    for name in ("roc.png", "froc.png"):
        assert (out / name).read_bytes()[:8] == PNG
    # The same set given twice pools into one report with twice the breasts (ids kept apart).
    counts = json.loads((pooled_calibrated[1] / "metrics.json").read_text())["counts"]
    assert counts["images"] == 8 and counts["breasts"] == 4


def test_evaluate_command_explains_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main(["model", "evaluate", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")],
                         capsys)
    assert code == 2
    assert "does not exist" in err
    assert _mammocad("model", "evaluate", "--help").stdout.count("--data-format") >= 1


def test_train_command_explains_a_missing_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main(["model", "train", "--config", str(tmp_path / "none.toml")], capsys)
    assert code == 2 and "does not exist" in err


def test_calibrate_command_rechooses_thresholds_and_keeps_the_weights(
        trained: Path, calibrated: dict[str, Path], pooled_calibrated: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    source = trained / "run" / "model.pt"
    outs = {budget: load_checkpoint(path) for budget, path in calibrated.items()}
    before, cal = load_checkpoint(source), outs["4"]
    meta = cal.metadata
    assert cal.spec.risk_method == "two_view" and before.spec.risk_method == "max"
    # Chosen on scores averaged over two orientations, the thresholds travel with that setting.
    assert cal.spec.test_time_orientations == 2 and before.spec.test_time_orientations == 1
    assert cal.spec.orientation_crop_size == 96 and before.spec.orientation_crop_size == 0
    assert outs["0"].spec.test_time_orientations == 1
    assert meta["version"] == "0.0.2-cal4" and meta["calibration"]["previous"]["version"] == "0.0.1-test"
    # The rule travels with the file.
    assert meta["thresholds"]["method"]["class_method"] == "accuracy"
    floor = outs["0"].metadata["thresholds"]["method"]
    assert (floor["class_method"], floor["class_target_sensitivity"]) == ("sensitivity", 0.8)
    assert meta["thresholds"]["method"]["max_fp_per_image"] == 4.0 and meta["thresholds"]["chosen_on"].endswith(
        "(manifest)")
    assert meta["thresholds"]["validation_images"] == 16  # 3 + 1 studies, pooled
    # New and old thresholds counted on the same 8 validation breasts, for the operator to weigh.
    right = meta["calibration"]["right_here"]
    assert right["breasts"]["total"] == 8
    assert all(0 <= c["new"] <= c["total"] and 0 <= c["previous"] <= c["total"] for c in right.values())
    assert cal.spec.operating_threshold == pytest.approx(meta["thresholds"]["operating_threshold"])
    assert set(meta["metrics"]) == {"calibration"}  # the old thresholds' figures are gone
    # A tighter false-positive budget can only raise the lesion score threshold.
    assert outs["0"].metadata["lesion_score_threshold"] >= meta["lesion_score_threshold"]
    for (name, a), b in zip(before.model.state_dict().items(), cal.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    payload = torch.load(calibrated["4"], map_location="cpu", weights_only=True)
    assert payload["state_dict"]["rpn.head.conv.0.0.weight"].dtype == torch.float16
    # Evaluating the calibrated file reports at its new thresholds.
    proc = pooled_calibrated[0]
    assert "breast risk rule 'two_view'" in proc.stdout
    assert f"score >= {meta['lesion_score_threshold']:.3f}" in proc.stdout
    assert "chosen on validation data by `mammocad model calibrate`" in proc.stdout
    assert "analysed in 2 orientations (the others on 96-px crops around marks scoring at least 0.25)" in proc.stdout
    model = json.loads((pooled_calibrated[1] / "metrics.json").read_text())["model"]
    assert (model["test_time_orientations"], model["orientation_crop_size"]) == (2, 96)


def test_calibrate_command_refuses_to_overwrite_its_input(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = trained / "run" / "model.pt"
    code, err = run_main(["model", "calibrate", "--data", str(trained / "test"), "--weights", str(source),
                          "--out", str(source), "--device", "cpu"], capsys)
    assert code == 2 and "write a new file" in err
    code, err = run_main(["model", "calibrate", "--data", str(trained / "test"), "--weights", str(source),
                          "--out", str(trained / "never.pt"), "--device", "cpu", "--orientations", "4",
                          "--orientation-crop", "100"], capsys)
    assert code == 2 and "orientation_crop_size must be 0 or a multiple of 32 >= 64, got 100" in err
    code, err = run_main(["model", "calibrate", "--data", str(trained / "test"), "--weights", str(source),
                          "--out", str(trained / "never.pt"), "--device", "cpu", "--orientation-crop", "96"], capsys)
    assert code == 2 and "give --orientations 2, 4 or 8 too" in err
    never = ["model", "calibrate", "--data", str(trained / "test"), "--weights", str(source),
             "--out", str(trained / "never.pt"), "--device", "cpu"]
    code, err = run_main([*never, "--class-target-sensitivity", "0.8"], capsys)
    assert code == 2 and "give that too" in err
    code, err = run_main([*never, "--class-method", "sensitivity", "--class-target-sensitivity", "0"], capsys)
    assert code == 2 and "class_target_sensitivity must be in (0, 1]" in err
    code, err = run_main([*never, "--class-method", "sensitivity", "--keep-class-cutoff"], capsys)
    assert code == 2 and "not allowed with argument" in err
    assert not (trained / "never.pt").exists()


@pytest.mark.slow
def test_calibrate_reads_the_validation_sets_of_a_training_config(
        trained: Path, calibrated: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """--validation-of pools the config's sets exactly as --data does; its errors say what is wrong."""
    source = trained / "run" / "model.pt"
    config = trained / "validation.toml"
    config.write_text(tomlkit.dumps({"name": "only-validation", "validation": [
        {"format": "manifest", "path": str(trained / "data")}, {"format": "manifest", "path": str(trained / "test")}]}))
    proc = _mammocad("model", "calibrate", "--validation-of", str(config), "--weights", str(source),
                     "--out", str(trained / "cal-of.pt"), "--device", "cpu", "--risk-method", "two_view",
                     "--max-fp-per-image", "4", "--orientations", "2", "--orientation-crop", "96")
    assert proc.returncode == 0, proc.stderr[-3000:]
    of, by_data = load_checkpoint(trained / "cal-of.pt").metadata, load_checkpoint(calibrated["4"]).metadata
    assert of["thresholds"]["chosen_on"] == f"[[validation]] of {config}: data (manifest, seed 0), test (manifest, seed 0)"
    assert of["thresholds"]["validation_images"] == 16
    for key in ("operating_threshold", "lesion_score_threshold", "malignant_threshold"):
        assert of["thresholds"][key] == pytest.approx(by_data["thresholds"][key]), key

    empty = trained / "no-validation.toml"
    empty.write_text('name = "x"\n')
    code, err = run_main(["model", "calibrate", "--validation-of", str(empty), "--weights", str(source),
                          "--out", str(trained / "never.pt"), "--device", "cpu"], capsys)
    assert code == 2 and "has no [[validation]] tables" in err
    assert not (trained / "never.pt").exists()
    code, err = run_main(["model", "calibrate", "--validation-of", str(config), "--data", str(trained / "test"),
                          "--out", str(trained / "never.pt")], capsys)
    assert code == 2 and "not allowed with argument" in err
    code, err = run_main(["model", "calibrate", "--out", str(trained / "never.pt")], capsys)
    assert code == 2 and "one of the arguments --data --validation-of is required" in err
