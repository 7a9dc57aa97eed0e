"""A forked child's sinks are its own: no back-off timer of its parent's.

Celery's prefork pool forks after the worker's trail has used its sinks. A child that kept its
parent's syslog back-off dropped its records for up to 30 s without trying the collector (which
may have been up all along).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from mammocad.audit import events, sinks
from mammocad.audit.events import Identity
from mammocad.audit.syslog import SyslogClient
from mammocad.audit.trail import AuditTrail
from tests.audit.listener import SyslogListener
from tests.services import free_port, wait_until

ME = Identity.make("MAMMOCAD")


def _in_child(body: Callable[[], dict[str, object]], result: Path) -> None:
    """Fork, run ``body`` in the child and write what it returns to ``result``; fail if it fails."""
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest; killed by SIGALRM if it hangs
        status = 5
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(60)
            result.write_text(json.dumps(body()))
            status = 0
        finally:
            os._exit(status)
    _, exited = os.waitpid(pid, 0)  # the child's alarm bounds this
    assert os.waitstatus_to_exitcode(exited) == 0, "the child failed or hung (-14: SIGALRM)"


def test_a_forked_child_tries_the_collector_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent backs off for an hour here (its first failure's back-off, made long so that
    no timing can hide the defect); the collector comes up before the fork."""
    monkeypatch.setattr(sinks, "BACKOFF_START_S", 3600.0)
    port, result = free_port(), tmp_path / "child.json"
    trail = AuditTrail(ME, tmp_path / "audit.log", SyslogClient("tcp", "127.0.0.1", port))
    trail.emit(events.application_activity(ME, True))
    wait_until(lambda: trail.dropped["syslog"] == 1, 60, "the parent's syslog drop (nothing listens)")
    with SyslogListener("tcp", port=port) as listener:

        def child() -> dict[str, object]:
            trail.emit(events.application_activity(ME, False))
            trail.close(timeout_s=60)
            return {"dropped": trail.dropped, "written": trail.written}

        _in_child(child, result)
        got = json.loads(result.read_text())
        assert got == {"dropped": {"file": 0, "syslog": 0, "queue": 0}, "written": {"file": 1, "syslog": 1}}, got
        wait_until(lambda: listener.received, 60, "the child's record at the collector")
    trail.close()
    assert trail.dropped["syslog"] == 1  # the parent's own back-off is untouched

