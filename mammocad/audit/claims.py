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

A process killed between its claim and its audit sender's write (the trail queues in memory,
milliseconds) used to lose that record for good: its claim made every other process skip it.
A claim is therefore re-taken, by the first process that finds it so, when its owner may have
died before its record was written:

- the claim names this host and its process (pid and start time) no longer runs, and the
  claim is not *settled*;
- the claim names another host sharing the spool (whose processes cannot be checked), is not
  settled, and is older than :data:`FOREIGN_S`;
- the claim is still empty (killed between creating and writing it) after :data:`UNWRITTEN_S`.

Settled: the owner, still running :data:`SETTLE_S` after its claim (far above the
milliseconds its sender takes to write the record), writes so in the claim. Before, a claimer
that had sent its record and exited normally (a restarted worker, a recycled pool process)
left a claim that the next process to see the change took as abandoned: the change was
reported twice. Only a claimer that dies or exits within :data:`SETTLE_S` of its claim leaves
it open. A claim of another host is given :data:`FOREIGN_S`, ten times that, so that its
owner, if alive, has long settled it, even on a host whose clock runs minutes apart; a host
that died (or lost the spool) with its claim unsettled no longer leaves the change
unreported for good. Settling goes by time, not by the sender's word (the trail does not
tell when one message is written): its file write comes first in each batch, and a syslog
collector that hangs costs socket timeouts of 5 s, then back-off; a sender stuck longer than
:data:`SETTLE_S` in a process that then dies would lose that record, as any record still
queued when a process dies.

Re-taking is itself claimed with ``O_EXCL`` (a marker named after that claim file), so one
process reports it. The owner may have written its record before it died: then the change is
reported twice, a duplicate, never a missing record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
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
#: Age after which a claim with no owner written in it is taken for its owner's death: the
#: owner writes it right after creating it.
UNWRITTEN_S = 60.0
#: How long after its claim a running owner settles it (writes that its record went out).
SETTLE_S = 60.0
#: Age after which an unsettled claim of another host's process is taken for its owner's death.
FOREIGN_S = 10 * SETTLE_S
_FILE_MODE, _DIR_MODE = 0o640, 0o750


def claim_key(*parts: Any) -> str:
    """A file name for the event made of ``parts`` (JSON-able data; anything else as text)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def claim(spool_dir: str | os.PathLike[str], key: str, what: str, now: float | None = None) -> bool:
    """True when this process is the first to claim ``key`` and must report the event, or
    re-took a claim its owner abandoned (died; see the module's docstring).

    Also True when the claim cannot be made (spool missing, read-only, full): a duplicate
    record is better than none; logged as ``audit_claim_failed``. ``what`` says what the
    claim is for, in the file (for whoever reads the folder) and the log.
    """
    folder, at = Path(spool_dir) / FOLDER, time.time() if now is None else now
    try:
        try:
            os.mkdir(folder, _DIR_MODE)  # not the spool itself: a spool that is not there is not ours to make
        except FileExistsError:
            pass
        else:
            os.chmod(folder, _DIR_MODE)  # whatever the umask, as the rest of the spool
        _remove_old(folder, at)
        fd = os.open(folder / key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    except FileExistsError:
        return _retake(folder, key, what, at)
    except OSError as exc:
        log_event(logger, "audit_claim_failed", logging.WARNING, folder=str(folder), claim=what,
                  error=safe_error(exc), action="reporting it here too (another process may also)")
        return True
    try:
        os.write(fd, _owner(what))
    except OSError:
        pass  # the file's existence is the claim; its content is for people, and for _retake
    finally:
        os.close(fd)
    _settle_later(folder / key, what)
    return True


def _settle_later(path: Path, what: str) -> None:
    """Settle the claim at ``path`` :data:`SETTLE_S` from now, if this process still runs then."""
    timer = threading.Timer(SETTLE_S, _settle, (path, what))
    timer.name, timer.daemon = "mammocad-audit-claim", True  # a process exiting does not wait for it
    timer.start()


def _settle(path: Path, what: str) -> None:
    """Write into this process's claim that its record went out; never raises.

    Only a claim still naming this process: one re-taken since is its re-taker's to settle.
    """
    try:
        owner = json.loads(path.read_bytes())
        if (owner.get("pid"), owner.get("host")) != (os.getpid(), socket.gethostname()):
            return
        tmp = path.with_name(f".{path.name}.{os.getpid()}.settle")
        tmp.write_bytes(json.dumps({**owner, "settled": time.time()}).encode() + b"\n")
        os.replace(tmp, path)
    except (OSError, ValueError, AttributeError) as exc:  # gone (removed as old), or unwritable
        log_event(logger, "audit_claim_unsettled", logging.DEBUG, claim=what, error=safe_error(exc))


def _owner(what: str) -> bytes:
    return json.dumps({"claim": what, "pid": os.getpid(), "start": _start_time(os.getpid()),
                       "host": socket.gethostname(), "time": time.time()}).encode() + b"\n"


def _start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, Linux), telling it from a later
    process that reuses its pid; None where /proc does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _abandoned(path: Path, now: float) -> os.stat_result | None:
    """The claim file's stat when its owner is gone (see the module's docstring), else None."""
    st = path.stat()
    try:
        owner = json.loads(path.read_bytes())
        pid, host, start = int(owner["pid"]), owner["host"], owner.get("start")
    except (ValueError, KeyError, TypeError):  # not written yet, or not by this code
        return st if now - st.st_mtime > UNWRITTEN_S else None
    if owner.get("settled"):
        return None
    if host != socket.gethostname():
        return st if now - st.st_mtime > FOREIGN_S else None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return st
    except PermissionError:
        pass  # alive, another user's
    return st if start is not None and _start_time(pid) not in (start, None) else None


def _retake(folder: Path, key: str, what: str, now: float) -> bool:
    """True when the claim ``key`` was abandoned and this process re-took it (one process does)."""
    path = folder / key
    try:
        st = _abandoned(path, now)
        if st is None:
            return False
        # The marker names this very claim file: whoever re-takes a later abandoned claim makes another.
        marker = folder / f".{key}.retaken-{st.st_ino}-{st.st_mtime_ns}"
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE))
        tmp = folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_bytes(_owner(what))
        os.replace(tmp, path)
    except FileExistsError:  # another process re-took it first
        return False
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):  # removed as old meanwhile: nobody holds it now
            return claim(folder.parent, key, what, now)
        log_event(logger, "audit_claim_failed", logging.WARNING, folder=str(folder), claim=what,
                  error=safe_error(exc), action="skipping it: its claim exists and could not be re-taken")
        return False
    log_event(logger, "audit_claim_retaken", logging.WARNING, folder=str(folder), claim=what,
              reason="its owner died before its record was sent, or after (the record may then appear twice)")
    _settle_later(path, what)
    return True


def _remove_old(folder: Path, now: float) -> None:
    for entry in os.scandir(folder):
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime > KEEP_S:
                os.unlink(entry.path)
        except OSError:
            pass  # removed by another process first, or not ours to remove: housekeeping only
