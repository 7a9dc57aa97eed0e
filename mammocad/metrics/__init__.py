"""Prometheus metrics and health endpoints of the node and the workers.

Importing this package imports nothing from prometheus_client: a Celery worker must call
:func:`mammocad.metrics.multiprocess.prepare` before :mod:`mammocad.metrics.definitions`
(or anything else that imports prometheus_client) is first imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mammocad.config import Settings


def worker_port(settings: Settings, queue: str, override: int | None = None) -> int:
    """A worker's metrics port: ``--metrics-port`` when given, else ``[metrics] worker_port``
    for the results queue and the port after it for the analysis queue; 0 = off."""
    if override is not None:
        return override
    base = settings.metrics.worker_port
    if not base:
        return 0
    return base if queue == settings.worker.results_queue else base + 1
