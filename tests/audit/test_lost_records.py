"""A record a caller could not make is a counted drop, so the drop alert fires for it too.

The config watcher and retention logged ``audit_dropped`` themselves when building their message
raised; ``mammocad_audit_messages_total{outcome="dropped"}``, which deploy/prometheus/alerts.yml
watches, never counted it. In-process registry (no multiprocess folder in this test process).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mammocad.audit import AuditTrail
from mammocad.audit.events import Identity


def _dropped() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("mammocad_audit_messages_total", {"sink": "queue", "outcome": "dropped"}) or 0.0


def test_a_record_its_caller_could_not_make_is_counted_and_logged(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    trail = AuditTrail(Identity("MAMMOCAD", "mammocad-test"), tmp_path / "audit.log")
    before = _dropped()
    with caplog.at_level(logging.WARNING, logger="mammocad.audit"):
        trail.lost("ValueError: no study in the folder", audit_event="study_deleted", study="1.2.3")
    assert _dropped() == before + 1 and trail.dropped["queue"] == 1
    (line,) = [r for r in caplog.records if r.getMessage() == "audit_dropped"]
    assert (vars(line)["sink"], vars(line)["audit_event"], vars(line)["study"]) == ("queue", "study_deleted", "1.2.3")
    trail.close()
