"""One audit record for an event that several processes see: the first to claim it reports it.

Every process that re-reads the configuration file (the node, and each results and analysis
worker process: Celery's prefork children each hold their own ConfigWatcher) sees the same
edit; each wrote its own Security Alert, so one edit of ``[[destinations]]`` became five
records. No process can own the job: the node polls only when an association arrives, and any
worker may be stopped or killed at any time. So the first process that sees a change claims
it by creating ``<spool>/audit-claims/<key>`` with ``O_EXCL`` (atomic on local disks and on
NFSv3+), and reports it; the others find the file and skip. Nothing is held open or locked:
a process that dies leaves a claim that blocks only a duplicate of what it claimed.

The caller builds the key from what identifies one change (for a reload: the file, the
version of it on disk, the section and its new value), so a later change back and forth
gets a key of its own however old the claims are. Claims older than :data:`KEEP_S` are
removed when a new one is made; a process that had not looked at the file for that long
reports the change again (a duplicate, never a missing record).

Known limit: a process killed between its claim and its audit sender's write (the trail
queues in memory, milliseconds) loses that record, as it loses any message still queued.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from mammocad.logs import log_event, safe_error

logger = logging.getLogger("mammocad.audit")

#: The spool's folder of claims (docs/ARCHITECTURE.md, the spool layout).
FOLDER = "audit-claims"
#: Age after which a claim is removed: far above the time every live process takes to see an
#: edit (its next association or task), small enough that the folder stays a few files.
KEEP_S = 30 * 86400.0
_FILE_MODE, _DIR_MODE = 0o640, 0o750


def claim_key(*parts: Any) -> str:
    """A file name for the event made of ``parts`` (JSON-able data; anything else as text)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def claim(spool_dir: str | os.PathLike[str], key: str, what: str, now: float | None = None) -> bool:
    """True when this process is the first to claim ``key`` and must report the event.

    Also True when the claim cannot be made (spool missing, read-only, full): a duplicate
    record is better than none; logged as ``audit_claim_failed``. ``what`` says what the
    claim is for, in the file (for whoever reads the folder) and the log.
    """
    folder = Path(spool_dir) / FOLDER
    try:
        try:
            os.mkdir(folder, _DIR_MODE)  # not the spool itself: a spool that is not there is not ours to make
        except FileExistsError:
            pass
        else:
            os.chmod(folder, _DIR_MODE)  # whatever the umask, as the rest of the spool
        _remove_old(folder, time.time() if now is None else now)
        fd = os.open(folder / key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    except FileExistsError:
        return False
    except OSError as exc:
        log_event(logger, "audit_claim_failed", logging.WARNING, folder=str(folder), claim=what,
                  error=safe_error(exc), action="reporting it here too (another process may also)")
        return True
    try:
        os.write(fd, json.dumps({"claim": what, "pid": os.getpid(), "host": socket.gethostname(),
                                 "time": time.time()}).encode() + b"\n")
    except OSError:
        pass  # the file's existence is the claim; its content is for people
    finally:
        os.close(fd)
    return True


def _remove_old(folder: Path, now: float) -> None:
    for entry in os.scandir(folder):
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime > KEEP_S:
                os.unlink(entry.path)
        except OSError:
            pass  # removed by another process first, or not ours to remove: housekeeping only
