"""kombu's Redis transport, with one crash on broker outages worked around.

When Redis goes away while a worker holds tasks (running, or waiting for their countdown),
Celery closes the old connection and kombu tries to put those tasks back into their
queues. By then the connection's ``client`` is already None, so kombu 5.x raises
``AttributeError: 'NoneType' object has no attribute 'hostname'`` (in
``QoS.restore_unacked`` → ``Channel._connparams``), Celery calls it "Unrecoverable", and
the worker exits — in our fault campaign, 3 times in 4, and for good when nothing restarts
it (reproduced in ``tests/faults/test_broker_outage.py``).

Nothing is lost by not restoring there: the tasks are still in Redis's ``unacked`` hash,
from where the visibility timeout brings them back, and the node's reconciler re-queues
the work they stood for much sooner (docs/FAULTS.md). So :class:`QoS` skips the restore
when the connection is gone, logs it, and the worker reconnects as it does for any other
outage. Selected with Celery's ``broker_transport`` setting (:mod:`mammocad.spool.broker`);
the broker URL stays ``redis://``.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis

from mammocad.logs import log_event, safe_error

logger = logging.getLogger(__name__)

#: What Celery's ``broker_transport`` names.
TRANSPORT = "mammocad.spool.kombu_redis:Transport"


class QoS(kombu_redis.QoS):  # type: ignore[misc]
    def restore_unacked(self, client: Any = None) -> None:
        delivered: Any = self._delivered  # an OrderedDict once the QoS exists
        connection = getattr(self.channel, "connection", None)
        if client is None and getattr(connection, "client", None) is None:
            log_event(logger, "unacked_restore_skipped", logging.WARNING, tasks=len(delivered),
                      reason="broker connection already closed; the visibility timeout and the "
                             "reconciler bring the tasks back")
            delivered.clear()
            return
        try:
            super().restore_unacked(client)
        except AttributeError as exc:  # the connection went away while restoring
            log_event(logger, "unacked_restore_skipped", logging.WARNING, tasks=len(delivered),
                      error=safe_error(exc))
            delivered.clear()


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    QoS = QoS


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel
