"""Metric updates that never raise, and a lost sample logged without flooding.

A sample fails when a worker's multiprocess folder is gone (removed under a running worker) or
its disk is full. Raised, it undid the work it measured: the audit trail counted records already
in its file as dropped and skipped the fsync, the delivery observer turned objects the PACS had
stored into a failed attempt and skipped the audit record. So every update goes through
:func:`update`: a failure is a ``metric_failed`` line, at most one a minute per metric and
process (``failed``: samples of that metric lost since its last line), since a broken folder
fails every sample of a busy worker. Imports nothing from prometheus_client (see
:mod:`mammocad.metrics`): the caller's ``apply`` does.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from mammocad.logs import log_event, safe_error

logger = logging.getLogger("mammocad.metrics")

#: Seconds between two ``metric_failed`` lines of one metric in one process.
LOG_EVERY_S = 60.0

_lock = threading.Lock()
#: Metric name -> (monotonic time of its last line, samples lost since).
_lost: dict[str, tuple[float, int]] = {}


def update(metric: str, apply: Callable[[], object]) -> None:
    """Run ``apply`` (one sample of ``metric``); a failure is logged, never raised."""
    try:
        apply()
    except Exception as exc:  # noqa: BLE001 - a lost sample must not change the work it measures
        _failed(metric, exc)


def _failed(metric: str, exc: Exception) -> None:
    now = time.monotonic()
    with _lock:
        last, lost = _lost.get(metric, (None, 0))
        if last is not None and now - last < LOG_EVERY_S:
            _lost[metric] = (last, lost + 1)
            return
        _lost[metric] = (now, 0)
    log_event(logger, "metric_failed", logging.WARNING, metric=metric, error=safe_error(exc), failed=lost + 1,
              hint="the work it measures went on; check the metrics folder (PROMETHEUS_MULTIPROC_DIR) and its disk")


def _forked() -> None:
    """A forked child: a lock another thread held at the fork would stay held; its losses are its own."""
    global _lock
    _lock = threading.Lock()
    _lost.clear()


os.register_at_fork(after_in_child=_forked)
