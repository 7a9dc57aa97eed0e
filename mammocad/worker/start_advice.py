"""The configuration advice a worker logs once at start (``config_warning``, as the node does).

A worker often runs on a box of its own (a GPU server) with its own configuration file,
where no node starts: an expiring destination or audit certificate, or a private key every
user can read, went unsaid there until peers refused the handshake. Each worker says what
concerns the parts it runs (:mod:`mammocad.config.advice`).
"""

from __future__ import annotations

import logging

from mammocad.config import Settings
from mammocad.config.advice import RESULTS_WORKER_PARTS, WORKER_PARTS, warnings
from mammocad.logs import log_event

logger = logging.getLogger("mammocad.worker")


def log_config_warnings(settings: Settings, queues: list[str]) -> int:
    """Log one ``config_warning`` line per warning about what workers of ``queues`` use;
    return how many. The destinations count only when the results queue is among them."""
    parts = RESULTS_WORKER_PARTS if settings.worker.results_queue in queues else WORKER_PARTS
    found = warnings(settings, parts)
    for warning in found:
        log_event(logger, "config_warning", logging.WARNING, warning=warning)
    return len(found)
