"""A forked child's sinks are its own: no back-off timer and no file descriptor of its parent's.

Celery's prefork pool forks after the worker's trail has used its sinks. A child that kept its
parent's syslog back-off dropped its records for up to 30 s without trying the collector (which
may have been up all along); one that forgot the inherited audit file descriptor without
closing it held one descriptor more per trail for the rest of its life.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mammocad.audit import events, sinks
from mammocad.audit.events import Identity
from mammocad.audit.syslog import SyslogClient
from mammocad.audit.trail import AuditTrail
from tests.audit.forking import in_child
from tests.audit.listener import SyslogListener
from tests.services import free_port, wait_until

ME = Identity.make("MAMMOCAD")


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

        in_child(child, result)
        got = json.loads(result.read_text())
        assert got == {"dropped": {"file": 0, "syslog": 0, "queue": 0}, "written": {"file": 1, "syslog": 1}}, got
        wait_until(lambda: listener.received, 60, "the child's record at the collector")
    trail.close()
    assert trail.dropped["syslog"] == 1  # the parent's own back-off is untouched


def _open_on(path: Path) -> int:
    """How many of this process's descriptors are open on ``path``."""
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd) == str(path)
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads descriptors in /proc/self/fd")
def test_a_forked_child_does_not_keep_the_inherited_audit_file_descriptor(tmp_path: Path) -> None:
    """After its own first write the child holds one descriptor on the audit file, its own: the
    inherited one was closed at the fork (it once stayed open, one leaked per child trail). Counted
    on the file itself, not the process's whole table: other threads of a shared test process
    (pytest-xdist) open and close descriptors while this runs. The parent's stays open and usable."""
    audit, result = tmp_path / "audit.log", tmp_path / "child.json"
    trail = AuditTrail(ME, audit)
    trail.emit(events.application_activity(ME, True))
    wait_until(lambda: trail.written["file"] == 1, 60, "the parent's record in the file")
    inherited = trail._sinks._fd
    assert inherited is not None and _open_on(audit) == 1

    def child() -> dict[str, object]:
        try:
            still_open = os.fstat(inherited).st_ino == audit.stat().st_ino
        except OSError:
            still_open = False
        trail.emit(events.application_activity(ME, False))
        wait_until(lambda: trail.written["file"] == 1, 60, "the child's record in the file")
        on_file = _open_on(audit)
        trail.close(timeout_s=60)
        return {"still_open": still_open, "on_file": on_file}

    in_child(child, result)
    got = json.loads(result.read_text())
    assert got == {"still_open": False, "on_file": 1}, got
    trail.emit(events.application_activity(ME, True))  # the parent's descriptor was not closed by the child's hook
    trail.close(timeout_s=60)
    assert trail.written["file"] == 2 and trail.dropped["file"] == 0
    assert len(audit.read_bytes().splitlines()) == 3
