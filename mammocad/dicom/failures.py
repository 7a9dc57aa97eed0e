"""Why an association failed, in one sentence: refused, timed out, rejected (with the
peer's reason), aborted, TLS. Shared by delivery and ``mammocad dest echo``.

pynetdicom reports these as several ERROR lines of its own per attempt ("Association
request failed", "TCP Initialisation Error: ...", "Association Rejected", "Result: ...",
"Association Aborted"). :func:`quiet_pynetdicom` swallows exactly those lines (keeping the
socket error text for :class:`Watch`) so that each failed attempt is one line from
mammocad naming the cause; every other pynetdicom line passes.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from pynetdicom import evt
from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_RJ

# PS3.8 9.3.4 (A-ASSOCIATE-RJ) and 9.3.8 (A-ABORT), in words.
RJ_RESULT = {1: "rejected-permanent", 2: "rejected-transient"}
RJ_SOURCE = {
    1: "DICOM UL service-user (the peer application)",
    2: "DICOM UL service-provider (ACSE related)",
    3: "DICOM UL service-provider (presentation related)",
}
RJ_REASON = {
    1: {1: "no reason given", 2: "application context name not supported",
        3: "calling AE title not recognised", 7: "called AE title not recognised"},
    2: {1: "no reason given", 2: "protocol version not supported"},
    3: {1: "temporary congestion", 2: "local limit exceeded"},
}
RJ_HINT = {
    (1, 3): "the peer does not know our AE title: add it (with our host/port) to the peer's modality list",
    (1, 7): "the peer's AE title differs from the configured one: check destinations.ae_title",
    (3, 1): "the peer is busy: try again later",
    (3, 2): "the peer has too many associations open: try again later",
}
ABORT_SOURCE = {0: "service-user (the peer application)", 1: "reserved",
                2: "service-provider (the peer's network layer)"}
ABORT_REASON = {
    0: "reason not specified", 1: "unrecognized PDU", 2: "unexpected PDU",
    4: "unrecognized PDU parameter", 5: "unexpected PDU parameter", 6: "invalid PDU parameter value",
}

#: pynetdicom ERROR lines that a :class:`Watch` turns into one explained line.
_HANDLED = ("Association request failed", "TCP Initialisation Error", "Association Rejected", "Result: ",
            "Reason: ", "Association Aborted", "Aborting Association", "No accepted presentation contexts")
_socket_errors: dict[int, str] = {}  # thread ident -> last socket error text (bounded)
_lock = threading.Lock()


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        text = record.getMessage()
        if text.startswith("TCP Initialisation Error"):
            _remember(record, text.split(":", 1)[1].strip())
            return False
        if record.exc_info and record.module == "transport":  # the SSLError traceback after it
            return False
        if record.module == "dul" and (text.startswith("[SSL") or text.startswith(_CLOSED)):
            # TLS 1.3: a refused client certificate shows as an alert on the first read.
            if text.startswith("[SSL"):
                _remember(record, text)
            return False
        return not text.startswith(_HANDLED)


_CLOSED = "Connection closed before the entire PDU was received"


def _remember(record: logging.LogRecord, text: str) -> None:
    with _lock:
        if len(_socket_errors) > 256:
            _socket_errors.clear()
        _socket_errors[record.thread or 0] = text


_FILTER = _Quiet()


#: The pynetdicom modules that write these lines (a logger's filter does not see its children's records).
_LOGGERS = ("pynetdicom.transport", "pynetdicom.acse", "pynetdicom.association", "pynetdicom.dul")


def quiet_pynetdicom() -> None:
    """Install the filter on pynetdicom's loggers (idempotent; done when this module is imported)."""
    for name in _LOGGERS:
        pn = logging.getLogger(name)
        if _FILTER not in pn.filters:
            pn.addFilter(_FILTER)


quiet_pynetdicom()


