"""A training config or a command's data options that are almost right: one line that names the key.

The mistakes a site makes when it writes its own config from DATASETS.md: a misspelt key or
section, a string where a number goes, a reader option that does not exist, a data folder that
is not there. Each must be refused when the config is read, before any data is drawn or any
step is trained, with the section and key (or file) in the message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mammocad.model.sources import DataSource
from mammocad.model.train_config import config_from_dict
from tests.model.in_process import run_main
from tests.model.test_train import tiny_config


@pytest.fixture(autouse=True)
def _logging(logging_restored: None) -> None:
    """Commands run in this process: see conftest's ``logging_restored``."""


def test_a_reader_option_that_does_not_exist_is_named_with_the_options_that_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown option 'splt' for data format 'cbis-ddsm': its options are "
                                         r"calc_only, images_dir, split"):
        DataSource(format="cbis-ddsm", path=tmp_path, options={"splt": "test"})
    with pytest.raises(ValueError, match="'manifest': it takes no options"):
        DataSource(format="manifest", path=tmp_path, options={"split": "test"})
    assert DataSource(format="real-background", path=tmp_path, options={"seed": 3, "cache": "x"}).options["seed"] == 3
    raw: dict[str, Any] = {**tiny_config(tmp_path / "d"), "data": {"format": "vindr", "path": str(tmp_path),
                                                                   "options": {"splits": "test"}}}
    with pytest.raises(ValueError, match="unknown option 'splits' for data format 'vindr'"):
        config_from_dict(raw)


def test_evaluate_refuses_an_unknown_reader_option_before_loading_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mias").mkdir()
    code, err = run_main(["model", "evaluate", "--data", str(tmp_path / "mias"), "--data-format", "mias",
                          "--data-option", "splt=test", "--out", str(tmp_path / "out")], capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and "unknown option 'splt' for data format 'mias'" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"seeed": 3}, "unknown top-level keys or tables seeed"),
    ({"optim": {"steps": 3}}, "unknown top-level keys or tables optim"),
    ({"split": {"val_fration": 0.2}}, r"\[split\]: unknown keys val_fration \(known: val_fraction\)"),
    ({"evaluation": {"bootstrap": 5}}, r"\[evaluation\]: unknown keys bootstrap"),
    ({"preprocess": {"spacing": 1.0}}, r"\[preprocess\]: unknown keys spacing"),
    ({"train": {"steps": "ten"}}, r"\[train\] steps must be a whole number, got 'ten'"),
    ({"train": {"lr": "fast"}}, r"\[train\] lr must be a number, got 'fast'"),
    ({"augment": {"hflip": True}}, r"\[augment\] hflip must be a number, got True"),
    ({"tiles": {"balance_classes": 1}}, r"\[tiles\] balance_classes must be true or false, got 1"),
    ({"detector": {"anchor_sizes": [["8"]]}}, r"\[detector\] anchor_sizes must be a list of lists"),
    ({"seed": "abc"}, r"^seed must be a whole number, got 'abc'"),
    ({"split": [0.2]}, r"\[split\] must be a table"),
])
def test_a_misspelt_key_or_a_value_of_the_wrong_type_is_named(tmp_path: Path, change: dict[str, Any],
                                                                message: str) -> None:
    raw = tiny_config(tmp_path / "d")
    for key, value in change.items():
        raw[key] = {**raw[key], **value} if isinstance(raw.get(key), dict) and isinstance(value, dict) else value
    with pytest.raises(ValueError, match=message):
        config_from_dict(raw)


def test_a_data_source_key_of_the_wrong_type_is_named_with_its_table(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path / "d")
    raw["data"] = [raw["data"], {**raw["data"], "n_studies": "three"}]
    with pytest.raises(ValueError, match=r"^\[\[data\]\] #2: n_studies must be a whole number, got 'three'"):
        config_from_dict(raw)
    raw = tiny_config(tmp_path / "d")
    raw["test"] = {"format": "manifest", "path": str(tmp_path), "options": "split=test"}
    with pytest.raises(ValueError, match=r"^\[test\]: options must be a table"):
        config_from_dict(raw)


def test_train_names_a_missing_input_before_drawing_any_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The synthetic [data] set would be drawn first (minutes for a real config): nothing may be drawn."""
    import tomlkit

    raw = tiny_config(tmp_path / "synth")
    raw["validation"] = [{"format": "manifest", "path": str(tmp_path / "site-validation")}]
    config = tmp_path / "site.toml"
    config.write_text(tomlkit.dumps(raw))
    run = ["model", "train", "--config", str(config), "--out", str(tmp_path / "run"), "--device", "cpu",
           "--no-progress"]
    code, err = run_main(run, capsys)
    assert code == 2 and f"[validation] path {tmp_path / 'site-validation'} does not exist (format manifest)" in err
    raw["validation"] = []
    raw["init_from"] = str(tmp_path / "none.pt")
    config.write_text(tomlkit.dumps(raw))
    code, err = run_main(run, capsys)
    assert code == 2 and f"init_from {tmp_path / 'none.pt'} does not exist" in err
    del raw["init_from"]
    config.write_text(tomlkit.dumps(raw))
    code, err = run_main([*run, "--resume", str(tmp_path / "state.pt")], capsys)
    assert code == 2 and "--resume" in err and "no such file" in err
    code, err = run_main([*run, "--data", str(tmp_path / "site")], capsys)
    assert code == 2 and f"--data {tmp_path / 'site'} does not exist" in err
    code, err = run_main([*run, "--steps", "0"], capsys)
    assert code == 2 and "--steps must be at least 1, got 0" in err
    assert "Traceback" not in err
    assert not (tmp_path / "synth").exists() and not (tmp_path / "run").exists()
