"""A real syslog collector on loopback for tests: UDP (RFC 5426), TCP (RFC 6587 octet
counting) or TLS (RFC 5425), parsing each RFC 5424 message it receives."""

from __future__ import annotations

import re
import socket
import ssl
import threading
from dataclasses import dataclass

from tests.services import free_port

_RFC5424 = re.compile(rb"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?\]) (.*)$", re.DOTALL)
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Received:
    pri: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    xml: bytes


def parse(message: bytes) -> Received:
    match = _RFC5424.match(message)
    if match is None:
        raise AssertionError(f"not an RFC 5424 message: {message[:200]!r}")
    pri, ts, host, app, proc, msgid, _sd, msg = match.groups()
    if not msg.startswith(BOM):
        raise AssertionError(f"UTF-8 MSG without BOM: {msg[:40]!r}")
    return Received(int(pri), ts.decode(), host.decode(), app.decode(), proc.decode(), msgid.decode(),
                    msg[len(BOM):])


class SyslogListener:
    """``udp``, ``tcp`` or ``tls`` (with ``server_context``) on 127.0.0.1:``port``."""

    def __init__(self, scheme: str, port: int | None = None, server_context: ssl.SSLContext | None = None,
                 handshake_delay_s: float = 0.0, hold: threading.Event | None = None) -> None:
        self.scheme, self.port = scheme, port or free_port()
        self.context = server_context
        #: TLS: accept, then wait this long before answering the ClientHello (a slow collector)
        self.handshake_delay_s = handshake_delay_s
        #: TLS: accept, then answer no ClientHello until this is set (a collector that hangs,
        #: released by the test: the sender stays inside its batch exactly as long as needed)
        self.hold = hold
        self.received: list[Received] = []
        self.errors: list[str] = []
        #: connections accepted (TCP, TLS): a sender that keeps one connection open makes one
        self.connections = 0
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> SyslogListener:
        kind = socket.SOCK_DGRAM if self.scheme == "udp" else socket.SOCK_STREAM
        sock = socket.socket(socket.AF_INET, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.settimeout(0.2)
        if self.scheme != "udp":
            sock.listen(8)
        self._sock = sock
        self._spawn(self._udp if self.scheme == "udp" else self._accept)
        return self

    def _spawn(self, target, *args) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _keep(self, message: bytes) -> None:
        try:
            self.received.append(parse(message))
        except AssertionError as exc:
            self.errors.append(str(exc))

    def _udp(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                data, _ = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self._keep(data)

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._spawn(self._stream, conn)

    def _stream(self, conn: socket.socket) -> None:
        try:
            if self.context is not None:
                self._stop.wait(self.handshake_delay_s)
                while self.hold is not None and not self.hold.wait(0.2) and not self._stop.is_set():
                    pass  # waiting for the test's release, or the listener's stop
                conn.settimeout(30)  # a deadline for the handshake on a loaded machine, not a speed
                conn = self.context.wrap_socket(conn, server_side=True)
            conn.settimeout(0.2)
            buffer = b""
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                buffer += chunk
                while b" " in buffer[:12]:
                    length_text, _, rest = buffer.partition(b" ")
                    if not length_text.isdigit():
                        self.errors.append(f"bad octet count {length_text[:20]!r}")
                        return
                    length = int(length_text)
                    if len(rest) < length:
                        break
                    self._keep(rest[:length])
                    buffer = rest[length:]
        except (OSError, ssl.SSLError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
        for thread in self._threads:
            thread.join(2)

    def __enter__(self) -> SyslogListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
