"""Count a fault event (``mammocad_faults_total{event=...}``) from any process.

The fault paths (a report built as "CAD failed", work re-queued by the reconciler, an
expired analysis lease, a refused bomb) log an ``event=`` line an admin can alert on; this
counts the same event for Prometheus. The metric module is imported on first use, so a
Celery worker has already chosen its multiprocess store (see :mod:`mammocad.metrics`), and
a metrics problem never breaks the fault path that reports it.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def count_fault(event: str, n: int = 1) -> None:
    """Add ``n`` to ``mammocad_faults_total{event=event}``; never raises."""
    try:
        from mammocad.metrics import definitions

        definitions.FAULTS.labels(event).inc(n)
    except Exception:  # noqa: BLE001 - counting must not fail the caller
        logger.debug("fault count failed", exc_info=True)
