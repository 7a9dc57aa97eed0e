"""``mammocad model train`` run as a command: what it leaves behind and how it exits when it fails."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomlkit

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
