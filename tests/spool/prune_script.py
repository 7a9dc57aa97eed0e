"""`mammocad spool prune` in another process, held inside its pass at a chosen study.

Tests that stop the command midway (Ctrl-C, SIGTERM) need it to be at a known point when the
signal arrives; a sleep would race. The child replaces retention's per-study measurement with
one that, at the chosen study, says so on stdout and then blocks on stdin, so the test signals
it only once it is there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests import processes

REPO = Path(__file__).resolve().parents[2]

#: argv: the configuration file, the study to hold at.
_HELD_COMMAND = """
import signal
import sys
from mammocad.cli import main

# Ctrl-C as at an admin's terminal: a test run started in the background by a shell without job
# control (`cmd &`, as CI may be) hands its children SIGINT ignored, and Python keeps it so.
signal.signal(signal.SIGINT, signal.default_int_handler)
from mammocad.spool import retention

config, hold_at = sys.argv[1], sys.argv[2]
measure = retention._age_and_size

def held_at_one_study(folder):
    if folder.name == hold_at:
        print(f"pruning {hold_at}", flush=True)
        sys.stdin.read()
    return measure(folder)

retention._age_and_size = held_at_one_study
sys.exit(main(["--config", config, "spool", "prune"]))
"""


def child_env() -> dict[str, str]:
    """This environment without MAMMOCAD_* (the test's config file must decide), importing this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
    env["PYTHONPATH"] = str(REPO)
    return env


@contextmanager
def prune_held_at(config: Path, study: str) -> Iterator[subprocess.Popen[str]]:
    """`mammocad --config CONFIG spool prune`, yielded once its pass has reached ``study``
    (the studies before it are already removed); it waits there until the test signals it.

    The process has text pipes on stdin, stdout and stderr; its "pruning STUDY" line is
    already read from stdout. It is stopped on exit if the test has not ended it.
    """
    command = processes.spawn([sys.executable, "-c", _HELD_COMMAND, str(config), study], name="spool-prune",
                              env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert command.stdout is not None and command.stdout.readline().strip() == f"pruning {study}"
        yield command
    finally:
        processes.stop(command)
