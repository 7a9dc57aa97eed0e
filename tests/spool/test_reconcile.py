"""The reconciler against a real redis: what the spool owes minus what the broker holds."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from mammocad.config import Settings
from mammocad.spool.broker import make_celery
from mammocad.spool.layout import Spool, atomic_write_json
from mammocad.spool.leases import held, lease_path
from mammocad.spool.reconcile import BrokerView, Reconciler, read_broker, redis_client, task_key
from mammocad.spool.records.presence import PresenceRecord
from mammocad.spool.tasks import (
    TASK_ANALYZE_IMAGE,
    TASK_FINALIZE_STUDY,
    analyze_image_args,
    finalize_study_args,
)

STUDY = "1.2.3.4"
SOPS = ["1.2.3.4.1", "1.2.3.4.2", "1.2.3.4.3"]


def _spool(tmp_path: Path) -> Spool:
    spool = Spool(tmp_path / "spool").create()
    for sop in SOPS:
        path = spool.image_path(STUDY, sop)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"image")
    return spool


def _view(url: str) -> BrokerView:
    return read_broker(redis_client(url), ["gpu", "results"])


def _hold(client: Any, queue: str, key: tuple[str, str, str], tag: str) -> None:
    """Move ``key``'s message from ``queue`` to "unacked" under ``tag``, as kombu does for a worker."""
    raw = [m for m in client.lrange(queue, 0, -1) if task_key(json.loads(m)) == key]
    client.lrem(queue, 1, raw[0])
    client.hset("unacked", tag, json.dumps([json.loads(raw[0]), "", queue]))



def _analyses_queued_first_taken(tmp_path: Path, redis_url: str) -> Spool:
    """Every image's analysis queued, and the first one's taken by a worker (tag "tag-1")."""
    spool = _spool(tmp_path)
    app = make_celery(Settings(), broker_url=redis_url)
    for sop in SOPS:
        app.send_task(TASK_ANALYZE_IMAGE, args=analyze_image_args(spool.root, STUDY, sop))
    _hold(redis_client(redis_url), "gpu", (TASK_ANALYZE_IMAGE, STUDY, SOPS[0]), "tag-1")
    return spool

def test_only_work_the_broker_does_not_hold_is_owed_and_only_after_two_passes(tmp_path: Path, redis_url: str) -> None:
    spool = _spool(tmp_path)
    app = make_celery(Settings(), broker_url=redis_url)
    app.send_task(TASK_ANALYZE_IMAGE, args=analyze_image_args(spool.root, STUDY, SOPS[0]))
    atomic_write_json(spool.result_path(STUDY, SOPS[1]), {"done": True}, spool.tmp)
    rec = Reconciler(spool, lease_s=30)
    assert rec.due(_view(redis_url)) == []  # first sighting: maybe a message in transit
    owed = rec.due(_view(redis_url))
    assert [(o.task, o.sop_uids) for o in owed] == [(TASK_ANALYZE_IMAGE, (SOPS[2],))]

    # A completed study without a report is owed a finalize, unless one is queued.
    atomic_write_json(spool.complete_path(STUDY), {"sop_uids": SOPS, "reason": "timeout"}, spool.tmp)
    app.send_task(TASK_ANALYZE_IMAGE, args=analyze_image_args(spool.root, STUDY, SOPS[2]))
    rec.due(_view(redis_url))
    assert [o.task for o in rec.due(_view(redis_url))] == [TASK_FINALIZE_STUDY]
    app.send_task(TASK_FINALIZE_STUDY, args=finalize_study_args(spool.root, STUDY, SOPS))
    assert rec.due(_view(redis_url)) == [] and rec.due(_view(redis_url)) == []


def test_a_held_task_whose_lease_expired_is_owed_at_once(tmp_path: Path, redis_url: str) -> None:
    spool = _analyses_queued_first_taken(tmp_path, redis_url)  # a worker took it
    rec = Reconciler(spool, lease_s=30)
    lease = lease_path(spool, STUDY, SOPS[0])
    with held(lease, spool.tmp, lease_s=30):
        assert rec.due(_view(redis_url)) == [] and rec.due(_view(redis_url)) == []  # running, lease fresh
        old = time.time() - 60
        os.utime(lease, (old, old))  # its worker died a minute ago
        owed = rec.due(_view(redis_url))
        assert [(o.sop_uids, o.why.split()[0]) for o in owed] == [((SOPS[0],), "lease")]
        assert not lease.exists()  # removed, so the re-queued task is not re-queued again


def _presence(spool: Spool, worker: str, held: list[str], silent_s: float = 0.0, dropped: tuple[str, ...] = ()) -> Path:
    path = spool.presence_path(worker)
    record = PresenceRecord(worker=worker, host="box", pid=1, started=time.time() - 100, held=tuple(held),
                            dropped=dropped)
    atomic_write_json(path, record.to_json(), spool.tmp)
    then = time.time() - silent_s
    os.utime(path, (then, then))
    return path


