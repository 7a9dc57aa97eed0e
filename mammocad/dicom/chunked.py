"""The one place that reaches into pynetdicom's private internals (receive path).

pynetdicom can write a received C-STORE data set to a temporary file instead of memory
(``_config.STORE_RECV_CHUNKED_DATASET``), but that switch is process-wide and the file
always goes to the system temp folder. The node needs it per association and into its
spool, so :func:`install_chunked_receive` replaces the switch with one that asks a
callback, and the temp-file factory with one that asks another. Everything that knows
pynetdicom's private names is in this module; if a pynetdicom upgrade moves them,
:func:`install_chunked_receive` returns False and the node falls back to in-memory
receive (same result, slower) — tests/node check that it still returns True.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from typing import Any

_LOCK = threading.Lock()
_installed: tuple[Callable[[], bool], Callable[[], Any]] | None = None


class _Switch:
    """Truthy when ``enabled()`` says so on the calling thread (pynetdicom reads it with ``if``)."""

    def __init__(self, previous: object, enabled: Callable[[], bool]) -> None:
        self.previous = previous
        self.enabled = enabled

    def __bool__(self) -> bool:
        return self.enabled() or bool(self.previous)


def _factory(original: Any, make_file: Callable[[], Any]) -> Any:
    def factory(*args: Any, **kwargs: Any) -> Any:
        made = make_file()
        return made if made is not None else original(*args, **kwargs)

    return factory


def install_chunked_receive(enabled: Callable[[], bool], make_file: Callable[[], Any]) -> bool:
    """Stream received data sets into ``make_file()`` on threads where ``enabled()`` is true.

    ``make_file`` returns a file-like object with ``write``, ``flush``, ``close``, ``name``
    and ``file`` (as :class:`tempfile.NamedTemporaryFile`), or None for the default file.
    Installs once per process; returns False when pynetdicom's internals are not as
    expected (nothing is changed then), or when a different pair of callbacks is
    already installed.
    """
    global _installed
    with _LOCK:
        if _installed is not None:
            return _installed == (enabled, make_file)
        try:
            from pynetdicom import _config, dimse_messages
        except ImportError:
            return False
        if not hasattr(_config, "STORE_RECV_CHUNKED_DATASET") or \
                getattr(dimse_messages, "NamedTemporaryFile", None) is not tempfile.NamedTemporaryFile:
            return False
        dimse_messages.NamedTemporaryFile = _factory(tempfile.NamedTemporaryFile, make_file)  # type: ignore[attr-defined]
        _config.STORE_RECV_CHUNKED_DATASET = _Switch(_config.STORE_RECV_CHUNKED_DATASET, enabled)  # type: ignore[assignment]
        _installed = (enabled, make_file)
        return True


def current_association() -> Any | None:
    """The association whose DUL or association thread is the calling thread, or None."""
    thread: Any = threading.current_thread()
    assoc = getattr(thread, "assoc", thread)  # DUL thread → its association; else the association thread
    return assoc if hasattr(assoc, "ae") else None


def current_ae() -> Any | None:
    """The AE whose association runs the calling thread (its DUL or association thread), or None."""
    return getattr(current_association(), "ae", None)


def received_dataset_file(request: Any) -> Any | None:
    """The file a C-STORE request's data set was streamed into, or None (held in memory)."""
    return getattr(request, "_dataset_file", None)
