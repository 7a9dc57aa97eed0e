"""A syslog collector that does not answer: connections to it hang until the client's timeout.

As a collector behind a firewall that drops packets, or a host that is down: the audit
sender's TCP connect waits its socket timeout (5 s) holding the batch in flight, and what is
queued behind that batch waits too. On Linux a listening socket with a backlog of 0 takes
one connection into its accept queue; with that one taken (and never accepted), further
SYNs are dropped and a client's ``connect`` hangs.
"""

from __future__ import annotations

import socket
from types import TracebackType


class Blackhole:
    """``with Blackhole() as hole: ... hole.url`` (``tcp://127.0.0.1:PORT``)."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = self._listener.getsockname()[1]
        self._filler = socket.create_connection(("127.0.0.1", self.port), timeout=5)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._filler.close()
        self._listener.close()