@dataclass
class Failure:
    """``kind``: connection-refused, timeout, network-error, tls, rejected, aborted, no-context."""

    kind: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Watch:
    """Event handlers for one association request; :meth:`explain` says why it failed."""

    connected: bool = False
    rj: tuple[int, int, int] | None = None
    abort: tuple[int, int] | None = None

    def handlers(self) -> list[evt.EventHandlerType]:
        return [(evt.EVT_CONN_OPEN, self._on_open), (evt.EVT_PDU_RECV, self._on_pdu)]

    def _on_open(self, event: evt.Event) -> None:
        self.connected = True

    def _on_pdu(self, event: evt.Event) -> None:
        pdu = event.pdu
        if isinstance(pdu, A_ASSOCIATE_RJ):
            self.rj = (int(pdu.result or 0), int(pdu.source or 0), int(pdu.reason_diagnostic or 0))
        elif isinstance(pdu, A_ABORT_RQ):
            self.abort = (int(pdu.source or 0), int(pdu.reason_diagnostic or 0))

    @staticmethod
    def socket_error(assoc: Any) -> str:
        idents = [getattr(assoc, "ident", None), getattr(getattr(assoc, "dul", None), "ident", None)]
        with _lock:
            for ident in idents:
                if ident is not None and ident in _socket_errors:
                    return _socket_errors.pop(ident)
        return ""

    def explain(self, peer: str, assoc: Any, timeout: float) -> Failure:
        """The cause of a failed association request (``assoc.is_established`` False)."""
        error = self.socket_error(assoc)
        if not self.connected or "SSL" in error:
            return connect_failure(peer, error, timeout)
        if self.rj is not None:
            result, source, reason = self.rj
            words = (f"result {result} ({RJ_RESULT.get(result, 'unknown')}), source {source} "
                     f"({RJ_SOURCE.get(source, 'unknown')}), reason {reason} "
                     f"({RJ_REASON.get(source, {}).get(reason, 'reserved/unknown')})")
            hint = RJ_HINT.get((source, reason), "check the peer's log for why it refused")
            return Failure("rejected", f"association rejected by {peer}: {words}; {hint}",
                           {"result": result, "source": source, "reason": reason})
        if self.abort is not None:
            return aborted(peer, self.abort, "during association negotiation")
        if getattr(assoc, "is_aborted", False) and not assoc.accepted_contexts and assoc.rejected_contexts:
            return Failure("no-context", f"{peer} accepted the association but none of the proposed "
                           f"presentation contexts: {refused_contexts(assoc.rejected_contexts)}")
        return Failure("timeout", f"{peer} accepted the connection but did not answer the association "
                       f"request within {timeout:g} s: is it a DICOM service (or does it expect TLS)?")


#: PS3.8 Table 9-18: why a peer rejected a proposed presentation context.
CONTEXT_RESULT = {1: "user-rejection", 2: "no reason (provider rejection)", 3: "abstract syntax not supported",
                  4: "transfer syntaxes not supported"}


def refused_contexts(contexts: Any) -> str:
    """The SOP classes of rejected presentation contexts, each with its UID and the peer's
    reasons: "Grayscale Softcopy Presentation State Storage (1.2.840.10008.5.1.4.1.1.11.1):
    abstract syntax not supported". Names are not quoted (the log redaction blanks quoted words)."""
    reasons: dict[Any, set[str]] = {}
    for cx in contexts:
        reasons.setdefault(cx.abstract_syntax, set()).add(CONTEXT_RESULT.get(int(cx.result or 0), f"result {cx.result}"))
    return "; ".join(f"{uid.name} ({uid}): {', '.join(sorted(why))}" for uid, why in sorted(reasons.items()))


def connect_failure(peer: str, text: str, timeout: float) -> Failure:
    low = text.lower()
    if "refused" in low:
        return Failure("connection-refused", f"connection refused by {peer}: nothing listens on that port "
                       "(wrong port, peer down, or a firewall rejecting)", {"error": text})
    if "timed out" in low or "timeout" in low:
        return Failure("timeout", f"no answer from {peer} within {timeout:g} s while connecting: host down, "
                       "wrong address, or a firewall dropping packets", {"error": text})
    if "mismatch, certificate is not valid for" in low:  # OpenSSL's words for a failed host name check
        return Failure("tls", f"TLS handshake with {peer} failed: {text} (verify_hostname is on and the peer's "
                       "certificate does not name this host in its subjectAltName: set host to a name or IP "
                       "address the certificate holds, have the certificate reissued for it, or set "
                       "verify_hostname = false)", {"error": text})
    if "ssl" in low or "certificate" in low or "tls" in low:
        return Failure("tls", f"TLS handshake with {peer} failed: {text} (check tls, ca_certificates and, "
                       "when the peer asks for one, certificate/private_key)", {"error": text})
    return Failure("network-error", f"cannot connect to {peer}: {text or 'unknown network error'}",
                   {"error": text})


def aborted(peer: str, abort: tuple[int, int], when: str) -> Failure:
    source, reason = abort
    return Failure("aborted", f"association aborted by {peer} {when}: source {source} "
                   f"({ABORT_SOURCE.get(source, 'unknown')}), reason {reason} "
                   f"({ABORT_REASON.get(reason, 'unknown')})", {"source": source, "reason": reason})


#: C-STORE failure statuses the same object meets again however often it is sent (PS3.4
#: Table B.2-1, PS3.7 Annex C): the data set or its SOP class is refused, not the moment.
#: Every other failure (A7xx Out of Resources, 0110 Processing Failure, 0213 Resource
#: Limitation, a code we do not know) may pass later and is retried.
_PERMANENT_STATUSES = frozenset({0x0117, 0x0122, 0x0124, 0x0211, 0x0212})


def store_failure_is_permanent(status: int) -> bool:
    """True for a C-STORE failure status that retrying the same object cannot clear."""
    return status >> 8 == 0xA9 or status >> 12 == 0xC or status in _PERMANENT_STATUSES


def association_failure_is_permanent(failure: Failure) -> bool:
    """True when PS3.8 says retrying the same association request is useless: the peer
    rejected it permanently (result 1), or accepted none of the proposed contexts."""
    return failure.kind == "no-context" or (failure.kind == "rejected" and failure.details.get("result") == 1)
