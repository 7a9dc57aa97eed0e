"""A worker's presence in the spool (:mod:`mammocad.spool.presence`), fed by Celery.

Celery's ``task_received`` signal fires in the worker's main process for every task
message it takes, before a countdown is waited out, with the kombu message whose
delivery tag is the key of that message in Redis's ``unacked`` hash.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

from mammocad.config import Settings
from mammocad.spool.layout import Spool
from mammocad.spool.presence import PresenceBeacon
from mammocad.spool.reconcile import is_redis_url, redis_client, still_unacked


def start_presence(settings: Settings, worker: str) -> PresenceBeacon:
    """Write ``workers/<worker>.json`` now and every ``worker.lease_s / 6``; list taken messages."""
    from celery.signals import task_received

    w = settings.worker
    still_held = None
    if is_redis_url(settings.broker.url):  # a done task's tag leaves the list at the next beat
        client = redis_client(settings.broker.url)
        still_held = partial(still_unacked, client)
    # Listed at most as long as the broker could keep the message unacknowledged (its visibility timeout).
    beacon = PresenceBeacon(Spool(settings.node.spool_dir), worker, lease_s=w.lease_s, keep_s=2.0 * w.time_limit_s,
                            still_held=still_held)

    def on_received(request: Any = None, **_: Any) -> None:
        message = getattr(request, "message", None)
        tag = getattr(message, "delivery_tag", None)
        if tag:
            beacon.received(str(tag), _channel_closed(getattr(message, "channel", None)))

    task_received.connect(on_received, weak=False)
    return beacon.start()


def _channel_closed(channel: Any) -> Callable[[], bool] | None:
    """Whether the message's channel has closed: Celery then forgets the tasks it took on it
    that are not running (``Consumer.on_close``), while Redis keeps them unacknowledged."""
    if channel is None:
        return None
    ref = weakref.ref(channel)

    def closed() -> bool:
        live = ref()
        return live is None or bool(getattr(live, "closed", False))

    return closed
