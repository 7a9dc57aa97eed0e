"""The spool is the source of truth; the broker is a to-do list that can be lost.

Redis restarted without its data, a finalize retry the broker refused, a worker whose
disk filled, a GPU worker killed mid-image: each leaves work the node acknowledged
(answered Success for) that no queue holds any more. The reconciler compares what the
spool says is owed with what the broker holds and queues the difference again:

- an image without a result, when no ``analyze_image`` for it is queued or held, or when
  the one held belongs to a dead worker (its lease, :mod:`mammocad.spool.leases`, is
  older than ``lease_s``, or only dead workers hold its message);
- a completed study (``complete.json``) without a report for that set of images, or with
  an admin's re-analysis of them not yet reported (``reanalysis.json``), when no
  ``finalize_study`` for it is queued or held by a live worker and no finalize holds the
  study's lock. The finalize it queues carries no revision: the task reads it from the spool.

Which worker holds a message is told by the workers' presence files
(:mod:`mammocad.spool.presence`); a message no live worker may hold is owed at once.

What the broker holds is read from kombu's Redis structures (each queue's list and the
``unacked`` hash, where a worker's running and countdown tasks wait), so a long backlog
is never duplicated. A message moves from a list to ``unacked`` in two steps, so an item
is re-queued only when two passes in a row (``node.reconcile_interval_s`` apart) miss it;
an expired lease or a dead holder is re-queued at the first pass that sees it.
A duplicate is harmless anyway: every task is idempotent.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mammocad.logs import log_event
from mammocad.spool import presence
from mammocad.spool.layout import Spool
from mammocad.spool.leases import lease_age, lease_path
from mammocad.spool.tasks import TASK_ANALYZE_IMAGE, TASK_FINALIZE_STUDY

logger = logging.getLogger(__name__)

#: kombu's Redis transport: priority lists are "<queue>\x06\x16<priority>" next to "<queue>".
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
_UNACKED = "unacked"

Key = tuple[str, str, str]  # (task name, study UID, SOP UID or "" for a finalize)


@dataclass
class BrokerView:
    """The tasks a broker holds: ``ready`` in a queue, ``held`` by a worker (running or waiting).

    ``held_tags``: the delivery tags under which each held task waits in ``unacked`` (one
    task may be held twice, e.g. a finalize queued by the node and by the last analysis).
    """

    ready: set[Key] = field(default_factory=set)
    held_tags: dict[Key, set[str]] = field(default_factory=dict)

    @property
    def unacked_tags(self) -> set[str]:
        return {tag for tags in self.held_tags.values() for tag in tags}

    def __contains__(self, key: Key) -> bool:
        return key in self.ready or key in self.held_tags


def task_key(message: dict[str, Any]) -> Key | None:
    """(task, study, sop) of one kombu message holding a mammocad task; None for others."""
    headers = message.get("headers") or {}
    name = str(headers.get("task", ""))
    if name not in (TASK_ANALYZE_IMAGE, TASK_FINALIZE_STUDY):
        return None
    body = message.get("body", "")
    if (message.get("properties") or {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    args = json.loads(body)[0]
    if name == TASK_ANALYZE_IMAGE:
        return name, str(args[1]), str(args[2])
    return name, str(args[1]), ""


def _key(item: bytes | str, unacked: bool) -> Key | None:
    try:
        decoded = json.loads(item)
        return task_key(decoded[0] if unacked else decoded)
    except (ValueError, TypeError, KeyError, IndexError):
        return None


def read_broker(client: Any, queues: Iterable[str]) -> BrokerView:
    """What a Redis broker (a ``redis.Redis`` client) holds for ``queues``."""
    view = BrokerView()
    for queue in queues:
        for name in (queue, *(f"{queue}{_PRIORITY_SEP}{p}" for p in _PRIORITY_STEPS)):
            view.ready |= {k for k in (_key(m, unacked=False) for m in client.lrange(name, 0, -1)) if k}
    for tag, item in client.hgetall(_UNACKED).items():
        key = _key(item, unacked=True)
        if key is not None:
            view.held_tags.setdefault(key, set()).add(tag.decode() if isinstance(tag, bytes) else str(tag))
    return view


def still_unacked(client: Any, tags: Sequence[str]) -> set[str]:
    """Which of ``tags`` a Redis broker still keeps unacknowledged (the others were acked)."""
    pipe = client.pipeline(transaction=False)
    for tag in tags:
        pipe.hexists(_UNACKED, tag)
    return {tag for tag, kept in zip(tags, pipe.execute(), strict=True) if kept}


def is_redis_url(url: str) -> bool:
    """Only a Redis broker's structures can be read (the reconciler, worker presence)."""
    return url.startswith(("redis://", "rediss://", "unix://"))


def redis_client(url: str, timeout_s: float = 3.0) -> Any:
    import redis  # the broker's own client library (a kombu dependency)

    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


