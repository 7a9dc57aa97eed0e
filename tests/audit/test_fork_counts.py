"""A forked child's audit counts are its own: it never reports its parent's drops or writes.

Celery's prefork pool forks after the worker's trail has counted: here the collector refuses
(nothing listens on its port), so the parent's sender drops its records for syslog (the file
has them), and the second drop is on no ``audit_dropped`` line yet (one a minute). A child
that started with the parent's ``dropped`` and ``written`` said, on its own ``audit_unsent``
line, that it had dropped the parent's records too, and that it had written them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from mammocad.audit import events
from mammocad.audit.events import Identity
from mammocad.audit.syslog import SyslogClient
from mammocad.audit.trail import AuditTrail
from tests.audit.forking import in_child
from tests.services import free_port, wait_until

ME = Identity.make("MAMMOCAD")


class _Lines(logging.Handler):
    """The child's audit log lines, as ``{"event": ..., fields...}``."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("audit_"):  # not a metric's line: the counts are what is checked
            fields = {k: v for k, v in vars(record).items() if k in ("dropped", "dropped_syslog", "sink", "unsent")}
            self.lines.append({"event": record.getMessage(), **fields})


def _child(trail: AuditTrail) -> dict[str, object]:
    """One record of the child's own, then its close; what it counted and logged goes to ``result``."""
    audit = logging.getLogger("mammocad.audit")
    lines = _Lines()
    audit.addHandler(lines)
    audit.setLevel(logging.WARNING)
    trail.emit(events.application_activity(ME, False))
    trail.close(timeout_s=60)
    return {"dropped": trail.dropped, "written": trail.written, "lines": lines.lines}


def test_a_forked_child_reports_only_its_own_drops_and_writes(tmp_path: Path) -> None:
    audit, result = tmp_path / "audit.log", tmp_path / "child.json"
    trail = AuditTrail(ME, audit, SyslogClient("tcp", "127.0.0.1", free_port()))
    for ok in (True, False):
        trail.emit(events.application_activity(ME, ok))
    wait_until(lambda: trail.dropped["syslog"] == 2, 60, "the parent's two syslog drops")
    assert trail.written == {"file": 2, "syslog": 0}
    in_child(lambda: _child(trail), result)
    trail.close()
    child = json.loads(result.read_text())
    assert child["dropped"] == {"file": 0, "syslog": 1, "queue": 0}, child
    assert child["written"] == {"file": 1, "syslog": 0}, child
    # its one drop is on its first audit_dropped line; nothing of the parent's is left to report
    assert child["lines"] == [{"event": "audit_dropped", "sink": "syslog", "dropped": 1}], child
    assert audit.read_bytes().count(b"\n") == 3
    assert trail.dropped["syslog"] == 2 and trail.written["file"] == 2  # the parent's, unchanged
