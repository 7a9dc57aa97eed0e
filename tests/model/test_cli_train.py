"""``mammocad model train`` run as a command: what it leaves behind and how it exits when it fails."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomlkit

from mammocad.model.commands.train import EXIT_LOSS_NOT_FINITE
from tests.model.in_process import run_main
from tests.model.test_train import tiny_config


@pytest.fixture(autouse=True)
def _logging(logging_restored: None) -> None:
    """Commands run in this process: see conftest's ``logging_restored``."""


def test_data_that_cannot_be_read_leaves_no_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The run folder held config.json alone after a data folder without its manifest was refused."""
    config = tmp_path / "site.toml"
    config.write_text(tomlkit.dumps(tiny_config(tmp_path / "synth")))
    empty = tmp_path / "site-data"
    empty.mkdir()
    code, err = run_main(["model", "train", "--config", str(config), "--out", str(tmp_path / "run"), "--device", "cpu",
                          "--no-progress", "--data", str(empty), "--data-format", "manifest"], capsys)
    assert code == 2 and "holds no manifest.json" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.timeout(600)
def test_a_loss_that_is_not_finite_has_its_own_status_and_says_what_to_try(
        tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It exited 2, as a bad argument does, so a script re-ran it unchanged or gave up on the config."""
    config = tmp_path / "diverges.toml"
    config.write_text(tomlkit.dumps(tiny_config(tiny_data, steps=30, lr=1e30, warmup_steps=0)))
    code, err = run_main(["model", "train", "--config", str(config), "--out", str(tmp_path / "run"), "--device", "cpu",
                          "--no-progress"], capsys)
    assert code == EXIT_LOSS_NOT_FINITE and code not in (0, 1, 2), (code, err)
    assert "not finite" in err and "train.lr" in err and "train.amp" in err, err
    assert "Traceback" not in err
