"""The node's C-STORE handler: read the header, check, write durably, answer, queue.

Hot path (the sender waits): read the header without pixels, write the Part 10 file
(file meta + the data set bytes exactly as received) durably, answer. Everything else
— Celery, study tracking — happens in the :class:`~mammocad.node.queueing.Dispatcher`.
Failures become C-STORE statuses with an ErrorComment (:mod:`mammocad.node.status`);
the association goes on. What may be kept is decided in :mod:`mammocad.node.acceptance`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode_file_meta

from mammocad.config import Settings
from mammocad.logs import log_event, safe_error
from mammocad.metrics.faults import count_fault
from mammocad.node import acceptance, receive
from mammocad.node.header import Header, HeaderError, read_header
from mammocad.node.instances import InstanceIndex
from mammocad.node.observer import NodeObserver
from mammocad.node.queueing import Arrival, Dispatcher
from mammocad.node.status import CANNOT_UNDERSTAND, DUPLICATE_ELSEWHERE, OUT_OF_RESOURCES, failure, safe_uid
from mammocad.spool.layout import Spool

logger = logging.getLogger("mammocad.node")


class StoreHandler:
    """``EVT_C_STORE`` of one node: :meth:`on_store` runs in each association's thread."""

    def __init__(self, settings: Settings, spool: Spool, instances: InstanceIndex, dispatcher: Dispatcher,
                 observer: NodeObserver) -> None:
        self.settings = settings
        self.spool = spool
        self.instances = instances
        self.dispatcher = dispatcher
        self.observer = observer

    def on_store(self, event: evt.Event) -> int | Dataset:
        try:
            return self._store(event)
        except Exception as exc:  # never let an exception kill the association
            log_event(logger, "store_error", logging.ERROR, sop=safe_uid(getattr(event.request, "AffectedSOPInstanceUID", "")),
                      error=safe_error(exc))
            count_fault("store_error")
            self.observer.not_stored(id(event.assoc), CANNOT_UNDERSTAND, "failed")
            return failure(CANNOT_UNDERSTAND, f"node error while storing: {type(exc).__name__}")

    def _store(self, event: evt.Event) -> int | Dataset:
        request = cast(C_STORE, event.request)  # EVT_C_STORE always carries a C-STORE request
        streamed = receive.streamed_file(request)
        if streamed is not None and streamed.error is not None:
            self.observer.not_stored(id(event.assoc), OUT_OF_RESOURCES, "failed")
            return self._write_failed(safe_uid(request.AffectedSOPInstanceUID), streamed.error, self.spool.tmp)
        node = self.settings.node
        try:
            header = self._read(request, streamed, event.context.transfer_syntax)
            analysable = acceptance.check(header, request, str(event.context.abstract_syntax),
                                          max_pixels=node.max_pixels,
                                          max_decoded_mb=self.settings.worker.max_decoded_mb)
            path = acceptance.spool_path(self.spool, header, analysable)
        except HeaderError as exc:
            self.observer.not_stored(id(event.assoc), exc.status, "refused")
            return self._refuse(request, exc.status, str(exc))
        with self.instances.claim(header.sop_uid, header.study_uid) as holder:
            if holder is not None:
                self.observer.not_stored(id(event.assoc), DUPLICATE_ELSEWHERE, "refused")
                return acceptance.held_elsewhere(header, holder)
            return self._keep(event, header, streamed, path, analysable)

    def _keep(self, event: evt.Event, header: Header, streamed: receive.SpoolTempFile | None, path: Path,
              analysable: bool) -> int | Dataset:
        """Write the object durably (once: a re-send of a held one is a duplicate) and queue it."""
        duplicate = acceptance.held_before(self.spool, header, path, analysable)
        if duplicate is not None:
            log_event(logger, "duplicate", sop=header.sop_uid, study=header.study_uid, status="0x0000",
                      reason=duplicate)
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
                raise HeaderError(CANNOT_UNDERSTAND, str(exc)) from exc
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
        log_event(logger, "store_failed", logging.ERROR, sop=sop_uid, status=f"0x{OUT_OF_RESOURCES:04X}",
                  error=f"{exc.strerror or exc} ({where})")
        return failure(OUT_OF_RESOURCES, f"out of resources: cannot write spool: {exc.strerror or exc}")

    def _refuse(self, request: Any, status: int, comment: str) -> Dataset:
        log_event(logger, "store_refused", logging.WARNING, sop=safe_uid(request.AffectedSOPInstanceUID),
                  status=f"0x{status:04X}", error=comment[:300])
        count_fault("store_refused")
        return failure(status, comment)