def test_a_finalize_held_only_by_a_dead_worker_is_owed_at_once(tmp_path: Path, redis_url: str) -> None:
    """A results worker killed while its finalize waited for a countdown: owed now, not after the
    visibility timeout; held by a live worker, or by a worker that wrote no presence, it is not."""
    spool = _spool(tmp_path)
    client = redis_client(redis_url)
    app = make_celery(Settings(), broker_url=redis_url)
    atomic_write_json(spool.complete_path(STUDY), {"sop_uids": SOPS, "reason": "four_views"}, spool.tmp)
    for sop in SOPS:
        atomic_write_json(spool.result_path(STUDY, sop), {"done": True}, spool.tmp)
    for _ in range(2):  # the node's finalize and the last analysis's
        app.send_task(TASK_FINALIZE_STUDY, args=finalize_study_args(spool.root, STUDY, SOPS), countdown=60)
    key = (TASK_FINALIZE_STUDY, STUDY, "")
    _hold(client, "results", key, "tag-a")
    _hold(client, "results", key, "tag-b")
    rec = Reconciler(spool, lease_s=30)

    assert rec.due(_view(redis_url)) == [] and rec.due(_view(redis_url)) == []  # nobody listed them
    _presence(spool, "results-1@box", ["tag-a"], silent_s=60)  # dead
    live = _presence(spool, "results-2@box", ["tag-b", "tag-x"])
    assert rec.due(_view(redis_url)) == []  # one copy is with a live worker
    live.unlink()
    _presence(spool, "results-2@box", ["tag-b"], silent_s=45)  # now both holders are dead
    owed = rec.due(_view(redis_url))
    assert [(o.task, o.sop_uids) for o in owed] == [(TASK_FINALIZE_STUDY, tuple(sorted(SOPS)))]
    assert owed[0].why.startswith("held by a dead worker: results-1@box (silent 60 s), results-2@box")
    assert rec.due(_view(redis_url)) == []  # re-queued once, then a doubling pause


def test_an_analysis_taken_but_not_started_by_a_dead_worker_is_owed(tmp_path: Path, redis_url: str) -> None:
    spool = _analyses_queued_first_taken(tmp_path, redis_url)  # prefetched: no lease yet
    rec = Reconciler(spool, lease_s=30)
    beat = _presence(spool, "gpu-7@box", ["tag-1"])
    assert rec.due(_view(redis_url)) == [] and rec.due(_view(redis_url)) == []
    old = time.time() - 31
    os.utime(beat, (old, old))
    owed = rec.due(_view(redis_url))
    assert [(o.sop_uids, o.why.split(":")[0]) for o in owed] == [((SOPS[0],), "held by a dead worker")]


def test_dead_presence_files_go_once_the_broker_holds_none_of_their_tasks(tmp_path: Path, redis_url: str) -> None:
    spool = _spool(tmp_path)
    client = redis_client(redis_url)
    app = make_celery(Settings(), broker_url=redis_url)
    app.send_task(TASK_ANALYZE_IMAGE, args=analyze_image_args(spool.root, STUDY, SOPS[0]))
    _hold(client, "gpu", (TASK_ANALYZE_IMAGE, STUDY, SOPS[0]), "tag-1")
    holding = _presence(spool, "gpu-1@box", ["tag-1"], silent_s=300)
    done = _presence(spool, "gpu-2@box", ["tag-0"], silent_s=300)
    alive = _presence(spool, "gpu-3@box", [])
    Reconciler(spool, lease_s=30).due(_view(redis_url))
    assert holding.exists() and alive.exists() and not done.exists()


def test_a_finalize_its_live_worker_dropped_is_owed_unless_another_worker_took_it(
        tmp_path: Path, redis_url: str) -> None:
    """Redis restarted from its append-only file: the worker that held the finalize lives, but
    Celery forgot the task with the old connection; the message waits in "unacked"."""
    spool = _spool(tmp_path)
    app = make_celery(Settings(), broker_url=redis_url)
    atomic_write_json(spool.complete_path(STUDY), {"sop_uids": SOPS, "reason": "four_views"}, spool.tmp)
    for sop in SOPS:
        atomic_write_json(spool.result_path(STUDY, sop), {"done": True}, spool.tmp)
    app.send_task(TASK_FINALIZE_STUDY, args=finalize_study_args(spool.root, STUDY, SOPS), countdown=60)
    _hold(redis_client(redis_url), "results", (TASK_FINALIZE_STUDY, STUDY, ""), "tag-a")
    rec = Reconciler(spool, lease_s=30)
    other = _presence(spool, "results-2@box", ["tag-a"])  # a second worker took it again meanwhile
    _presence(spool, "results-1@box", [], dropped=("tag-a",))
    assert rec.due(_view(redis_url)) == []
    other.unlink()
    owed = rec.due(_view(redis_url))
    assert [o.why for o in owed] == ["dropped by its worker: results-1@box (dropped it: its broker connection closed)"]
