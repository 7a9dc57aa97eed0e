"""RFC 5424 syslog messages carrying audit XML, over UDP, TCP or TLS.

Framing follows IHE ATNA (ITI-20): facility authpriv (10), APP-NAME ``mammocad``, MSGID
``IHE+RFC-3881``, no structured data, and the XML as the UTF-8 MSG after a byte order mark
(RFC 5424 section 6.4). UDP sends one message per datagram (RFC 5426); TCP and TLS use
octet counting, ``LEN SP MSG`` (RFC 6587 section 3.4.1, RFC 5425 section 4.3).
"""

from __future__ import annotations

import os
import select
import socket
import ssl
from datetime import UTC, datetime

from mammocad.dicom.tls import BCP195_CIPHERS, encrypted_key

FACILITY_AUTHPRIV = 10
SEVERITY_WARNING, SEVERITY_NOTICE = 4, 5
MSGID = "IHE+RFC-3881"
BOM = b"\xef\xbb\xbf"


def _printable(text: str, limit: int) -> str:
    """RFC 5424 header fields: printable US-ASCII without spaces, or the NILVALUE ``-``."""
    cleaned = "".join(c for c in text if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


def frame(xml: bytes, *, severity: int = SEVERITY_NOTICE, app_name: str = "mammocad",
          hostname: str | None = None, when: datetime | None = None) -> bytes:
    """One RFC 5424 message: ``<85>1 2026-12-02T04:40:00.123Z host mammocad 1234 IHE+RFC-3881 - BOM<xml>``."""
    pri = FACILITY_AUTHPRIV * 8 + severity
    ts = (when or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    header = (f"<{pri}>1 {ts} {_printable(hostname or socket.gethostname(), 255)} {_printable(app_name, 48)} "
              f"{os.getpid()} {MSGID} - ")
    return header.encode("ascii") + BOM + xml


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 / RFC 5425 framing for stream transports."""
    return str(len(message)).encode("ascii") + b" " + message


def tls_context(ca_file: str = "", cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """The client context for a ``tls://`` collector (RFC 5425: TLS 1.2+, the collector's
    certificate verified against ``ca_file``, else the system trust store).

    The TLS 1.2 suites are the node's BCP 195 list, not Python's default (which also allows
    AES-CBC with SHA-256/384): the audit trail carries patient IDs, and a collector that
    offers only CBC is refused rather than used with a weaker suite than DICOM gets.

    Raises ValueError naming the ``[audit]`` key and file that cannot be loaded: the config
    calls it when it is loaded, so ``config check`` refuses what the services would.
    """
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file or None)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"audit.ca_certificates: cannot load CA certificates {ca_file!r}: "
                         f"{exc.strerror or exc} (a PEM file; empty uses the system trust store)") from exc
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(BCP195_CIPHERS)
    if cert_file:
        try:
            ctx.load_cert_chain(cert_file, key_file or None,
                                password=encrypted_key(key_file or cert_file, "audit.private_key"))
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"audit.certificate/audit.private_key: cannot load certificate {cert_file!r} with "
                             f"key {key_file!r}: {exc.strerror or exc} (PEM files, key unencrypted and "
                             "matching the certificate)") from exc
    return ctx


class SyslogClient:
    """One collector. ``send`` raises when the message did not go out (an OSError, or a
    ValueError for a host name IDNA cannot encode); the caller decides what to do (the audit
    sender drops and counts it). Not thread-safe: one sender
    thread owns it."""

    def __init__(self, scheme: str, host: str, port: int, *, ca_file: str = "", cert_file: str = "",
                 key_file: str = "", timeout_s: float = 5.0) -> None:
        if scheme not in ("udp", "tcp", "tls"):
            raise ValueError(f"syslog transport must be udp, tcp or tls, got {scheme!r}")
        self.scheme, self.host, self.port, self.timeout_s = scheme, host, port, timeout_s
        self._files = (ca_file, cert_file, key_file)
        self._context = tls_context(ca_file, cert_file, key_file) if scheme == "tls" else None
        self._sock: socket.socket | None = None

    @property
    def address(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def fresh(self) -> SyslogClient:
        """The same collector with nothing shared: a forked child's own client. The parent's
        SSL context carries OpenSSL state (session cache, locks) that is the parent's."""
        ca_file, cert_file, key_file = self._files
        return SyslogClient(self.scheme, self.host, self.port, ca_file=ca_file, cert_file=cert_file,
                            key_file=key_file, timeout_s=self.timeout_s)

    def _connect(self) -> socket.socket:
        if self.scheme == "udp":
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.settimeout(self.timeout_s)
            return sock
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        if self._context is not None:
            try:
                sock = self._context.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        return sock

    def _peer_closed(self, sock: socket.socket) -> bool:
        """A collector that went away is seen only at the next write, which would then vanish
        into the kernel buffer: look for its close first (a readable socket reading EOF).

        The look must not wait. A TLS 1.3 collector sends session tickets after the
        handshake: they make the socket readable but carry no application data, so a read
        in the socket's timeout mode waited ``timeout_s`` for data that never comes, then
        took the timeout for a dead collector and reconnected (5 s and a new handshake per
        message, and lost messages when ``close`` gave up waiting)."""
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        timeout = sock.gettimeout()
        sock.setblocking(False)
        try:
            data = sock.recv(1) if self._context is not None else sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, ssl.SSLWantReadError):
            return False  # TLS records without data (session tickets): the collector is there
        except OSError:
            return True
        finally:
            sock.settimeout(timeout)
        return data == b""

    def send(self, message: bytes) -> None:
        if self._sock is not None and self.scheme != "udp" and self._peer_closed(self._sock):
            self.close()
        if self._sock is None:
            self._sock = self._connect()
        try:
            if self.scheme == "udp":
                self._sock.sendto(message, (self.host, self.port))
            else:
                self._sock.sendall(octet_counted(message))
        except Exception:  # whatever failed, the stream may hold half a frame: the next send reconnects
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
