"""C-STORE of result files to one destination (pynetdicom SCU), with per-file status.

One association per call, or per share of the files (``store_files``). The proposed
presentation contexts come from the files themselves (their SOP classes, each with its own
transfer syntax plus the two uncompressed ones), so any PACS that accepts the objects at
all can take them: a file whose compressed syntax the peer refused (a JPEG secondary
capture) is decompressed and sent uncompressed instead.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom.presentation import build_context
from pynetdicom.status import GENERAL_STATUS, STORAGE_SERVICE_CLASS_STATUS, code_to_category

from mammocad.config import Destination
from mammocad.dicom import network
from mammocad.dicom.failures import (
    Watch,
    aborted,
    association_failure_is_permanent,
    refused_contexts,
    store_failure_is_permanent,
)
from mammocad.logs import log_event

logger = logging.getLogger(__name__)

_UNCOMPRESSED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
_MAX_CONTEXTS = 128


class DeliveryError(Exception):
    """The destination could not be reached or refused the association.

    ``permanent``: the peer said the same request will never succeed (PS3.8 rejected-permanent,
    or none of the contexts accepted), so retrying before someone changes a configuration is useless.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class FileStatus:
    """Outcome of one file: ``status`` is the DICOM status (None when never sent).

    ``permanent``: sending the same object again cannot succeed until the peer's or our
    configuration changes (SOP class or syntax not accepted, a data set error status, a file
    that cannot be read); the outbox then gives it up at once instead of at the deadline.
    """

    path: Path
    sop_uid: str
    status: int | None
    error: str | None = None
    permanent: bool = False
    #: The peer's Error Comment: free text that may name the patient, never logged above DEBUG.
    comment: str = ""

    @property
    def ok(self) -> bool:
        # Warnings (0xB000, 0xB006, 0xB007) mean the peer stored the object, possibly coerced.
        return self.status is not None and code_to_category(self.status) in ("Success", "Warning")


def store_files(
    dest: Destination, files: list[Path], *, calling_ae: str, timeout_s: float, associations: int = 1
) -> list[FileStatus]:
    """Send ``files`` to ``dest``; raise DeliveryError if no association could be opened.

    With ``associations`` > 1 the files are spread over that many concurrent associations:
    a PACS commits each object to disk before it answers (Orthanc: ~0.1 s an object here),
    and concurrent associations overlap those waits. A file that cannot be read, or whose
    context the peer rejected, gets ``status=None`` and an ``error``; the others are still sent.
    """
    datasets, statuses = {}, {}
    for path in files:
        try:
            datasets[path] = dcmread(path)
        except Exception as exc:
            statuses[path] = FileStatus(path, path.stem, None, f"cannot read {path}: {exc}", permanent=True)
    items = list(datasets.items())
    if not items:
        return [statuses[p] for p in files]
    n = max(1, min(associations, len(items)))
    chunks = [items[i::n] for i in range(n)]
    try:
        tls = dest.tls_context()
    except ValueError as exc:  # a certificate file went missing since the config was loaded
        raise DeliveryError(f"[tls] {exc}") from exc
    with ThreadPoolExecutor(n, thread_name_prefix=f"store-{dest.name}") as pool:
        outcomes = list(pool.map(lambda c: _store_chunk(dest, c, calling_ae, timeout_s, tls), chunks))
    errors = [o for o in outcomes if isinstance(o, DeliveryError)]
    if len(errors) == len(outcomes):  # permanent only if every association's failure is
        raise next((e for e in errors if not e.permanent), errors[0])
    for chunk, outcome in zip(chunks, outcomes, strict=True):
        if isinstance(outcome, DeliveryError):  # each file gets its own association's failure
            outcome = {path: FileStatus(path, str(ds.SOPInstanceUID), None, str(outcome), outcome.permanent)
                       for path, ds in chunk}
        statuses.update(outcome)
    return [statuses.get(p) or FileStatus(p, p.stem, None, "association ended before sending") for p in files]


def _store_chunk(dest: Destination, items: Sequence[tuple[Path, Dataset]], calling_ae: str, timeout_s: float,
                 tls: ssl.SSLContext | None = None) -> dict[Path, FileStatus] | DeliveryError:
    """One association sending ``items`` in order (the error is returned, for the thread pool).

    A failed association becomes one DeliveryError naming the cause (refused, timeout,
    TLS, rejected with the peer's reason, aborted); pynetdicom's own lines are swallowed
    (mammocad/dicom/failures.py), so each attempt is one line in the worker's log.
    """
    ae = network.scu(calling_ae, timeout_s=timeout_s, contexts=_contexts([ds for _, ds in items]))
    watch = Watch()
    assoc = network.associate(ae, dest, evt_handlers=watch.handlers(), tls=tls)
    peer = f"{dest.name} ({dest.ae_title}@{dest.host}:{dest.port})"
    if not assoc.is_established:
        failure = watch.explain(peer, assoc, timeout_s)
        if failure.kind == "rejected" and failure.details.get("reason") == 3:
            failure.message += f" (our calling AE is {calling_ae!r})"
        return DeliveryError(f"[{failure.kind}] {failure.message}", permanent=association_failure_is_permanent(failure))
    statuses: dict[Path, FileStatus] = {}
    try:
        for path, ds in items:
            started = time.monotonic()
            statuses[path] = _send_one(assoc, path, ds)
            if statuses[path].status is None and statuses[path].error == _NO_ANSWER:
                # the association is gone (pynetdicom aborts it after a DIMSE timeout): say why
                waited = time.monotonic() - started
                statuses[path] = replace(statuses[path], error=_no_answer(watch, peer, waited >= timeout_s, timeout_s))
                break
            if not assoc.is_established:
                break
    finally:
        if assoc.is_established:
            assoc.release()
    return statuses


