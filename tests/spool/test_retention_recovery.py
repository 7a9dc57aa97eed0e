"""Retention passes in real processes: one pass at a time (the spool's prune lock), and what a
killed pass left in ``tmp/`` finished or put back by the next one."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mammocad.spool.layout import Spool
from mammocad.spool.retention import DAY_S, prune
from tests.spool.test_retention import NOW, _study

REPO = Path(__file__).resolve().parents[2]

_RUNNING_PASS = """
import sys
from mammocad.spool import retention

measure = retention._age_and_size

def stop_here(folder):  # a pass at work on its first study, until the test kills it
    print("pruning", flush=True)
    sys.stdin.read()
    return measure(folder)

retention._age_and_size = stop_here
retention.prune(sys.argv[1], 30 * retention.DAY_S)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
    env["PYTHONPATH"] = str(REPO)
    return env


@contextmanager
def running_pass(spool: Path) -> Iterator[subprocess.Popen[str]]:
    """A prune pass in another live process, stopped inside its first study until killed."""
    other = subprocess.Popen([sys.executable, "-c", _RUNNING_PASS, str(spool)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "pruning"
        yield other
    finally:
        other.kill()
        other.wait(timeout=60)


def test_a_pass_skips_while_another_process_is_pruning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An admin's `spool prune` and the results worker's hourly pass ran at once: both put back,
    expired and audited the same folders. The second one now does nothing and says so."""
    spool = Spool(tmp_path / "spool").create()
    folder = _study(spool.root, "1.1", reported=2)
    config = tmp_path / "mammocad.toml"
    config.write_text(f'[node]\nspool_dir = "{spool.root}"\nretention_days = 30\n')
    with running_pass(spool.root) as other:
        with caplog.at_level(logging.INFO, logger="mammocad"):
            report = prune(spool.root, 30 * DAY_S, now=NOW)
            dry = prune(spool.root, 30 * DAY_S, now=NOW, dry_run=True)
        assert folder.is_dir() and report.studies == [] == dry.studies and report.skipped and dry.skipped
        assert [r.getMessage() for r in caplog.records] == ["prune_skipped", "prune_skipped"]
        out = subprocess.run([sys.executable, "-m", "mammocad", "--config", str(config), "spool", "prune"],
                             capture_output=True, text=True, env=_env(), timeout=60)
        assert out.returncode == 0, out.stderr
        assert "another prune is running" in out.stdout and "nothing was done" in out.stdout and folder.is_dir()

        other.send_signal(signal.SIGKILL)  # killed midway: the kernel drops what it held
        other.wait(timeout=60)
        done = prune(spool.root, 30 * DAY_S, now=NOW)
    assert not done.skipped and done.studies == ["1.1"] and not folder.exists()
