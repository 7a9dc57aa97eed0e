"""Worker presence: how the node tells a task held by a dead worker from a live worker's.

With late acknowledgement, kombu keeps every task message a worker has taken (running, or
waiting for its countdown: a finalize polling for image results, a delivery backing off)
in Redis's ``unacked`` hash, and gives it back only after the visibility timeout (twice
``worker.time_limit_s``: half an hour). Nothing in that hash says which worker holds a
message, so a results worker killed while it held a study's finalize used to delay that
report by up to the whole visibility timeout: the reconciler saw the task "held" and
waited.

So every worker keeps ``workers/<worker>.json`` in the spool (:class:`PresenceRecord`):
the delivery tags of the messages it received, rewritten every ``lease_s / 6``. A file not
rewritten for ``lease_s`` belongs to a worker that is gone (killed, out of memory, its
machine off), and a message that only such workers list is work nobody will finish: the
reconciler queues it again at once (:mod:`mammocad.spool.reconcile`). Analysis leases
(:mod:`mammocad.spool.leases`) say the same for a running analysis; presence also covers
what they cannot: a finalize or a delivery waiting in a dead worker, and a task it had
taken but not yet started.

A live worker can let go of a message too: when its broker connection closes (Redis
restarted, a network blip), Celery forgets the tasks it was waiting to run, since their
acknowledgement belonged to that connection, while Redis keeps them unacknowledged until
the visibility timeout. The worker lists those as ``dropped``, and a message that every
listing worker is dead for or has dropped is owed the same way.

A message no file lists (taken a moment ago, or by a worker of an older release) still
counts as held by a live worker, as before; the visibility timeout brings it back. A
wrong "dead" only ever causes a duplicate task, which every task skips (docs/FAULTS.md).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mammocad.logs import ErrorMemo, log_event, safe_error
from mammocad.spool.layout import Spool, atomic_write_json
from mammocad.spool.records import RecordError
from mammocad.spool.records.presence import PresenceRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerState:
    """One presence file as the node sees it: the record, its silence, alive or not."""

    path: Path
    record: PresenceRecord
    silent_s: float
    alive: bool

    @property
    def queue(self) -> str:
        """The queue the worker serves, from its Celery node name ``<queue>-<pid>@<host>``."""
        return self.record.worker.split("@", 1)[0].rsplit("-", 1)[0]


@dataclass(frozen=True)
class Holder:
    """A worker that listed a delivery tag (its presence as the node sees it), and whether it
    dropped the message (its broker connection closed after it took it)."""

    state: WorkerState
    dropped: bool = False

    @property
    def worker(self) -> str:
        return self.state.record.worker

    @property
    def alive(self) -> bool:
        return self.state.alive

    @property
    def holding(self) -> bool:
        return self.alive and not self.dropped

    def why_not(self) -> str:
        """Why this worker will not finish the task (for the reconciler's log line)."""
        if not self.alive:
            return f"{self.worker} (silent {self.state.silent_s:.0f} s)"
        return f"{self.worker} (dropped it: its broker connection closed)"


#: Presence file -> the error last logged for it: the reconciler and every metrics scrape read
#: the files, so an unreadable one is logged when its error first appears or changes, not on
#: every read (a log de-duplication memo, nothing decides by it). It holds the files the last
#: listing of their folder could not read, no more: see :func:`_report_unreadable`.
_reported: ErrorMemo[Path] = ErrorMemo()


def worker_states(spool: Spool, lease_s: float, now: float | None = None) -> list[WorkerState]:
    """Every readable presence file, by worker name. Alive: rewritten within ``lease_s``, or
    within the worker's own ``lease_s`` when that is longer (boxes may be set differently).

    An unreadable file is left out (its worker's messages then count as held by a live worker,
    which only delays a requeue) and logged once (``presence_unreadable``): left out silently,
    ``mammocad workers`` said "no live worker" with no hint why.
    """
    now = time.time() if now is None else now
    out: list[WorkerState] = []
    bad: dict[Path, str] = {}
    for path in sorted(spool.workers.glob("*.json")) if spool.workers.is_dir() else []:
        try:
            silent = max(0.0, now - path.stat().st_mtime)
            record = PresenceRecord.read(path)
        except FileNotFoundError:  # its worker removed it at a clean stop, between the listing and the read
            continue
        except (OSError, RecordError) as exc:
            bad[path] = safe_error(exc)
            continue
        out.append(WorkerState(path, record, silent, silent <= max(lease_s, record.lease_s)))
    _report_unreadable(spool.workers, bad)
    return out


def unreadable(spool: Spool) -> dict[Path, str]:
    """The presence files of ``spool`` the last :func:`worker_states` of this process could not
    read, with why (for ``mammocad workers``)."""
    return _reported.current(lambda p: p.parent == spool.workers and p.exists())


def _report_unreadable(folder: Path, bad: dict[Path, str]) -> None:
    """Log each file of ``bad`` (path -> why) whose error is not the one last logged for it.

    The memo forgets the other files of ``folder``: read, or gone (their worker stopped, the
    node pruned them, an admin removed them). Forgetting only those read, it kept every removed
    file: the same fault in a later file of that name went unlogged, and it grew with every
    worker name ever refused.
    """
    for path, why in _reported.settle(lambda p: p.parent == folder, bad).items():
        log_event(logger, "presence_unreadable", logging.WARNING, file=str(path), error=why,
                  hint="left out: its worker's messages count as held by a live worker until the visibility "
                       "timeout; the worker rewrites it within lease_s / 6, else remove the file")


def holders_of(states: Iterable[WorkerState]) -> dict[str, list[Holder]]:
    """Delivery tag -> the workers whose presence lists it, held or dropped."""
    out: dict[str, list[Holder]] = {}
    for state in states:
        for tags, dropped in ((state.record.held, False), (state.record.dropped, True)):
            for tag in tags:
                out.setdefault(tag, []).append(Holder(state, dropped))
    return out


def holders(spool: Spool, lease_s: float, now: float | None = None) -> dict[str, list[Holder]]:
    """:func:`holders_of` every readable presence file of ``spool``."""
    return holders_of(worker_states(spool, lease_s, now))


def abandoned(tags: Iterable[str], known: dict[str, list[Holder]]) -> list[Holder] | None:
    """The workers that listed ``tags`` when none of them still holds any (each is dead or
    dropped it); None when one of the tags may still be held.

    A tag no worker lists counts as held: it may have been taken a moment ago.
    """
    gone: list[Holder] = []
    for tag in tags:
        listed = known.get(tag)
        if not listed or any(h.holding for h in listed):
            return None
        gone.extend(listed)
    return gone or None


def prune(states: Iterable[WorkerState], unacked_tags: Iterable[str]) -> list[str]:
    """Remove the files of dead workers that hold nothing the broker still keeps; their names."""
    still = set(unacked_tags)
    removed: list[str] = []
    for state in states:
        if state.alive or still.intersection(state.record.held):
            continue
        try:
            state.path.unlink()
        except OSError:
            continue
        removed.append(state.record.worker)
    return removed


class PresenceBeacon:
    """A worker's presence file, rewritten from a daemon thread every ``lease_s / 6``.

    :meth:`received` is called for each task message the worker takes (Celery's
    ``task_received`` signal, in the worker's main process, the one that holds messages).
    A tag is listed until ``still_held`` (which of these tags the broker still keeps
    unacknowledged) leaves it out, and at most for ``keep_s``: the broker's visibility
    timeout, after which kombu gives an unacknowledged message back anyway. Without
    ``still_held`` (a broker that cannot be asked), tags leave after ``keep_s`` only.
    """

    def __init__(self, spool: Spool, worker: str, *, lease_s: float, keep_s: float,
                 still_held: Callable[[Sequence[str]], set[str]] | None = None) -> None:
        self.spool = spool
        self.worker = worker
        self.path = spool.presence_path(worker)
        self.lease_s = lease_s
        self.keep_s = keep_s
        self.started = time.time()
        self._held: dict[str, float] = {}
        self._dropped_if: dict[str, Callable[[], bool]] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # the beat and a received message write in turn
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._still_held = still_held
        self._broker_unknown = False  # the last question to the broker failed

    def received(self, tag: str, dropped: Callable[[], bool] | None = None) -> None:
        """Note a taken message; ``dropped`` says, when asked later, whether the worker let it go."""
        with self._lock:
            self._held[tag] = time.time()
            if dropped is not None:
                self._dropped_if[tag] = dropped
        self.write()  # at once: a kill right after taking a message must not hide it

    def listing(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(held, dropped) tags, each listed for at most ``keep_s``."""
        cutoff = time.time() - self.keep_s
        with self._lock:
            self._held = {t: at for t, at in self._held.items() if at >= cutoff}
            self._dropped_if = {t: f for t, f in self._dropped_if.items() if t in self._held}
            gone = {t for t, f in self._dropped_if.items() if f()}
            return tuple(sorted(set(self._held) - gone)), tuple(sorted(gone))

    def held(self) -> tuple[str, ...]:
        return self.listing()[0]

    def forget_acknowledged(self) -> None:
        """Drop the tags the broker no longer keeps (done tasks); on any error keep them all."""
        if self._still_held is None:
            return
        with self._lock:
            asked = list(self._held)
        if not asked:
            return
        try:
            kept = self._still_held(asked)
        except Exception as exc:  # the broker is away: listing too much only costs a duplicate
            log_event(logger, "presence_prune_skipped", logging.DEBUG, worker=self.worker, error=safe_error(exc))
            self._broker_unknown = True
            return
        self._broker_unknown = False
        with self._lock:  # a tag received meanwhile was not asked about: it stays
            for tag in set(asked) - kept:
                self._held.pop(tag, None)
                self._dropped_if.pop(tag, None)

    def write(self) -> None:
        """Rewrite the file; a failure (disk full) is logged once, then retried every beat."""
        try:
            with self._write_lock:
                held, dropped = self.listing()
                record = PresenceRecord(worker=self.worker, host=socket.gethostname(), pid=os.getpid(),
                                        started=self.started, held=held, lease_s=self.lease_s, dropped=dropped)
                atomic_write_json(self.path, record.to_json(), self.spool.tmp)
        except OSError as exc:
            if not self._failing:
                log_event(logger, "presence_write_failed", logging.WARNING, worker=self.worker,
                          path=str(self.path), error=safe_error(exc), hint="the node may re-queue this worker's tasks; "
                          "check the spool's disk and permissions")
            self._failing = True
            return
        if self._failing:
            log_event(logger, "presence_write_recovered", worker=self.worker)
        self._failing = False

    def start(self) -> PresenceBeacon:
        self.write()

        def beat() -> None:
            while not self._stop.wait(self.lease_s / 6):
                self.forget_acknowledged()
                self.write()

        self._thread = threading.Thread(target=beat, name="worker-presence", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating; remove the file when the broker keeps nothing the worker took.

        Otherwise (the broker could not be asked, or kept messages a clean shutdown could
        not give back) the file stays and goes silent: the node then queues their work again.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._still_held is None:
            return
        self.forget_acknowledged()
        if self.listing() == ((), ()) and not self._broker_unknown:
            self.path.unlink(missing_ok=True)
