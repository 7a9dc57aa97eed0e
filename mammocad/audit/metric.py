"""The audit trail's Prometheus counter, counted so that a failing metric changes nothing else.

A sample fails when the worker's multiprocess folder is gone (removed under a running worker)
or its disk is full. The trail once counted each line inside its write's ``except OSError``:
the metric's FileNotFoundError turned records already in the file into drops, skipped the
fsync and ``written`` (an admin command then refused, its record missing), and out of a
syslog send it ended the batch. :func:`count` never raises: a failure is a ``metric_failed``
line, as :mod:`mammocad.worker.observer` logs one, but at most one a minute per process
(``failed``: samples lost since the last line), since a queue that drops counts on every emit.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from mammocad.logs import log_event, safe_error

logger = logging.getLogger("mammocad.audit")

METRIC = "mammocad_audit_messages"
_LOG_EVERY_S = 60.0

_lock = threading.Lock()
_failed = 0  # samples lost since the last metric_failed line
_last_log: float | None = None


def count(sink: str, outcome: str, n: int = 1) -> None:
    """Add ``n`` to ``mammocad_audit_messages{sink, outcome}``; a failure is logged, never raised."""
    try:
        from mammocad.metrics.definitions import AUDIT_MESSAGES  # imported late: see metrics/multiprocess.py

        AUDIT_MESSAGES.labels(sink, outcome).inc(n)
    except Exception as exc:  # noqa: BLE001 - a lost sample must not change what the trail reports
        _failure(exc)


def _failure(exc: Exception) -> None:
    global _failed, _last_log
    with _lock:
        _failed += 1
        now = time.monotonic()
        if _last_log is not None and now - _last_log < _LOG_EVERY_S:
            return
        failed, _failed, _last_log = _failed, 0, now
    log_event(logger, "metric_failed", logging.WARNING, metric=METRIC, error=safe_error(exc), failed=failed,
              hint="the audit records are unaffected; check the metrics folder (PROMETHEUS_MULTIPROC_DIR) "
                   "and its disk")


def _forked() -> None:
    """A forked child: a lock another thread held at the fork would stay held; its losses are its own."""
    global _lock, _failed, _last_log
    _lock, _failed, _last_log = threading.Lock(), 0, None


os.register_at_fork(after_in_child=_forked)
