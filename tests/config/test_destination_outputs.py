"""A destination with `outputs = []` is refused when loaded, as `dest add` refuses it: it
would silently receive nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammocad.config import EXIT_INVALID_CONFIG, ConfigError, load_settings
from tests.config.conftest import Runner


def test_empty_outputs_refused_naming_the_key(tmp_path: Path, clean_env: None) -> None:
    path = tmp_path / "mammocad.toml"
    path.write_text('[[destinations]]\nname = "pacs"\nae_title = "PACS"\nhost = "127.0.0.1"\nport = 4242\n'
                    "outputs = []\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    message = str(err.value)
    assert "destinations[0].outputs" in message and "at least one of mammo-cad-sr, tid1500-sr, sc, gsps" in message
    assert "leave outputs out" in message


def test_config_check_refuses_empty_outputs(mammocad: Runner, config_file: Path) -> None:
    config_file.write_text(config_file.read_text().replace(
        'outputs = ["mammo-cad-sr", "tid1500-sr", "sc", "gsps"]', "outputs = []"))
    out = mammocad("config", "check")
    assert out.returncode == EXIT_INVALID_CONFIG and "outputs" in out.stderr