@dataclass(frozen=True)
class Owed:
    """One piece of acknowledged work the broker does not hold; ``why`` for the log."""

    task: str
    study_uid: str
    sop_uids: tuple[str, ...]
    why: str
    #: Owed for certain (a stale lease, only dead holders): no second pass needed.
    proven: bool = False

    @property
    def key(self) -> Key:
        return self.task, self.study_uid, self.sop_uids[0] if self.task == TASK_ANALYZE_IMAGE else ""


def _finalize_running(spool: Spool, study_uid: str) -> bool:
    import fcntl
    import os

    path = spool.finalize_lock_path(study_uid)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we took
    return False


def owed_work(spool: Spool, view: BrokerView, lease_s: float, now: float | None = None,
              workers: list[presence.WorkerState] | None = None) -> list[Owed]:
    """Everything the spool says is owed and ``view`` does not cover, in spool order.

    ``workers``: the presence files already read in this pass (read here when None).
    """
    now = time.time() if now is None else now
    if workers is None and view.held_tags:
        workers = presence.worker_states(spool, lease_s, now)
    known = presence.holders_of(workers or [])

    def held_by_dead(key: Key) -> str | None:
        """Why ``key`` is owed although held: no worker that took it still holds it; else None."""
        if key in view.ready or key not in view.held_tags:
            return None
        gone = presence.abandoned(view.held_tags[key], known)
        if gone is None:
            return None
        who = ", ".join(sorted({h.why_not() for h in gone}))
        return f"held by a dead worker: {who}" if not any(h.alive for h in gone) else f"dropped by its worker: {who}"

    out: list[Owed] = []
    for study_uid in spool.study_uids():
        for sop in spool.image_sops(study_uid):
            if spool.result_path(study_uid, sop).exists():
                continue
            key = (TASK_ANALYZE_IMAGE, study_uid, sop)
            age = lease_age(lease_path(spool, study_uid, sop), now)
            if age is not None and age > lease_s and key not in view.ready:
                out.append(Owed(TASK_ANALYZE_IMAGE, study_uid, (sop,), f"lease expired {age:.0f} s ago", True))
            elif age is None and (why := held_by_dead(key)):
                out.append(Owed(TASK_ANALYZE_IMAGE, study_uid, (sop,), why, True))
            elif age is None and key not in view:
                out.append(Owed(TASK_ANALYZE_IMAGE, study_uid, (sop,), "not queued"))
        completed = spool.read_complete(study_uid)
        if not completed or not spool.report_owed(study_uid, completed) or _finalize_running(spool, study_uid):
            continue
        key = (TASK_FINALIZE_STUDY, study_uid, "")
        if why := held_by_dead(key):
            out.append(Owed(TASK_FINALIZE_STUDY, study_uid, tuple(sorted(completed)), why, True))
        elif key not in view:
            out.append(Owed(TASK_FINALIZE_STUDY, study_uid, tuple(sorted(completed)), "not queued"))
    return out


#: Longest pause between two re-queues of the same work (it keeps failing: disk full...).
MAX_BACKOFF_S = 300.0


class Reconciler:
    """Confirms owed work over two passes, so a message in transit is not duplicated.

    Work re-queued once and owed again (its task failed: a full disk, a poison study) is
    re-queued with a doubling pause, up to MAX_BACKOFF_S, so a lasting fault costs one
    attempt every few minutes, not one per pass.
    """

    def __init__(self, spool: Spool, lease_s: float) -> None:
        self.spool = spool
        self.lease_s = lease_s
        self._suspects: set[Key] = set()
        self._backoff: dict[Key, tuple[float, float]] = {}  # key -> (not before, pause)

    def due(self, view: BrokerView, now: float | None = None) -> list[Owed]:
        """Owed work seen missing in this pass and the previous one (re-queue it now)."""
        now = time.time() if now is None else now
        workers = presence.worker_states(self.spool, self.lease_s, now)  # read once per pass
        found = owed_work(self.spool, view, self.lease_s, now, workers)
        for worker in presence.prune(workers, view.unacked_tags):
            log_event(logger, "presence_pruned", logging.DEBUG, worker=worker, reason="dead, holds nothing")
        keys = {o.key for o in found}
        self._backoff = {k: v for k, v in self._backoff.items() if k in keys}  # done: forget
        # A stale lease or a dead holder is proof on its own (its process is gone); "not
        # queued" may be a message between a list and the unacked hash: it must be seen twice.
        confirmed = [o for o in found if o.key in self._suspects or o.proven]
        self._suspects = keys - {o.key for o in confirmed}
        due = []
        for owed in confirmed:
            not_before, pause = self._backoff.get(owed.key, (0.0, 0.0))
            if now < not_before:
                continue
            pause = min(MAX_BACKOFF_S, pause * 2) if pause else max(self.lease_s, 5.0)
            self._backoff[owed.key] = (now + pause, pause)
            due.append(owed)
        confirmed = due
        for owed in confirmed:
            if owed.task == TASK_ANALYZE_IMAGE and owed.why.startswith("lease"):
                lease_path(self.spool, owed.study_uid, owed.sop_uids[0]).unlink(missing_ok=True)
        return confirmed