def _send_one(assoc, path: Path, ds) -> FileStatus:  # type: ignore[no-untyped-def]
    sop = str(ds.SOPInstanceUID)
    try:
        refused = _fit_to_contexts(assoc, ds)
        if refused:
            return FileStatus(path, sop, None, refused, permanent=True)
        rsp = assoc.send_c_store(ds)
    except Exception as exc:
        return FileStatus(path, sop, None, f"{type(exc).__name__}: {exc}")
    status = getattr(rsp, "Status", None)
    if status is None:
        return FileStatus(path, sop, None, _NO_ANSWER)
    return _answered(path, sop, int(status), str(rsp.get("ErrorComment", "") or ""))


_NO_ANSWER = "no response"


def _no_answer(watch: Watch, peer: str, timed_out: bool, timeout_s: float) -> str:
    """Why a C-STORE got no response: the peer aborted, it stayed silent past the DIMSE
    timeout (pynetdicom then aborts), or the connection closed. Nothing was confirmed, so the
    object is sent again at the next attempt (a peer that stored it gets the same UID again)."""
    if watch.abort is not None:
        return aborted(peer, watch.abort, "during a C-STORE").message
    if timed_out:
        return (f"no C-STORE response from {peer} within {timeout_s:g} s (delivery.network_timeout_s): "
                "the association was aborted; a PACS this slow needs a longer timeout")
    return f"{peer} closed the connection during a C-STORE, without a response"


def _answered(path: Path, sop: str, status: int, comment: str) -> FileStatus:
    """The peer's answer to one C-STORE, logged once (the object is never re-sent after a
    warning or success, and a failure's retry is another attempt).

    The peer's Error Comment is free text from another system and may name the patient
    without the carets or quotes the redaction recognises ("Patient JOHN SMITH exists"), so
    it is logged at DEBUG only; the WARNING line says the status and the standard's meaning
    for it. The comment stays in the returned status, for the outbox item's error that
    `mammocad outbox list` and `studies show` print to an admin.
    """
    category = code_to_category(status)
    meaning = (STORAGE_SERVICE_CLASS_STATUS.get(status) or GENERAL_STATUS.get(status) or ("", "unknown status"))[1]
    ok = category in ("Success", "Warning")
    permanent = not ok and store_failure_is_permanent(status)
    if category != "Success":
        log_event(logger, "store_warning" if ok else "store_refused", level=logging.WARNING, sop=sop,
                  status=f"0x{status:04X}", meaning=meaning, **({} if ok else {"permanent": permanent}))
    if comment:
        log_event(logger, "store_comment", level=logging.DEBUG, sop=sop, status=f"0x{status:04X}", comment=comment)
    error = None if ok else f"status 0x{status:04X} ({meaning})"
    return FileStatus(path, sop, status, error, permanent, comment=_printable(comment))


def _printable(text: str) -> str:
    """An Error Comment (LO, 64 characters) on one printable line."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:64]


def _fit_to_contexts(assoc, ds: Dataset) -> str | None:  # type: ignore[no-untyped-def]
    """Make ``ds`` sendable on a context the peer accepted, or say why none fits.

    Chosen here from the accepted contexts rather than by trying ``send_c_store``: its
    ValueError came with an ERROR line from pynetdicom per object, and a message quoting
    the SOP class name, which the logs' redaction turns into "'<redacted>'".
    """
    sop_class, syntax = ds.SOPClassUID, ds.file_meta.TransferSyntaxUID
    accepted = {str(cx.transfer_syntax[0]) for cx in assoc.accepted_contexts
                if cx.abstract_syntax == sop_class and cx.as_scu}
    if syntax in accepted or (not syntax.is_compressed and accepted & set(_UNCOMPRESSED)):
        return None  # pynetdicom re-encodes between the uncompressed syntaxes
    if syntax.is_compressed and accepted & set(_UNCOMPRESSED):
        ds.decompress(generate_instance_uid=False)  # same object: RGB, Explicit VR Little Endian
        log_event(logger, "store_decompressed", sop=str(ds.SOPInstanceUID),
                  reason="peer refused the compressed transfer syntax")
        return None
    what = f"{sop_class.name} ({sop_class})"
    if accepted:
        return f"the peer accepts {what} only as {', '.join(sorted(accepted))}, not as {syntax.name} ({syntax})"
    rejected = [cx for cx in assoc.rejected_contexts if cx.abstract_syntax == sop_class]
    return f"the peer accepted no presentation context for {refused_contexts(rejected) or what}"


def _contexts(datasets: list) -> list:  # type: ignore[type-arg]
    pairs: dict[str, list[str]] = {}
    for ds in datasets:
        sop_class = str(ds.SOPClassUID)
        ts = str(ds.file_meta.TransferSyntaxUID)
        syntaxes = pairs.setdefault(sop_class, [])
        for t in (ts, *_UNCOMPRESSED):
            if t not in syntaxes:
                syntaxes.append(t)
    contexts = []
    for sop_class, syntaxes in sorted(pairs.items()):
        # A compressed syntax gets its own context so that a peer refusing it still accepts
        # the same class uncompressed in the next one.
        compressed = [t for t in syntaxes if t not in _UNCOMPRESSED]
        for t in compressed:
            contexts.append(build_context(sop_class, [t]))
        contexts.append(build_context(sop_class, list(_UNCOMPRESSED)))
    if len(contexts) > _MAX_CONTEXTS:
        raise DeliveryError(f"{len(contexts)} presentation contexts needed, at most {_MAX_CONTEXTS} allowed")
    return contexts
