"""Listening on a configured port, with an error that says which setting and what to do.

Shared by the node and the workers (DICOM and metrics ports), so it lives below both.

``[Errno 98] Address already in use`` named neither the setting that chose the port nor how
to find what holds it; a node whose metrics port was taken even reported the DICOM port.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class PortError(OSError):
    """A port could not be listened on; the message names the setting and what to do."""


def port_error(exc: OSError, key: str, host: str, port: int) -> PortError:
    """``exc`` (from bind) in words: ``key`` is the setting (or option) that chose ``port``."""
    where = f"{host or '0.0.0.0'}:{port} ({key})"
    if exc.errno == errno.EADDRINUSE:
        text = (f"cannot listen on {where}: another process already listens on port {port}. Find it with "
                f"`ss -ltnp 'sport = :{port}'` (as root to see its name), stop it, or set {key} to a free port")
    elif exc.errno == errno.EACCES:
        text = (f"cannot listen on {where}: ports below 1024 need root or CAP_NET_BIND_SERVICE "
                f"(AmbientCapabilities=CAP_NET_BIND_SERVICE in the systemd unit); or set {key} to 1024 or above")
    elif exc.errno == errno.EADDRNOTAVAIL:
        text = (f"cannot listen on {where}: {host} is not an address of this machine; set the host "
                "to one of its addresses (`ip -brief address`), or 0.0.0.0 for all of them")
    else:
        text = f"cannot listen on {where}: {exc.strerror or exc}"
    return PortError(exc.errno, text)


def listen(key: str, host: str, port: int, start: Callable[[], T]) -> T:
    """``start()``, its bind error raised as a :class:`PortError` naming ``key``."""
    try:
        return start()
    except PortError:
        raise
    except OSError as exc:
        raise port_error(exc, key, host, port) from exc
