"""Stream received data sets straight into the spool's ``tmp/`` while they arrive.

Why: the sender waits for our answer until the image is durable, and the fsync of a
27 MB image costs as much as receiving it. Writing each fragment to ``spool/tmp`` as it
arrives and asking the kernel to start writeback every few MB (``sync_file_range``)
overlaps disk and network, so the final fsync has little left to do; the node also
never holds a whole image in memory.

How: :func:`mammocad.dicom.chunked.install_chunked_receive` (the one function that
touches pynetdicom's private internals) streams only on the threads of a registered
node's associations, into that node's spool. Any other pynetdicom SCP in the process
keeps the default in-memory behaviour. If pynetdicom's internals change, :func:`install`
returns False and the node falls back to writing from memory (same result, slower).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mammocad.dicom.chunked import (
    current_ae,
    current_association,
    install_chunked_receive,
    received_dataset_file,
)
from mammocad.logs import log_event
from mammocad.spool.layout import FILE_MODE, atomic_write_bytes, ensure_dir, fsync_dir

logger = logging.getLogger("mammocad.node")

_KICK_BYTES = 4 << 20
_SYNC_FILE_RANGE_WRITE = 2
_REGISTRY: weakref.WeakKeyDictionary[Any, Path] = weakref.WeakKeyDictionary()
#: Receive files still open, per association: a data set whose association ends before its
#: last fragment (A-ABORT, reset, read timeout) never reaches the C-STORE handler, and
#: pynetdicom neither closes nor removes its file (:func:`discard_open`).
_OPEN: weakref.WeakKeyDictionary[Any, set[SpoolTempFile]] = weakref.WeakKeyDictionary()
_OPEN_LOCK = threading.Lock()

_sync_file_range: Callable[..., int] | None  # sync_file_range(fd, offset, nbytes, flags) -> 0 or -1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _sync_file_range = _libc.sync_file_range
    _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
except (OSError, AttributeError):  # not Linux/glibc: writeback starts at fsync
    _sync_file_range = None


class SpoolTempFile:
    """The file-like object pynetdicom writes a data set into (write/flush/close/name/file).

    An error creating or writing it (read-only or full disk, no file descriptors left, file
    too large) is remembered instead of raised: raising would kill the association's
    network thread and abort the association; the C-STORE handler answers 0xA700.
    ``owner`` (the association) lets :func:`discard_open` remove the file when the
    association ends before the data set is complete.
    """

    def __init__(self, tmp_dir: Path, owner: Any = None) -> None:
        self.name = str(tmp_dir / f"{RX_PREFIX}{uuid.uuid4().hex}.part")
        self.size = 0
        self._kicked = 0
        self.error: OSError | None = None
        self.owner = owner
        self.committed = False
        self._lock = threading.Lock()  # commit (association thread) against discard (connection close)
        self._fd: int | None = None
        try:
            ensure_dir(tmp_dir)
            self._fd = os.open(self.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except OSError as exc:
            self.error = exc
            return
        if owner is not None:
            with _OPEN_LOCK:
                _OPEN.setdefault(owner, set()).add(self)

    @property
    def file(self) -> SpoolTempFile:  # pynetdicom calls ``.file.flush()``
        return self

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self.error is not None or self._fd is None:
            return len(data)
        view = memoryview(data).cast("B")
        try:
            while view:
                n = os.write(self._fd, view)
                self.size += n
                view = view[n:]
        except OSError as exc:
            self.error = exc
            return len(data)
        if _sync_file_range is not None and self.size - self._kicked >= _KICK_BYTES:
            _sync_file_range(self._fd, self._kicked, self.size - self._kicked, _SYNC_FILE_RANGE_WRITE)
            self._kicked = self.size
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        """Nothing buffered in user space."""

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.owner is not None:
            with _OPEN_LOCK:
                _OPEN.get(self.owner, set()).discard(self)

    def discard(self) -> bool:
        """Close and remove a file its association left incomplete; False when it was already
        closed (pynetdicom removes those itself) or committed to the spool meanwhile."""
        with self._lock:
            if self._fd is None or self.committed:
                return False
            self._close()
            try:
                os.unlink(self.name)
            except FileNotFoundError:
                return False
            return True

    def commit(self, target: Path, tmp_dir: Path) -> int:
        """fsync, rename to ``target``, fsync its folder; return the file size."""
        with self._lock:
            size = self._commit(target, tmp_dir)
            self.committed = True
            return size

    def _commit(self, target: Path, tmp_dir: Path) -> int:
        if self._fd is None:
            raise OSError(errno.EBADF, "received data set file already closed")
        os.fsync(self._fd)
        ensure_dir(target.parent)
        try:
            os.replace(self.name, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with open(self.name, "rb") as fh:  # tmp on another filesystem: copy durably
                return atomic_write_bytes(target, iter(lambda: fh.read(1 << 20), b""), tmp_dir)
        fsync_dir(target.parent)
        return self.size


RX_PREFIX = ".rx-"


def clean_leftovers(tmp_dir: Path) -> int:
    """Remove the partial receive files a killed node left in ``tmp_dir``; return how many.

    Only the node writes ``.rx-*`` files and one node runs per spool (the instance lock),
    so at start-up every one of them is a leftover, whatever its age.
    """
    removed = 0
    if not tmp_dir.is_dir():
        return 0
    for path in tmp_dir.glob(f"{RX_PREFIX}*.part"):
        try:
            path.unlink()
            removed += 1
        except OSError:
            continue
    return removed


def _registered_tmp() -> Path | None:
    ae = current_ae()
    return _REGISTRY.get(ae) if ae is not None else None


def _streaming() -> bool:
    return _registered_tmp() is not None


def _spool_file() -> SpoolTempFile | None:
    tmp = _registered_tmp()
    return SpoolTempFile(tmp, current_association()) if tmp is not None else None


def discard_open(assoc: Any) -> int:
    """Remove the receive files of ``assoc`` whose data set never completed; return how many.

    Call when its connection closes: without it each aborted transfer kept an open file
    descriptor and its partial image in ``spool/tmp`` until the node restarted.
    """
    with _OPEN_LOCK:
        files = _OPEN.pop(assoc, set())
    removed = [f for f in files if f.discard()]
    if removed:
        log_event(logger, "partial_receive_discarded", logging.WARNING, files=len(removed),
                  bytes=sum(f.size for f in removed), why="association ended before the data set was complete")
    return len(removed)


def install() -> bool:
    """Patch pynetdicom once per process; False when its internals are not as expected."""
    return install_chunked_receive(_streaming, _spool_file)


def register(ae: Any, tmp_dir: Path) -> bool:
    """Stream the associations of ``ae`` into ``tmp_dir``; False if streaming is unavailable."""
    if not install():
        logger.warning("streaming_receive_unavailable", extra={"fallback": "in-memory"})
        return False
    _REGISTRY[ae] = tmp_dir
    return True


def unregister(ae: Any) -> None:
    _REGISTRY.pop(ae, None)


def streamed_file(request: Any) -> SpoolTempFile | None:
    """The spool temp file holding this C-STORE request's data set, if it was streamed."""
    f = received_dataset_file(request)
    return f if isinstance(f, SpoolTempFile) else None


def data_set_offset(fh: Any) -> int:
    """Offset of the data set in a Part 10 file whose meta starts with its group length."""
    fh.seek(128)
    head = fh.read(16)
    if head[:4] != b"DICM" or head[4:8] != b"\x02\x00\x00\x00":
        raise ValueError("received file has no DICM prefix and file meta group length")
    return 144 + int.from_bytes(head[12:16], "little")
