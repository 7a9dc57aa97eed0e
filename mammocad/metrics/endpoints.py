"""Start the metrics endpoint of a node or of a worker from the settings (ports:
:func:`mammocad.metrics.worker_port`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.registry import Collector

from mammocad.config import Settings
from mammocad.metrics.server import MetricsServer
from mammocad.metrics.state import (
    BrokerCollector,
    SpoolCollector,
    WorkersCollector,
    broker_check,
    spool_check,
)


class _Union(Collector):
    """Several collectors served as one registry (a fresh registry per endpoint, so a second
    node in the same process, e.g. in tests, does not collide in the global one)."""

    def __init__(self, *sources: Any) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Any]:
        for source in self.sources:
            yield from source.collect()


def _checks(settings: Settings, broker_url: str) -> dict[str, Any]:
    checks: dict[str, Any] = {"spool": spool_check(Path(settings.node.spool_dir))}
    if broker_url:
        checks = {"broker": broker_check(broker_url), **checks}
    return checks


def start_node_endpoint(settings: Settings, broker_url: str, destinations: Any = None) -> MetricsServer | None:
    """The node's ``/metrics``: its own counters, queue depths, outbox and dead-letter counts, workers."""
    if not settings.metrics.port:
        return None
    from prometheus_client import REGISTRY, CollectorRegistry

    import mammocad.metrics.definitions  # noqa: F401  (the node's counters live in the default registry)

    w = settings.worker
    names = destinations or (lambda: [d.name for d in settings.destinations])
    registry = CollectorRegistry()
    queues = [w.analysis_queue, w.results_queue]
    registry.register(_Union(REGISTRY, BrokerCollector(broker_url, queues),
                             SpoolCollector(Path(settings.node.spool_dir), names),
                             WorkersCollector(Path(settings.node.spool_dir), queues, w.lease_s)))
    return MetricsServer(registry, _checks(settings, broker_url), settings.metrics.host,
                         settings.metrics.port).start()


def start_worker_endpoint(settings: Settings, port: int) -> MetricsServer:
    """A worker's ``/metrics``: the sum over its pool processes (multiprocess mode, prepared first)."""
    from mammocad.metrics import multiprocess

    return MetricsServer(multiprocess.registry(), _checks(settings, settings.broker.url), settings.metrics.host,
                         port).start()
