"""Metrics read at scrape time from the broker and the spool, plus the readiness checks.

Queue depths come from Redis (Celery's Redis transport keeps each queue as a list of that
name); outbox and dead-letter counts from the spool's folders. Both are read when
Prometheus scrapes, so they are right even after a restart, and exported by the node only
(one per install) to avoid counting them once per worker.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mammocad.spool.layout import Spool
from mammocad.spool.presence import worker_states
from mammocad.spool.reconcile import redis_client

#: Seconds a readiness or depth probe may wait for Redis: a scrape must answer quickly.
PROBE_TIMEOUT_S = 1.0


class BrokerCollector(Collector):
    """``mammocad_queue_depth{queue}`` and ``mammocad_broker_up``."""

    def __init__(self, url: str, queues: list[str]) -> None:
        self.url, self.queues = url, queues
        self._client: Any = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("mammocad_broker_up", "1 when the node reaches the broker (Redis), else 0")
        depth = GaugeMetricFamily("mammocad_queue_depth", "Tasks waiting in each Celery queue", labels=["queue"])
        try:
            if self._client is None:
                self._client = redis_client(self.url, PROBE_TIMEOUT_S)
            counts = [int(self._client.llen(q)) for q in self.queues]
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for queue, n in zip(self.queues, counts, strict=True):
            depth.add_metric([queue], n)
        yield up
        yield depth

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("mammocad_broker_up", "")
        yield GaugeMetricFamily("mammocad_queue_depth", "", labels=["queue"])


def count_items(base: Path) -> dict[str, int]:
    """Items per destination under ``base/<destination>/<item>/`` (the outbox or dead-letter folder)."""
    out: dict[str, int] = {}
    if not base.is_dir():
        return out
    for dest in base.iterdir():
        if dest.is_dir():
            out[dest.name] = sum(1 for item in dest.iterdir() if item.is_dir())
    return out


class SpoolCollector(Collector):
    """``mammocad_outbox_items{destination}`` and ``mammocad_deadletter_items{destination}``.

    Configured destinations are always listed (0 when empty), so an alert on dead letters
    has a series to watch from the start.
    """

    def __init__(self, spool: Path, destinations: Callable[[], list[str]]) -> None:
        self.spool, self.destinations = Spool(spool), destinations

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for folder, name, text in ((self.spool.outbox, "mammocad_outbox_items",
                                    "Result items waiting for a destination"),
                                   (self.spool.deadletter, "mammocad_deadletter_items",
                                    "Result items a destination never confirmed (see `mammocad outbox list --dead`)")):
            counts = count_items(folder)
            family = GaugeMetricFamily(name, text, labels=["destination"])
            for dest in sorted(set(counts) | set(self.destinations())):
                family.add_metric([dest], counts.get(dest, 0))
            yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("mammocad_outbox_items", "", labels=["destination"])
        yield GaugeMetricFamily("mammocad_deadletter_items", "", labels=["destination"])


class WorkersCollector(Collector):
    """``mammocad_workers{queue, state}``: workers sharing the spool, alive or silent.

    Read from their presence files (:mod:`mammocad.spool.presence`), so one scrape of the
    node covers every GPU box, including one nobody added to Prometheus. The configured
    queues are always listed (0 alive when none is), so an alert has a series to watch.
    """

    def __init__(self, spool: Path, queues: list[str], lease_s: float) -> None:
        self.spool, self.queues, self.lease_s = Spool(spool), queues, lease_s

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = {(q, state): 0 for q in self.queues for state in ("alive", "silent")}
        for worker in worker_states(self.spool, self.lease_s):
            key = (worker.queue, "alive" if worker.alive else "silent")
            counts[key] = counts.get(key, 0) + 1
        family = GaugeMetricFamily("mammocad_workers", "Workers sharing the spool by queue and state (alive: "
                                   "beat within worker.lease_s; silent: taken for dead)", labels=["queue", "state"])
        for (queue, state), n in sorted(counts.items()):
            family.add_metric([queue, state], n)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("mammocad_workers", "", labels=["queue", "state"])


def broker_check(url: str) -> Callable[[], str | None]:
    """Readiness: Redis answers PING."""
    holder: dict[str, Any] = {}

    def check() -> str | None:
        try:
            if "client" not in holder:
                holder["client"] = redis_client(url, PROBE_TIMEOUT_S)
            holder["client"].ping()
        except Exception as exc:
            return f"broker {_safe(url)} unreachable: {type(exc).__name__}: {exc}"[:300]
        return None

    return check


def spool_check(spool: Path) -> Callable[[], str | None]:
    """Readiness: the spool exists and a file can be created in it (disk not full, mounted)."""

    def check() -> str | None:
        tmp = Spool(spool).tmp
        folder = tmp if tmp.is_dir() else Path(spool)
        if not folder.is_dir():
            return f"spool {spool} does not exist (not mounted?)"
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".readyz-") as fh:
                fh.write(b"x")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            return f"spool {spool} not writable: {exc.strerror or exc}"
        return None

    return check


def _safe(url: str) -> str:
    """The broker URL without its password."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
