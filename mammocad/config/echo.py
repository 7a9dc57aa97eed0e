"""C-ECHO a configured destination and say exactly why it failed when it does.

Used by ``mammocad dest echo NAME``: the first thing an admin runs after adding a PACS,
so "it didn't work" must become "connection refused", "timed out", "rejected: called
AE title not recognised" and so on, each with what to check next.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any

from mammocad.config.settings import Destination
from mammocad.dicom import failures, network
from mammocad.dicom.failures import Watch


@dataclass
class EchoResult:
    """Outcome of one C-ECHO. ``kind`` is "success" or the failure category."""

    ok: bool
    kind: str
    message: str
    rtt_ms: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


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
    try:
        tls_ctx = dest.tls_context()
    except ValueError as exc:
        return EchoResult(False, "tls", str(exc))
    watch = Watch()
    try:
        start = time.monotonic()
        assoc = network.associate(ae, dest, evt_handlers=watch.handlers(), tls=tls_ctx)
        if not assoc.is_established:
            failure = watch.explain(peer, assoc, timeout)
            return EchoResult(False, failure.kind if failure.kind != "no-context" else "no-verification",
                              failure.message if failure.kind != "no-context" else
                              f"{peer} accepted the association but refused the Verification SOP class "
                              "(C-ECHO): the peer does not support echo", details=failure.details)
        status = assoc.send_c_echo()
        rtt_ms = (time.monotonic() - start) * 1000.0
        aborted = assoc.is_aborted
        if assoc.is_established:
            assoc.release()
    finally:
        ae.shutdown()
    return _echo_outcome(peer, status, rtt_ms, aborted or watch.abort is not None, watch, timeout)


def _echo_outcome(peer: str, status: Any, rtt_ms: float, aborted: bool, watch: Watch, timeout: float
                  ) -> EchoResult:
    code = getattr(status, "Status", None)
    if code is None:
        if watch.abort is not None:
            failure = failures.aborted(peer, watch.abort, "before answering the C-ECHO")
            result = EchoResult(False, failure.kind, failure.message, details=failure.details)
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
