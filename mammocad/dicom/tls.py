"""DICOM TLS (PS3.15 B.9 / BCP 195) contexts for the node, delivery and ``dest echo``.

The profile is the one DCMTK uses by default ("BCP 195, non-downgrading", ``+py``):
TLS 1.2 or newer, and for TLS 1.2 only the ECDHE/DHE AES-GCM suites. TLS 1.3 suites are
OpenSSL's (all AEAD). Certificates are verified against the configured CA file and only
that file (never the system trust store). By default, as in DCMTK, the peer's host name is
not compared with the certificate (PACS certificates rarely name the address the modality
uses), so trust rests on the CA file: give a CA that signs only DICOM peers. A destination
with ``verify_hostname`` also requires its certificate's subjectAltName to name the host
it is configured with (DNS name or IP address), so that no other certificate from the same
CA can stand in for it.

Plain values in, contexts out: this module sits below the config.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

#: BCP 195 TLS 1.2 suites in DCMTK's order (OpenSSL names). The one list for every TLS the
#: project speaks: the node, deliveries, ``dest echo`` and the audit syslog client.
BCP195_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384",
))
#: Seconds a caller has to finish the handshake when its socket has no read timeout of its
#: own (the node gives every accepted socket ``node.network_timeout_s``, which then applies).
HANDSHAKE_TIMEOUT_S = 10.0

#: ``(peer host, reason)`` of a failed server-side handshake.
FailureHook = Callable[[str, str], None]


class TLSConfigError(ValueError):
    """A certificate, key or CA file is missing or unusable; the message names the file."""


def encrypted_key(private_key: str, what: str) -> Callable[[], bytes]:
    """The password callback for ``load_cert_chain``: an encrypted key is refused by name.

    Without one OpenSSL asks for the pass phrase on the terminal: ``config check`` and
    ``dest add`` sat at "Enter PEM pass phrase:", and a service (no terminal) failed with
    "[Errno 22] Invalid argument". The services start unattended, so there is nobody to ask.
    """
    def refuse() -> bytes:
        raise TLSConfigError(f"{what}: private key {private_key!r} is encrypted (pass phrase); the services start "
                             f"unattended: decrypt it once (`openssl pkey -in {private_key} -out NEW.key`, `chmod 0640 NEW.key`) "
                             "and give NEW.key here")
    return refuse


def _load_chain(ctx: ssl.SSLContext, certificate: str, private_key: str, what: str) -> None:
    try:
        ctx.load_cert_chain(certificate, private_key, password=encrypted_key(private_key, what))
    except FileNotFoundError as exc:
        # ssl sets no filename on this error: name the file that is missing.
        missing = exc.filename or next((p for p in (certificate, private_key) if p and not os.path.isfile(p)),
                                       f"{certificate} or {private_key}")
        raise TLSConfigError(f"{what}: file not found: {missing}; give the path of an existing PEM file") from exc
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(f"{what}: cannot load certificate {certificate!r} with key {private_key!r}: "
                             f"{exc} (PEM files, key unencrypted and matching the certificate)") from exc


def _load_ca(ctx: ssl.SSLContext, ca_certificates: str, what: str) -> None:
    try:
        ctx.load_verify_locations(cafile=ca_certificates)
    except FileNotFoundError as exc:
        raise TLSConfigError(f"{what}: CA file not found: {ca_certificates}") from exc
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(f"{what}: cannot load CA certificates {ca_certificates!r}: {exc}") from exc


class _AcceptedSocket(ssl.SSLSocket):
    """A server-side TLS socket whose handshake runs in the connection's own thread.

    pynetdicom wraps each accepted socket in its accept loop. Handshaking there (Python's
    default) let one caller that opened TCP and sent nothing, or half a ClientHello, stop
    the loop for the whole handshake timeout, and N of them lock every real sender out for
    N times that. The handshake is therefore deferred to the first read or write, which
    pynetdicom does from the association's thread; it is bounded by the socket's read
    timeout (:data:`HANDSHAKE_TIMEOUT_S` when it has none), a failure is reported through
    the context's hook, and the connection then reads as closed by the peer.
    """

    _handshaken = False
    _failed = False

    def _handshake_once(self) -> bool:
        """Run the handshake on first use; False when it failed (the caller then sees a
        closed connection, which pynetdicom ends quietly: the hook has logged why)."""
        if not self._handshaken:
            self._handshaken = True
            previous = self.gettimeout()
            self.settimeout(previous if previous is not None else HANDSHAKE_TIMEOUT_S)
            try:
                self.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                self._failed = True
                hook = getattr(self.context, "on_failure", None)
                if hook is not None:
                    hook(_peer_host(self), describe_failure(exc, self.gettimeout()))
            finally:
                self.settimeout(previous)
        return not self._failed

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        return super().recv(buflen, flags) if self._handshake_once() else b""

    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        return super().recv_into(buffer, nbytes, flags) if self._handshake_once() else 0  # type: ignore[arg-type]

    def send(self, data: Any, flags: int = 0) -> int:
        if not self._handshake_once():
            raise ConnectionAbortedError("TLS handshake failed")
        return super().send(data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        if not self._handshake_once():
            raise ConnectionAbortedError("TLS handshake failed")
        super().sendall(data, flags)


def _peer_host(sock: socket.socket) -> str:
    try:
        return str(sock.getpeername()[0])
    except OSError:
        return ""


class _ServerContext(ssl.SSLContext):
    """Server context whose sockets handshake outside the accept loop and report failures.

    pynetdicom drops a failed handshake without a word; ``on_failure`` gives the node a
    hook for the log and the audit trail.
    """

    on_failure: FailureHook | None = None
    sslsocket_class = _AcceptedSocket

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:  # type: ignore[override]
        kwargs["do_handshake_on_connect"] = False  # no I/O here: see _AcceptedSocket
        return super().wrap_socket(sock, *args, **kwargs)


#: OpenSSL verify codes for a certificate outside its validity dates (X509_V_ERR_CERT_*).
#: They come with CERTIFICATE_VERIFY_FAILED like an unknown CA, and were reported as one.
_EXPIRED = {9: "is not valid yet", 10: "has expired"}


def describe_failure(exc: BaseException, timeout_s: float | None = HANDSHAKE_TIMEOUT_S) -> str:
    """A handshake error in words an admin can act on (``timeout_s``: the bound that expired)."""
    reason = getattr(exc, "reason", None) or ""
    text = str(exc)
    if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE" or "did not return a certificate" in text:
        return "caller presented no client certificate (node.tls.require_client_certificate is true)"
    verify_code = getattr(exc, "verify_code", None)
    if verify_code in _EXPIRED:
        return f"caller's certificate {_EXPIRED[verify_code]} (its validity dates): {text}"
    if reason in ("CERTIFICATE_VERIFY_FAILED", "TLSV1_ALERT_UNKNOWN_CA") or "unknown ca" in text.lower():
        return f"certificate not trusted (not signed by a CA in the CA file): {text}"
    if reason in ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION"):
        return (f"caller offered only SSL 3, TLS 1.0 or TLS 1.1 ({reason}); the node accepts TLS 1.2 and 1.3 "
                "(BCP 195): update the caller's TLS settings")
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no TLS handshake within {timeout_s or HANDSHAKE_TIMEOUT_S:g} s (a plain DICOM caller on the TLS port?)"
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST"):
        return f"not a TLS client hello ({reason}): a plain DICOM caller on the TLS port?"
    return f"TLS handshake failed: {text}"


def server_context(*, certificate: str, private_key: str, ca_certificates: str = "",
                   require_client_certificate: bool = True, on_failure: FailureHook | None = None
                   ) -> ssl.SSLContext:
    """The node's context; with ``require_client_certificate`` a caller must present a
    certificate signed by a CA in ``ca_certificates``."""
    ctx = _ServerContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(BCP195_CIPHERS)
    # OP_NO_RENEGOTIATION: a TLS 1.2 caller asking to renegotiate makes the node redo the
    # expensive (private-key) half of a handshake on demand, as often as it likes (a known DoS,
    # CVE-2011-1473). OpenSSL 3 refuses client renegotiation by default; older builds and a
    # system openssl.cnf that sets Options = ClientRenegotiation do not. The node never
    # renegotiates itself, so nothing is lost.
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    _load_chain(ctx, certificate, private_key, "node.tls")
    if ca_certificates:
        _load_ca(ctx, ca_certificates, "node.tls.ca_certificates")
    if require_client_certificate:
        if not ca_certificates:
            raise TLSConfigError("node.tls.require_client_certificate needs node.tls.ca_certificates "
                                 "(the CA whose certificates callers must present)")
        ctx.verify_mode = ssl.CERT_REQUIRED
    elif ca_certificates:
        ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.on_failure = on_failure
    return ctx


def client_context(*, ca_certificates: str, certificate: str = "", private_key: str = "",
                   verify_hostname: bool = False, what: str = "destination") -> ssl.SSLContext:
    """An SCU context trusting ``ca_certificates`` and nothing else, presenting ``certificate``
    when given.

    Not ``ssl.create_default_context``: that also loads the system trust store, and with no
    host name check any certificate from any public CA (a web server's, bought for any
    domain) would then pass for the PACS.

    With ``verify_hostname`` the peer's certificate must name, in its subjectAltName, the
    ``server_hostname`` the socket is wrapped with (pynetdicom's ``tls_args=(ctx, host)``;
    an IP address is matched against IP entries). The subject's CN is not consulted
    (RFC 6125, and what browsers do): a CN is often a display name, not an address.
    """
    if not ca_certificates:
        raise TLSConfigError(f"{what}: TLS needs ca_certificates (the CA that signed the peer's certificate)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(BCP195_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = verify_hostname  # off: see the module docstring; the chain is still verified
    ctx.hostname_checks_common_name = False
    _load_ca(ctx, ca_certificates, f"{what}.ca_certificates")
    if certificate or private_key:
        if not (certificate and private_key):
            raise TLSConfigError(f"{what}: certificate and private_key go together: give both or neither")
        _load_chain(ctx, certificate, private_key, what)
    return ctx


def peer_subject(sock: object) -> dict[str, str] | None:
    """The subject of the certificate the peer presented (``{"CN": ..., "O": ...}``), or
    None on a plain connection or when it presented none."""
    if not isinstance(sock, ssl.SSLSocket):
        return None
    cert = sock.getpeercert()
    if not cert:
        return None
    out: dict[str, str] = {}
    for rdn in cert.get("subject", ()):
        for pair in rdn:
            key, value = str(pair[0]), str(pair[1])
            out[_SHORT.get(key, key)] = value
    return out


_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
          "stateOrProvinceName": "ST", "localityName": "L", "emailAddress": "emailAddress"}


def parse_subject(text: str) -> dict[str, str]:
    """``"CN=pacs, O=Hospital"`` → ``{"CN": "pacs", "O": "Hospital"}``; ValueError when malformed."""
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"certificate subject must be KEY=VALUE[, KEY=VALUE...] (e.g. CN=pacs), got {text!r}")
        out[key.strip()] = value.strip()
    return out


def subject_matches(required: dict[str, str], presented: dict[str, str] | None) -> bool:
    """Every KEY=VALUE of ``required`` is in the presented subject."""
    return presented is not None and all(presented.get(k) == v for k, v in required.items())


def subject_text(subject: dict[str, str] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in subject.items()) if subject else "(none)"


_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL)


def _der_item(der: bytes, pos: int) -> tuple[int, int, int]:
    """``(tag, content start, content end)`` of the DER item at ``pos``."""
    tag, length, pos = der[pos], der[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        length, pos = int.from_bytes(der[pos:pos + count], "big"), pos + count
    if pos + length > len(der):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _der_time(der: bytes, pos: int) -> tuple[datetime, int]:
    tag, start, end = _der_item(der, pos)
    text = der[start:end].decode("ascii")
    if tag == 0x17:  # UTCTime, YYMMDDHHMMSSZ: 50-99 are 19xx (RFC 5280 4.1.2.5.1)
        text = ("19" if int(text[:2]) >= 50 else "20") + text
    elif tag != 0x18:  # GeneralizedTime, YYYYMMDDHHMMSSZ
        raise ValueError(f"not a certificate time (DER tag {tag:#x})")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC), end


class CertificateDates(NamedTuple):
    """When one certificate of a PEM file stops being valid, and whose it is."""

    not_after: datetime
    #: The subject's commonName ("" when it has none): names a CA in a bundle of several.
    common_name: str


#: DER of the commonName attribute type (OID 2.5.4.3).
_CN_OID = b"\x06\x03\x55\x04\x03"


def _der_common_name(der: bytes, pos: int) -> str:
    """The first commonName in the X.501 Name at ``pos`` ("" when it has none)."""
    _, start, end = _der_item(der, pos)  # Name: SEQUENCE OF RelativeDistinguishedName
    while start < end:
        _, rdn, rdn_end = _der_item(der, start)  # SET OF AttributeTypeAndValue
        while rdn < rdn_end:
            _, attr, attr_end = _der_item(der, rdn)
            if der[attr:attr + len(_CN_OID)] == _CN_OID:
                _, value, value_end = _der_item(der, attr + len(_CN_OID))
                return der[value:value_end].decode("utf-8", "replace")
            rdn = attr_end
        start = rdn_end
    return ""


def certificate_dates(path: str) -> list[CertificateDates]:
    """The end of validity (notAfter, UTC) and subject CN of each certificate in the PEM
    file ``path``, in file order (leaf first, then its chain; or every CA of a CA bundle).

    Read from the DER: the ssl module decodes a certificate only once a peer has presented
    it, which is too late for ``config check`` to say that ours, or a CA we trust, has run
    out. OSError when unreadable, ValueError when malformed.
    """
    with open(path, "rb") as f:
        blocks = _PEM_CERTIFICATE.findall(f.read())
    out = []
    for block in blocks:
        der = base64.b64decode(b"".join(block.split()))
        _, start, _ = _der_item(der, 0)  # Certificate
        _, pos, _ = _der_item(der, start)  # TBSCertificate
        if der[pos] == 0xA0:  # [0] version
            pos = _der_item(der, pos)[2]
        for _ in range(3):  # serialNumber, signature, issuer
            pos = _der_item(der, pos)[2]
        _, validity, subject = _der_item(der, pos)
        _, after_not_before = _der_time(der, validity)
        out.append(CertificateDates(_der_time(der, after_not_before)[0], _der_common_name(der, subject)))
    return out
