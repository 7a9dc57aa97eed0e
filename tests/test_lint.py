"""ruff and mypy over the tree: style and type regressions fail CI like any other defect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "mammocad", "tests", "bench"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow  # 1-2 min on 2 cores in a fresh clone (no .mypy_cache)
def test_mypy_clean() -> None:
    """Type errors fail CI too, in the tests as in the package: an Optional a test never narrows
    is an AttributeError on None where it should have been an assertion naming what was missing.
    Settings (plugins, untyped packages) live in pyproject's [tool.mypy], not here."""
    proc = subprocess.run([sys.executable, "-m", "mypy", "mammocad", "tests"], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
