"""Run a test's body in a forked child of the test process, as a Celery pool process is forked."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path


def in_child(body: Callable[[], dict[str, object]], result: Path) -> None:
    """Fork, run ``body`` in the child and write what it returns to ``result`` (JSON); fail if it
    fails or hangs. The child never returns into pytest; its 60 s alarm bounds the wait."""
    pid = os.fork()
    if pid == 0:
        status = 5
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(60)
            result.write_text(json.dumps(body()))
            status = 0
        finally:
            os._exit(status)
    _, exited = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(exited) == 0, "the child failed or hung (-14: SIGALRM)"
