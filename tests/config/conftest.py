"""Fixtures for the config/admin tests: a copy of the shipped config and a CLI runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO / "config" / "mammocad.toml"
MAMMOCAD = Path(sys.executable).parent / "mammocad"

Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A private copy of config/mammocad.toml (the commented file admins start from)."""
    path = tmp_path / "etc" / "mammocad.toml"
    path.parent.mkdir()
    shutil.copy(SHIPPED_CONFIG, path)
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MAMMOCAD_* variable from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("MAMMOCAD_"):
            monkeypatch.delenv(key)


@pytest.fixture
def mammocad(config_file: Path, clean_env: None) -> Runner:
    """Run the installed ``mammocad`` console script with ``--config`` set to the copy."""

    def run(*args: str, env: dict[str, str] | None = None, config: Path | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            [str(MAMMOCAD), "--config", str(config or config_file), *args],
            capture_output=True, text=True, env=full_env, timeout=timeout, cwd=config_file.parent,
        )

    return run


def leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"node.port": 11112, "callers": [...], ...}``: a TOML document's scalars and lists by dotted key."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
