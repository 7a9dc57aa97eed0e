"""The DICOM node: Verification and Storage SCP in front of the spool.

Hot path (the sender waits): read the header without pixels, write the Part 10 file
(file meta + the data set bytes exactly as received) durably, answer. Everything else
— Celery, study tracking — happens in the :class:`~mammocad.node.queueing.Dispatcher`.
Failures become C-STORE statuses with an ErrorComment; the association goes on.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode_file_meta

from mammocad.config import Settings
from mammocad.config.watch import ConfigWatcher
from mammocad.dicom import network
from mammocad.dicom.frame_size import DecodeBudgetError, check_budget, check_stream_size
from mammocad.dicom.sop_classes import is_analysable
from mammocad.dicom.tls import peer_subject
from mammocad.listen import listen
from mammocad.logs import log_event, safe_error
from mammocad.metrics.faults import count_fault
from mammocad.node import limits, receive
from mammocad.node.header import Header, HeaderError, check_series, read_header
from mammocad.node.instances import InstanceIndex
from mammocad.node.observer import NodeObserver
from mammocad.node.queueing import Arrival, CeleryLike, Dispatcher, TaskSender
from mammocad.node.reconciler import BrokerReader, NodeReconciler
from mammocad.node.requeue import recover
from mammocad.node.studies import StudyTracker
from mammocad.spool.layout import InvalidUIDError, Spool, is_uid
from mammocad.spool.reconcile import is_redis_url, read_broker, redis_client

if TYPE_CHECKING:
    from mammocad.audit import AuditTrail

logger = logging.getLogger("mammocad.node")

OUT_OF_RESOURCES = 0xA700
TOO_LARGE = 0xC002
BAD_UID = 0xC001
#: Error: Cannot understand (PS3.4 B.2.3 Cxxx): the SOP Instance UID is held under another study.
DUPLICATE_ELSEWHERE = 0xC003
REJECT_CALLING, REJECT_CALLED = 0x03, 0x07


def _failure(status: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]  # LO: 64 characters at most; the log has the full text
    return ds


def _broker_reader(url: str, settings: Settings) -> BrokerReader | None:
    """What the broker holds for the reconciler; None for a broker other than Redis."""
    if not is_redis_url(url):
        return None
    queues = [settings.worker.analysis_queue, settings.worker.results_queue]
    client = redis_client(url)
    return lambda: read_broker(client, queues)


def safe_uid(value: object) -> str:
    """A UID from the command set, for the logs; anything else is not echoed."""
    text = str(value or "").strip().rstrip("\x00")
    return text if is_uid(text) else f"<not a UID, {len(text)} characters>"


class CallerPolicy:
    """Who may connect; re-read from the config file when it changes on disk."""

    def __init__(self, settings: Settings, config_path: Path | None, trail: AuditTrail | None = None) -> None:
        """``trail``: the node's audit trail, which records each reload's changes as the node's."""
        self.settings = settings
        self.config_path = config_path
        self._watcher = ConfigWatcher(settings, config_path, trail)

    def refresh(self) -> None:
        new = self._watcher.poll()
        if new is not None:
            self.settings = self.settings.model_copy(update={"callers": new.callers})
            self.settings.node.require_known_callers = new.node.require_known_callers

    def allowed(self, ae_title: str, host: str) -> bool:
        return self.refusal(ae_title, host) is None

    def refusal(self, ae_title: str, host: str, subject: dict[str, str] | None = None) -> str | None:
        """None when the caller may associate, else the failed rule in words (AE title, host
        or certificate subject), for the log, the audit trail and the admin."""
        s = self.settings
        if not s.node.require_known_callers:
            return None
        return s.caller_refusal(ae_title, host, subject)


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
        handlers: list[evt.EventHandlerType] = [
            (evt.EVT_CONN_OPEN, limits.read_timeout(node.network_timeout_s)),
            (evt.EVT_REQUESTED, self._on_requested), (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_C_ECHO, lambda event: 0x0000), (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_CONN_CLOSE, self._on_closed)]
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

    def _listen(self, handlers: list[evt.EventHandlerType]) -> None:
        """Bind every port (DICOM-TLS, DICOM, metrics); a :class:`PortError` names the setting."""
        from mammocad.metrics.endpoints import start_node_endpoint

        node, tls = self.settings.node, self.settings.node.tls
        if tls.enabled:
            ctx = tls.server_context(on_failure=self._tls_failed)
            key = "node.tls.port" if tls.port else "node.port"
            self._tls_server = listen(key, node.host, tls.port or node.port, lambda: network.serve(
                self.ae, node.host, tls.port or node.port, handlers, ssl_context=ctx))
        if not tls.enabled or tls.port not in (0, node.port):
            self._server = listen("node.port", node.host, node.port,
                                  lambda: network.serve(self.ae, node.host, node.port, handlers))
        metrics = self.settings.metrics
        self._metrics = listen("metrics.port", metrics.host, metrics.port, lambda: start_node_endpoint(
            self.settings, self.broker_url, lambda: [d.name for d in self.policy.settings.destinations]))

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

    # -- association ------------------------------------------------------------------
    def _on_requested(self, event: evt.Event) -> None:
        """Check the caller. pynetdicom logs an exception raised here and then *accepts* the
        association, so any failure of the check rejects it instead (transient: the sender
        retries)."""
        try:
            self._check_caller(event)
        except Exception as exc:
            log_event(logger, "association_rejected", logging.ERROR, peer=str(event.assoc.requestor.address),
                      reason=f"the caller could not be checked: {safe_error(exc)}")
            count_fault("association_check_failed")
            event.assoc.acse.send_reject(0x02, 0x01, 0x01)  # rejected-transient, service-user, no reason given
            event.assoc.kill()

    def _check_caller(self, event: evt.Event) -> None:
        self.policy.refresh()
        rq = event.assoc.requestor
        primitive = rq.primitive
        assert primitive is not None  # pynetdicom sets the A-ASSOCIATE request before EVT_REQUESTED
        calling = str(primitive.calling_ae_title).strip()
        called = str(primitive.called_ae_title).strip()
        host = str(rq.address)
        if called != self.settings.node.ae_title:
            self._reject(event, REJECT_CALLED, calling, called, host, "called AE title not recognised")
            return
        busy = limits.negotiated(self.ae, event.assoc)
        if busy >= self.settings.node.max_associations:
            log_event(logger, "association_rejected", logging.WARNING, calling_ae=calling, called_ae=called,
                      peer=host, reason=f"node.max_associations ({busy}) reached; retry later")
            count_fault("association_limit")
            limits.reject_busy(event.assoc)
            return
        why = self.policy.refusal(calling, host, peer_subject(getattr(event.assoc.dul.socket, "socket", None)))
        if why is not None:
            # DICOM has one reason code for all of these; the log and audit trail name the rule.
            self._reject(event, REJECT_CALLING, calling, called, host, why)

    def _tls_failed(self, host: str, why: str) -> None:
        """A caller failed the TLS handshake (runs in its connection's thread, before any PDU: log only)."""
        log_event(logger, "tls_handshake_failed", logging.WARNING, peer=host, reason=why[:300])
        self.observer.security_alert(host, why)

    def _reject(self, event: evt.Event, reason: int, calling: str, called: str, host: str, why: str) -> None:
        log_event(logger, "association_rejected", logging.WARNING, calling_ae=calling, called_ae=called,
                  peer=host, reason=why)
        self.observer.rejected(calling, called, host, "called_ae" if reason == REJECT_CALLED else "calling_ae", why)
        event.assoc.acse.send_reject(0x01, 0x01, reason)  # rejected-permanent, service-user
        event.assoc.kill()  # as pynetdicom's own rejection does: waits until the A-ASSOCIATE-RJ is out

    def _on_closed(self, event: evt.Event) -> None:
        receive.discard_open(event.assoc)
        self.observer.closed(id(event.assoc))

    def _on_accepted(self, event: evt.Event) -> None:
        rq = event.assoc.requestor
        log_event(logger, "association_accepted", calling_ae=str(rq.ae_title).strip(), peer=rq.address,
                  contexts=len(event.assoc.accepted_contexts))
        self.observer.accepted(id(event.assoc), str(rq.ae_title).strip(), str(rq.address))

    # -- C-STORE ----------------------------------------------------------------------
    def _on_store(self, event: evt.Event) -> int | Dataset:
        try:
            return self._store(event)
        except Exception as exc:  # never let an exception kill the association
            log_event(logger, "store_error", logging.ERROR, sop=safe_uid(getattr(event.request, "AffectedSOPInstanceUID", "")),
                      error=safe_error(exc))
            count_fault("store_error")
            self.observer.not_stored(id(event.assoc), 0xC000, "failed")
            return _failure(0xC000, f"node error while storing: {type(exc).__name__}")

    def _store(self, event: evt.Event) -> int | Dataset:
        request = cast(C_STORE, event.request)  # EVT_C_STORE always carries a C-STORE request
        streamed = receive.streamed_file(request)
        if streamed is not None and streamed.error is not None:
            self.observer.not_stored(id(event.assoc), OUT_OF_RESOURCES, "failed")
            return self._write_failed(safe_uid(request.AffectedSOPInstanceUID), streamed.error, self.spool.tmp)
        try:
            header = self._read(request, streamed, event.context.transfer_syntax)
            self._check(header, request, str(event.context.abstract_syntax))
            analysable = is_analysable(header.sop_class, header.modality)
            if analysable and not header.has_pixels:
                raise HeaderError(0xA900, "no Pixel Data (7FE0,0010) in a mammography image: nothing to analyse")
            if analysable:
                check_series(header)
                self._check_decodable(header)
            path = (self.spool.image_path if analysable else self.spool.other_path)(header.study_uid, header.sop_uid)
        except HeaderError as exc:
            self.observer.not_stored(id(event.assoc), exc.status, "refused")
            return self._refuse(request, exc.status, str(exc))
        except InvalidUIDError as exc:
            self.observer.not_stored(id(event.assoc), BAD_UID, "refused")
            return self._refuse(request, BAD_UID, str(exc))
        with self.instances.claim(header.sop_uid, header.study_uid) as holder:
            if holder is not None:
                return self._conflict(event, header, holder)
            return self._keep(event, header, streamed, path, analysable)

    def _conflict(self, event: evt.Event, header: Header, holder: str) -> Dataset:
        """The instance is held under another study: one image must not make two reports."""
        log_event(logger, "duplicate_conflict", logging.WARNING, sop=header.sop_uid, study=header.study_uid,
                  held_by=holder, status=f"0x{DUPLICATE_ELSEWHERE:04X}",
                  hint="the same SOP Instance UID arrived before under another Study Instance UID and is kept "
                       "there; check the sender for a study merged or re-identified, or a modality reusing UIDs")
        count_fault("duplicate_conflict")
        self.observer.not_stored(id(event.assoc), DUPLICATE_ELSEWHERE, "refused")
        return _failure(DUPLICATE_ELSEWHERE, "SOP Instance UID already held under another Study Instance UID")

    def _keep(self, event: evt.Event, header: Header, streamed: receive.SpoolTempFile | None, path: Path,
              analysable: bool) -> int | Dataset:
        """Write the object durably (once: a re-send of a held one is a duplicate) and queue it.

        An image a report covered before retention removed its study is a duplicate too:
        analysed again, it would make a second report of it.
        """
        held = path.exists()
        pruned = None if held else self.spool.pruned(header.study_uid)
        if held or (pruned is not None and header.sop_uid in pruned.sop_uids):
            log_event(logger, "duplicate", sop=header.sop_uid, study=header.study_uid, status="0x0000",
                      reason="already in the spool" if held else "reported before retention pruned its study")
            self._stored(event, header, "duplicate", 0)
            return 0x0000
        try:
            size = self._write(event, streamed, path)
        except OSError as exc:
            self.observer.not_stored(id(event.assoc), OUT_OF_RESOURCES, "failed")
            return self._write_failed(header.sop_uid, exc, path.parent)
        self._stored(event, header, "analysed" if analysable else "set_aside", size)
        if analysable:
            log_event(logger, "store", sop=header.sop_uid, study=header.study_uid, status="0x0000", bytes=size)
            self.dispatcher.submit(Arrival(header.study_uid, header.sop_uid, header.laterality, header.view))
        else:
            log_event(logger, "set_aside", sop=header.sop_uid, study=header.study_uid, sop_class=header.sop_class,
                      modality=header.modality, status="0x0000", bytes=size, path=str(path))
        return 0x0000

    def _stored(self, event: evt.Event, header: Header, kind: str, size: int) -> None:
        self.observer.stored(id(event.assoc), study_uid=header.study_uid, sop_class=header.sop_class,
                             patient_id=header.patient_id, accession=header.accession, kind=kind, size=size)

    def _read(self, request: Any, streamed: receive.SpoolTempFile | None, transfer_syntax: str) -> Header:
        limit = int(self.settings.node.max_inflated_mb * 2**20)
        if streamed is None:
            return read_header(request.DataSet, transfer_syntax, max_inflated=limit)
        with open(streamed.name, "rb") as fh:
            try:
                start = receive.data_set_offset(fh)
            except ValueError as exc:
                raise HeaderError(0xC000, str(exc)) from exc
            return read_header(fh, transfer_syntax, start, max_inflated=limit)

    def _write(self, event: evt.Event, streamed: receive.SpoolTempFile | None, path: Path) -> int:
        """Part 10 file: preamble, DICM, file meta, then the data set bytes as received."""
        if streamed is not None:
            return streamed.commit(path, self.spool.tmp)
        meta = encode_file_meta(event.file_meta)
        data_set = cast(C_STORE, event.request).DataSet
        assert data_set is not None  # not streamed: held in memory, and _read has already parsed it
        with data_set.getbuffer() as body:
            return self.spool.write(path, (b"\x00" * 128, b"DICM", meta, body))

    def _write_failed(self, sop_uid: str, exc: OSError, where: Path) -> Dataset:
        log_event(logger, "store_failed", logging.ERROR, sop=sop_uid, status="0xA700",
                  error=f"{exc.strerror or exc} ({where})")
        return _failure(OUT_OF_RESOURCES, f"out of resources: cannot write spool: {exc.strerror or exc}")

    def _check(self, header: Header, request: C_STORE, context_class: str) -> None:
        """The command, the presentation context and the data set must name one instance of one
        SOP class (PS3.7 9.1.1.1): whichever differs, the node cannot know what it was sent."""
        affected_sop = str(request.AffectedSOPInstanceUID or "")
        if affected_sop and header.sop_uid != affected_sop.strip():
            raise HeaderError(0xA900, f"SOPInstanceUID differs from Affected SOP Instance UID: "
                                      f"{header.sop_uid} != {safe_uid(affected_sop)}")
        affected_class = str(request.AffectedSOPClassUID or "").strip().rstrip("\x00")
        if affected_class and context_class and affected_class != context_class:
            # pynetdicom serves the request under the context's class and echoes the command's.
            raise HeaderError(0xA900, f"Affected SOP Class UID {safe_uid(affected_class)} of the C-STORE request "
                                      f"differs from its presentation context's {context_class} and the data "
                                      f"set's SOPClassUID {header.sop_class}: fix the sender's C-STORE command")
        if context_class and header.sop_class != context_class:
            # An MG image sent under a CT context would be analysed as something it was not negotiated as.
            raise HeaderError(0xA900, f"SOPClassUID {header.sop_class} does not match the presentation "
                                      f"context's {context_class}")
        limit = self.settings.node.max_pixels
        if header.pixels > limit:
            raise HeaderError(TOO_LARGE, f"too many pixels: {header.pixels} > node.max_pixels {limit} "
                                         "(Rows x Columns x frames); raise the limit to accept it")

    def _check_decodable(self, header: Header) -> None:
        """Refuse an image the worker would refuse to decode (docs/FAULTS.md, memory budget):
        a declared decoded size over worker.max_decoded_mb, or a compressed stream that
        declares another size than Rows x Columns (a 934-byte JPEG 2000 stream declaring
        10,000 x 12,000 pixels), or Pixel Data that cannot be the image its header declares
        (a 3000 x 2000 header over 6 kB of pixels; compressed fragments under an uncompressed
        transfer syntax). Checked from the header and the first fragment's head only."""
        if header.pixel_mismatch:
            raise HeaderError(0xC000, header.pixel_mismatch)
        try:
            check_budget(header.decoded_bytes, self.settings.worker.max_decoded_mb)
        except DecodeBudgetError as exc:
            raise HeaderError(TOO_LARGE, f"{exc}; raise the limit to accept it") from None
        try:
            check_stream_size(header.stream_size, header.rows, header.columns)
        except DecodeBudgetError as exc:
            raise HeaderError(0xC000, f"{exc}: refused before anything decodes it") from None

    def _refuse(self, request: Any, status: int, comment: str) -> Dataset:
        log_event(logger, "store_refused", logging.WARNING, sop=safe_uid(request.AffectedSOPInstanceUID),
                  status=f"0x{status:04X}", error=comment[:300])
        count_fault("store_refused")
        return _failure(status, comment)
