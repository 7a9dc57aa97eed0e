"""A lost metric sample is logged, never raised, and once a minute per metric, not once per sample."""

from __future__ import annotations

import logging

import pytest

from mammocad.metrics import safe


def _broken() -> None:
    raise FileNotFoundError(2, "No such file or directory", "/tmp/gone/counter_1.db")


def test_a_failing_metric_is_one_line_per_interval_and_metric(monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(safe, "_lost", {})
    with caplog.at_level(logging.WARNING, logger="mammocad.metrics"):
        for _ in range(5):
            safe.update("mammocad_stage_seconds", _broken)  # a busy worker: every sample fails
        safe.update("mammocad_delivery_attempts", _broken)  # another metric has its own line
        safe.update("mammocad_delivery_attempts", lambda: None)  # a sample that works says nothing
        monkeypatch.setattr(safe, "LOG_EVERY_S", 0.0)  # the interval has passed
        safe.update("mammocad_stage_seconds", _broken)
    said = [(vars(r)["metric"], vars(r)["failed"]) for r in caplog.records if r.getMessage() == "metric_failed"]
    assert said == [("mammocad_stage_seconds", 1), ("mammocad_delivery_attempts", 1), ("mammocad_stage_seconds", 5)]
    assert "FileNotFoundError" in vars(caplog.records[0])["error"]
