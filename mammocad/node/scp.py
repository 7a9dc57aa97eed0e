"""The DICOM node: Verification and Storage SCP in front of the spool.

:class:`Node` builds the node's parts (caller policy, dispatcher, instance index, AE), wires
their pynetdicom event handlers and runs the listeners: association checks in
:mod:`mammocad.node.associations`, C-STORE in :mod:`mammocad.node.store` (what may be kept:
:mod:`mammocad.node.acceptance`), queueing in :mod:`mammocad.node.queueing`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pynetdicom import AE, evt

from mammocad.config import Settings
from mammocad.dicom import network
from mammocad.listen import listen
from mammocad.logs import log_event
from mammocad.node import limits, receive
from mammocad.node.associations import AssociationHandlers, CallerPolicy
from mammocad.node.instances import InstanceIndex
from mammocad.node.observer import NodeObserver
from mammocad.node.queueing import CeleryLike, Dispatcher, TaskSender
from mammocad.node.reconciler import BrokerReader, NodeReconciler
from mammocad.node.requeue import recover
from mammocad.node.store import StoreHandler
from mammocad.node.studies import StudyTracker
from mammocad.spool.layout import Spool
from mammocad.spool.reconcile import is_redis_url, read_broker, redis_client

logger = logging.getLogger("mammocad.node")


def _broker_reader(url: str, settings: Settings) -> BrokerReader | None:
    """What the broker holds for the reconciler; None for a broker other than Redis."""
    if not is_redis_url(url):
        return None
    queues = [settings.worker.analysis_queue, settings.worker.results_queue]
    client = redis_client(url)
    return lambda: read_broker(client, queues)


class Node:
    """One running SCP. ``start()`` returns once it listens; ``stop()`` shuts it down."""

    def __init__(self, settings: Settings, config_path: str | os.PathLike[str] | None = None,
                 *, celery_app: CeleryLike | None = None, broker_url: str | None = None) -> None:
        self.settings = settings
        self.observer = NodeObserver(settings)
        self.policy = CallerPolicy(settings, Path(config_path) if config_path else None, self.observer.trail)
        self.spool = Spool(settings.node.spool_dir)
        read_broker = None
        self.broker_url = broker_url or settings.broker.url
        self._metrics: Any = None
        if celery_app is None:
            from mammocad.spool.broker import make_celery
            app = make_celery(settings, broker_url)
            read_broker = _broker_reader(str(app.conf.broker_url), settings)
            # Fail fast when the broker is down (kombu would retry ~6 s per task): the
            # dispatcher keeps the task and retries every node.requeue_interval_s itself.
            app.conf.broker_transport_options = {**app.conf.broker_transport_options, "max_retries": 1,
                                                 "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
            celery_app = app
        sender = TaskSender(celery_app, settings.node.requeue_interval_s)
        reconciler = NodeReconciler(self.spool, read_broker, lease_s=settings.worker.lease_s,
                                    interval_s=settings.node.reconcile_interval_s)
        self.dispatcher = Dispatcher(self.spool, sender, StudyTracker(settings.node.study_timeout_s),
                                     reconciler=reconciler, on_declared=self.observer.declared)
        self.instances = InstanceIndex(self.spool)
        self.ae = self._make_ae()
        self.associations = AssociationHandlers(settings, self.ae, self.policy, self.observer)
        self.store = StoreHandler(settings, self.spool, self.instances, self.dispatcher, self.observer)
        self._server: Any = None
        self._tls_server: Any = None
        self.streaming = False

    def _make_ae(self) -> AE:
        node = self.settings.node
        return network.storage_scp(node.ae_title, max_pdu_size=node.max_pdu_size,
                                   max_associations=limits.connection_cap(node.max_associations),
                                   acse_timeout=node.association_timeout_s, network_timeout=node.network_timeout_s)

    @property
    def port(self) -> int:
        """The plain DICOM port (the TLS port when the node listens on TLS only)."""
        server = self._server or self._tls_server
        return int(server.server_address[1]) if server else self.settings.node.port

    @property
    def tls_port(self) -> int | None:
        return int(self._tls_server.server_address[1]) if self._tls_server else None

    def start(self) -> None:
        self.spool.create()
        leftovers = receive.clean_leftovers(self.spool.tmp)
        if leftovers:
            log_event(logger, "receive_leftovers_removed", logging.WARNING, files=leftovers)
        self.instances.load()
        recover(self.spool, self.dispatcher)
        self.dispatcher.start()
        node = self.settings.node
        handlers = self._handlers()
        self.streaming = receive.register(self.ae, self.spool.tmp)
        try:
            self._listen(handlers)
        except OSError:  # a port taken: close what did start, so nothing claims to be running
            self._close()
            raise
        tls = node.tls
        log_event(logger, "node_listening", ae_title=node.ae_title, host=node.host,
                  port=self.port if self._server else None, tls_port=self.tls_port,
                  client_certificates=("required" if tls.require_client_certificate else "optional")
                  if tls.enabled else None, spool=str(self.spool.root), streaming=self.streaming)
        from mammocad.config.advice import warnings

        for warning in warnings(self.settings):
            log_event(logger, "config_warning", logging.WARNING, warning=warning)
        self.observer.started()

    def _handlers(self) -> list[evt.EventHandlerType]:
        """Every pynetdicom event the node answers, on each of its ports (C-ECHO: always Success)."""
        a = self.associations
        return [(evt.EVT_CONN_OPEN, limits.read_timeout(self.settings.node.network_timeout_s)),
                (evt.EVT_REQUESTED, a.on_requested), (evt.EVT_ACCEPTED, a.on_accepted),
                (evt.EVT_C_ECHO, lambda event: 0x0000), (evt.EVT_C_STORE, self.store.on_store),
                (evt.EVT_CONN_CLOSE, a.on_closed)]

    def _listen(self, handlers: list[evt.EventHandlerType]) -> None:
        """Bind every port (DICOM-TLS, DICOM, metrics); a :class:`PortError` names the setting."""
        from mammocad.metrics.endpoints import start_node_endpoint

        node, tls = self.settings.node, self.settings.node.tls
        if tls.enabled:
            ctx = tls.server_context(on_failure=self.associations.tls_failed)
            key = "node.tls.port" if tls.port else "node.port"
            self._tls_server = listen(key, node.host, tls.port or node.port, lambda: network.serve(
                self.ae, node.host, tls.port or node.port, handlers, ssl_context=ctx))
        if not tls.enabled or tls.port not in (0, node.port):
            self._server = listen("node.port", node.host, node.port,
                                  lambda: network.serve(self.ae, node.host, node.port, handlers))
        metrics = self.settings.metrics
        self._metrics = listen("metrics.port", metrics.host, metrics.port, lambda: start_node_endpoint(
            self.settings, self.broker_url, self.policy.destination_names))

    def _close(self) -> None:
        for server in (self._server, self._tls_server):
            if server is not None:
                server.shutdown()
        self._server = self._tls_server = None
        receive.unregister(self.ae)
        self.dispatcher.stop()
        if self._metrics is not None:
            self._metrics.stop()
            self._metrics = None

    def stop(self) -> None:
        self._close()
        log_event(logger, "node_stopped")
        self.observer.stopped()
