"""Off the hot path: queue Celery tasks and track study completion.

The C-STORE handler only hands an :class:`Arrival` to the :class:`Dispatcher` thread.
That thread sends ``analyze_image``, feeds the study tracker, writes complete.json and
sends ``finalize_study``. When the broker is down a send fails fast, the task waits in
memory and is retried every ``requeue_interval_s`` — the image itself is already safe
on disk, and a node restart re-queues from the spool anyway.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mammocad.logs import log_event, safe_error
from mammocad.metrics.faults import count_fault
from mammocad.node.studies import Completion, StudyTracker
from mammocad.spool.layout import Spool, atomic_write_json
from mammocad.spool.records.analysis import CompletionRecord
from mammocad.spool.tasks import (
    TASK_ANALYZE_IMAGE,
    TASK_FINALIZE_STUDY,
    analyze_image_args,
    finalize_study_args,
)

if TYPE_CHECKING:
    from mammocad.node.reconciler import NodeReconciler

logger = logging.getLogger("mammocad.node.queue")


class CeleryLike(Protocol):
    def send_task(self, name: str, args: Any = None, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Arrival:
    """An analysable image that is durable in the spool."""

    study_uid: str
    sop_uid: str
    laterality: str
    view: str


class TaskSender:
    """Send tasks; keep the ones the broker refused and retry them later."""

    def __init__(self, app: CeleryLike, retry_interval_s: float) -> None:
        self.app = app
        self.retry_interval_s = retry_interval_s
        self.pending: list[tuple[str, list[Any]]] = []
        self._next_retry = 0.0

    def send(self, name: str, args: list[Any]) -> bool:
        if self.pending:  # keep order: broker still down, don't try each task again
            self.pending.append((name, args))
            log_event(logger, "queue_deferred", task=name, uids=_short(args), pending=len(self.pending))
            return False
        return self._try(name, args, first=True)

    def _try(self, name: str, args: list[Any], first: bool) -> bool:
        try:
            self.app.send_task(name, args=args, retry=False)
        except Exception as exc:  # kombu OperationalError, redis errors, DNS...
            if first:
                self.pending.append((name, args))
                self._next_retry = time.monotonic() + self.retry_interval_s
            log_event(logger, "queue_failed", logging.ERROR, task=name, uids=_short(args),
                      error=f"{type(exc).__name__}: {exc}"[:300], retry_in_s=self.retry_interval_s)
            return False
        log_event(logger, "queue_ok", task=name, uids=_short(args))
        return True

    def retry_due(self) -> None:
        if not self.pending or time.monotonic() < self._next_retry:
            return
        while self.pending:
            name, args = self.pending[0]
            if not self._try(name, args, first=False):
                self._next_retry = time.monotonic() + self.retry_interval_s
                return
            self.pending.pop(0)


def _short(args: list[Any]) -> str:
    return ",".join(f"[{len(a)} uids]" if isinstance(a, list) else str(a) for a in args[1:])


class Dispatcher(threading.Thread):
    """The node's single background thread for queueing and study completion."""

    def __init__(self, spool: Spool, sender: TaskSender, tracker: StudyTracker, tick_s: float = 0.2,
                 reconciler: NodeReconciler | None = None,
                 on_declared: Callable[[str], None] | None = None) -> None:
        super().__init__(name="mammocad-dispatcher", daemon=True)
        self.spool = spool
        self.sender = sender
        self.tracker = tracker
        self.tick_s = tick_s
        self.reconciler = reconciler
        self.on_declared = on_declared  # called with the completion reason (metrics)
        self._inbox: queue.Queue[Arrival | Completion | None] = queue.Queue()
        self._stopped = threading.Event()
        #: Set when every submitted item has been handled (tests and shutdown wait on it).
        self.idle = threading.Event()
        self.idle.set()
        self._in_flight = 0
        self._count_lock = threading.Lock()

    def submit(self, item: Arrival | Completion) -> None:
        """Called from association threads; never blocks."""
        with self._count_lock:  # counted before it is queued: idle can never be set while it waits
            self._in_flight += 1
            self.idle.clear()
        self._inbox.put_nowait(item)

    def _handled(self) -> None:
        with self._count_lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self.idle.set()

    def queue_analysis(self, study_uid: str, sop_uid: str) -> None:
        self.sender.send(TASK_ANALYZE_IMAGE, analyze_image_args(self.spool.root, study_uid, sop_uid))

    def queue_finalize(self, study_uid: str, sop_uids: list[str]) -> None:
        self.sender.send(TASK_FINALIZE_STUDY, finalize_study_args(self.spool.root, study_uid, sop_uids))

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        self._inbox.put_nowait(None)
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                item = self._inbox.get(timeout=self.tick_s)
            except queue.Empty:
                item = None
            try:
                if isinstance(item, Arrival):
                    self._arrived(item)
                elif isinstance(item, Completion):
                    self._declare(item)
                for completion in self.tracker.due():
                    self._declare(completion)
                self.sender.retry_due()
                if self.reconciler is not None and self.reconciler.due():
                    self.reconciler.run(self.tracker, self.queue_analysis_of, self.queue_finalize)
            except Exception as exc:  # keep the thread alive whatever happens
                log_event(logger, "dispatcher_error", logging.ERROR, error=safe_error(exc))
            finally:
                if item is not None:
                    self._handled()

    def _arrived(self, item: Arrival) -> None:
        self.queue_analysis(item.study_uid, item.sop_uid)
        completed = self.spool.read_complete(item.study_uid)
        if completed is not None and item.sop_uid not in completed and item.study_uid not in self.tracker.open_studies():
            log_event(logger, "study_reopened", study=item.study_uid, sop=item.sop_uid)
        done = self.tracker.image_arrived(item.study_uid, item.sop_uid, item.laterality, item.view, completed)
        if done is not None:
            self._declare(done)

    def queue_analysis_of(self, study_uid: str, sop_uids: list[str]) -> None:
        for sop in sop_uids:
            self.queue_analysis(study_uid, sop)

    def _declare(self, done: Completion) -> None:
        """Write complete.json and queue finalize; a failed write is retried, never dropped."""
        record = CompletionRecord(sop_uids=tuple(done.sop_uids), reason=done.reason, declared_at=time.time())
        try:
            atomic_write_json(self.spool.complete_path(done.study_uid), record.to_json(), self.spool.tmp)
        except OSError as exc:  # disk full, permissions: the images are safe, the completion waits
            self.tracker.declare_failed(done)
            log_event(logger, "declare_failed", logging.ERROR, study=done.study_uid, images=len(done.sop_uids),
                      error=safe_error(exc), retry_in_s=self.tracker.timeout_s)
            count_fault("declare_failed")
            return
        self.tracker.declared(done)
        log_event(logger, "study_complete", study=done.study_uid, reason=done.reason, images=len(done.sop_uids))
        if self.on_declared is not None:
            self.on_declared(done.reason)
        self.queue_finalize(done.study_uid, done.sop_uids)
