"""Every example configuration shipped (config/*.toml but the model's training and calibration
files, deploy/mammocad.env.example) passes `mammocad config check` and says only true things:
its section values are the defaults, its note on live reloads is the template's."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mammocad.config.settings import Settings
from mammocad.config.template import reload_note
from tests.config.conftest import MAMMOCAD, REPO, leaves

#: config/*.toml that are not mammocad settings: read by `mammocad model train` / `model calibrate`
#: (and checked by tests/model/test_train.py).
MODEL_CONFIGS = ("train-", "calibrate-")
SETTINGS_EXAMPLES = sorted(p for p in (REPO / "config").glob("*.toml") if not p.name.startswith(MODEL_CONFIGS))
ENV_EXAMPLE = REPO / "deploy" / "mammocad.env.example"
#: Lists whose entries are examples to replace, not defaults.
EXAMPLE_LISTS = ("callers", "destinations")


def _check(config: Path, env: dict[str, str]) -> str:
    """`mammocad --config CONFIG config check` stdout; it must pass without a warning."""
    proc = subprocess.run([str(MAMMOCAD), "--config", str(config), "config", "check"], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "warning:" not in proc.stdout and not proc.stderr, (proc.stdout, proc.stderr)
    return proc.stdout


def _default(dotted: str) -> Any:
    """The default of ``node.tls.port``, ``log_level``...: walked down the models, no environment read."""
    model: Any = Settings
    value: Any = None
    for name in dotted.split("."):
        value = model.model_fields[name].get_default(call_default_factory=True)
        model = type(value)
    return str(value) if isinstance(value, Path) else value



def test_the_examples_are_found() -> None:
    assert [p.name for p in SETTINGS_EXAMPLES] == ["mammocad.toml"]


@pytest.mark.parametrize("config", SETTINGS_EXAMPLES, ids=lambda p: p.name)
def test_example_passes_config_check(config: Path, clean_env: None) -> None:
    assert _check(config, {}).startswith("configuration OK")


@pytest.mark.parametrize("config", SETTINGS_EXAMPLES, ids=lambda p: p.name)
def test_example_passes_config_check_with_the_deploy_environment(config: Path, clean_env: None) -> None:
    env = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
               if line.strip() and not line.startswith("#"))
    assert "MAMMOCAD_CONFIG" in env  # --config wins over it; the rest applies
    assert "redis://:***@" in _check(config, env)


@pytest.mark.parametrize("config", SETTINGS_EXAMPLES, ids=lambda p: p.name)
def test_example_values_are_the_defaults(config: Path) -> None:
    written = leaves(tomllib.loads(config.read_text()))
    wrong = {key: (value, _default(key)) for key, value in written.items()
             if key not in EXAMPLE_LISTS and value != _default(key)}
    assert not wrong, f"{config.name} sets values that are not the defaults its header says they are: {wrong}"


@pytest.mark.parametrize("config", SETTINGS_EXAMPLES, ids=lambda p: p.name)
def test_example_says_what_reloads_as_the_template_does(config: Path) -> None:
    lines = config.read_text().splitlines()
    note = reload_note()
    assert any(lines[i:i + len(note)] == note for i in range(len(lines))), "\n".join(note)
    rest = "\n".join(line for line in lines if line not in note).lower()
    for word in ("restart", "re-read", "at start", "reload", "picks up"):
        assert word not in rest, f"{config.name}: {word!r} outside the generated reload note"
