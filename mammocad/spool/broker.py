"""The one module that creates mammocad's Celery app, for the node (sender) and the workers.

Settings come from the typed config. Reliability choices (see ../shared notes):
late acks + reject on worker lost so a killed worker's task returns to the queue,
prefetch 1 so a slow GPU task never hoards others, JSON only, and a Redis visibility
timeout above the longest task's hard limit so an unacked task is redelivered only
when its worker is really gone.
"""

from __future__ import annotations

from celery import Celery

from mammocad.config import Settings
from mammocad.spool.tasks import TASK_QUEUES


def make_celery(settings: Settings, broker_url: str | None = None) -> Celery:
    """Build the Celery app for ``settings``; ``broker_url`` overrides ``settings.broker.url``."""
    url = broker_url or settings.broker.url
    if not url:
        raise ValueError(
            "broker.url is empty: run `mammocad serve` (which starts a private redis-server) "
            "or set broker.url / MAMMOCAD_BROKER__URL to redis://HOST:PORT/DB"
        )
    w = settings.worker
    app = Celery("mammocad", broker=url, set_as_current=False)
    if url.startswith(("redis://", "rediss://")):
        from mammocad.spool.kombu_redis import TRANSPORT

        app.conf.broker_transport = TRANSPORT  # kombu's Redis transport, surviving broker outages
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=w.soft_time_limit_s,
        task_time_limit=w.time_limit_s,
        task_default_queue=w.results_queue,
        task_routes={name: {"queue": w.analysis_queue if queue == "analysis" else w.results_queue}
                     for name, queue in TASK_QUEUES.items()},
        broker_transport_options={"visibility_timeout": w.time_limit_s * 2},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app
