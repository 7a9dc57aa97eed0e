"""C-ECHO a configured destination and say exactly why it failed when it does.

Used by ``mammocad dest echo NAME``: the first thing an admin runs after adding a PACS,
so "it didn't work" must become "connection refused", "timed out", "rejected: called
AE title not recognised" and so on, each with what to check next.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from pynetdicom import evt
from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_RJ

from mammocad.config.settings import Destination
from mammocad.dicom import network

# PS3.8 9.3.4 (A-ASSOCIATE-RJ) and 9.3.8 (A-ABORT), in words.
_RJ_RESULT = {1: "rejected-permanent", 2: "rejected-transient"}
_RJ_SOURCE = {
    1: "DICOM UL service-user (the peer application)",
    2: "DICOM UL service-provider (ACSE related)",
    3: "DICOM UL service-provider (presentation related)",
}
_RJ_REASON = {
    1: {1: "no reason given", 2: "application context name not supported",
        3: "calling AE title not recognised", 7: "called AE title not recognised"},
    2: {1: "no reason given", 2: "protocol version not supported"},
    3: {1: "temporary congestion", 2: "local limit exceeded"},
}
_RJ_HINT = {
    (1, 3): "the peer does not know our AE title: add it (with our host/port) to the peer's modality list",
    (1, 7): "the peer's AE title differs from the configured one: check destinations.ae_title",
    (3, 1): "the peer is busy: try again later",
    (3, 2): "the peer has too many associations open: try again later",
}
_ABORT_SOURCE = {0: "service-user (the peer application)", 1: "reserved", 2: "service-provider (the peer's network layer)"}
_ABORT_REASON = {
    0: "reason not specified", 1: "unrecognized PDU", 2: "unexpected PDU",
    4: "unrecognized PDU parameter", 5: "unexpected PDU parameter", 6: "invalid PDU parameter value",
}


@dataclass
class EchoResult:
    """Outcome of one C-ECHO. ``kind`` is "success" or the failure category."""

    ok: bool
    kind: str
    message: str
    rtt_ms: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


class _Recorder(logging.Handler):
    """Keeps pynetdicom's socket error text: it is the only place the OSError surfaces."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def echo(dest: Destination, calling_ae: str, timeout: float = 10.0) -> EchoResult:
    """Associate with ``dest`` as ``calling_ae``, send C-ECHO, release; never raises for
    network problems, which come back as a failed :class:`EchoResult`."""
    peer = f"{dest.ae_title}@{dest.host}:{dest.port}"
    try:
        socket.getaddrinfo(dest.host, dest.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return EchoResult(False, "unknown-host", f"cannot resolve host {dest.host!r} ({exc.strerror}): "
                          "check destinations.host and DNS")
    ae = network.verification_scu(calling_ae, timeout_s=timeout)
    seen: dict[str, Any] = {"connected": False, "rj": None, "abort": None}

    def on_open(event: evt.Event) -> None:
        seen["connected"] = True

    def on_pdu(event: evt.Event) -> None:
        pdu = event.pdu
        if isinstance(pdu, A_ASSOCIATE_RJ):
            seen["rj"] = (pdu.result, pdu.source, pdu.reason_diagnostic)
        elif isinstance(pdu, A_ABORT_RQ):
            seen["abort"] = (pdu.source, pdu.reason_diagnostic)

    recorder = _Recorder()
    pn_logger = logging.getLogger("pynetdicom")
    pn_logger.addHandler(recorder)
    try:
        start = time.monotonic()
        assoc = network.associate(ae, dest, evt_handlers=[
            (evt.EVT_CONN_OPEN, on_open), (evt.EVT_PDU_RECV, on_pdu)])
        if not assoc.is_established:
            return _association_failure(peer, assoc, seen, recorder.messages, timeout)
        status = assoc.send_c_echo()
        rtt_ms = (time.monotonic() - start) * 1000.0
        aborted = assoc.is_aborted
        if assoc.is_established:
            assoc.release()
    finally:
        pn_logger.removeHandler(recorder)
        ae.shutdown()
    return _echo_outcome(peer, status, rtt_ms, aborted or seen["abort"] is not None, seen, timeout)


def _association_failure(
    peer: str, assoc: Any, seen: dict[str, Any], log: list[str], timeout: float
) -> EchoResult:
    if not seen["connected"]:
        text = next((m.split(":", 1)[1].strip() for m in log if m.startswith("TCP Initialisation Error")), "")
        low = text.lower()
        if "refused" in low:
            return EchoResult(False, "connection-refused", f"connection refused by {peer}: nothing listens "
                              "on that port (wrong port, peer down, or a firewall rejecting)", details={"error": text})
        if "timed out" in low or "timeout" in low:
            return EchoResult(False, "timeout", f"no answer from {peer} within {timeout:g} s while connecting: "
                              "host down, wrong address, or a firewall dropping packets", details={"error": text})
        return EchoResult(False, "network-error", f"cannot connect to {peer}: {text or 'unknown network error'}",
                          details={"error": text})
    if seen["rj"] is not None:
        result, source, reason = seen["rj"]
        words = (f"result {result} ({_RJ_RESULT.get(result, 'unknown')}), source {source} "
                 f"({_RJ_SOURCE.get(source, 'unknown')}), reason {reason} "
                 f"({_RJ_REASON.get(source, {}).get(reason, 'reserved/unknown')})")
        hint = _RJ_HINT.get((source, reason), "check the peer's log for why it refused")
        return EchoResult(False, "rejected", f"association rejected by {peer}: {words}; {hint}",
                          details={"result": result, "source": source, "reason": reason})
    if seen["abort"] is not None:
        return _aborted(peer, seen["abort"], "during association negotiation")
    if assoc.is_aborted and not assoc.accepted_contexts and assoc.rejected_contexts:
        return EchoResult(False, "no-verification", f"{peer} accepted the association but refused the "
                          "Verification SOP class (C-ECHO): the peer does not support echo")
    return EchoResult(False, "timeout", f"{peer} accepted the TCP connection but did not answer the "
                      f"association request within {timeout:g} s: is it a DICOM service?")


def _aborted(peer: str, abort: tuple[int, int], when: str) -> EchoResult:
    source, reason = abort
    return EchoResult(False, "aborted", f"association aborted by {peer} {when}: source {source} "
                      f"({_ABORT_SOURCE.get(source, 'unknown')}), reason {reason} "
                      f"({_ABORT_REASON.get(reason, 'unknown')})", details={"source": source, "reason": reason})


def _echo_outcome(
    peer: str, status: Any, rtt_ms: float, aborted: bool, seen: dict[str, Any], timeout: float
) -> EchoResult:
    code = getattr(status, "Status", None)
    if code is None:
        if seen["abort"] is not None:
            result = _aborted(peer, seen["abort"], "before answering the C-ECHO")
            result.message += ("; peers that accept any association but check the caller do this: "
                               "register node.ae_title (our calling AE) in the peer's modality list")
            return result
        if aborted:
            return EchoResult(False, "aborted", f"association with {peer} aborted before the C-ECHO answer")
        return EchoResult(False, "timeout", f"{peer} did not answer the C-ECHO within {timeout:g} s")
    if code != 0x0000:
        comment = getattr(status, "ErrorComment", "")
        extra = f" ({comment})" if comment else ""
        return EchoResult(False, "status", f"{peer} answered C-ECHO with non-success status 0x{code:04X}{extra}",
                          rtt_ms=rtt_ms, details={"status": code})
    return EchoResult(True, "success", f"C-ECHO to {peer} succeeded in {rtt_ms:.1f} ms", rtt_ms=rtt_ms)
