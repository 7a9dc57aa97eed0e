"""``mammocad ARGV`` run in the test's own process, for the model commands' refusals."""

from __future__ import annotations

import pytest

from mammocad.cli import main


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit status and stderr of ``mammocad ARGV`` (argparse's refusals exit: their status counts)."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err
