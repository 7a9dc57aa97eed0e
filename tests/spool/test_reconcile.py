"""The reconciler against a real redis: what the spool owes minus what the broker holds."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from mammocad.config import Settings
from mammocad.spool.broker import make_celery
from mammocad.spool.layout import Spool, atomic_write_json
from mammocad.spool.leases import held, lease_path
from mammocad.spool.reconcile import Reconciler, read_broker, redis_client, task_key
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


def _view(url: str) -> object:
    return read_broker(redis_client(url), ["gpu", "results"])


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
    spool = _spool(tmp_path)
    client = redis_client(redis_url)
    app = make_celery(Settings(), broker_url=redis_url)
    for sop in SOPS:
        app.send_task(TASK_ANALYZE_IMAGE, args=analyze_image_args(spool.root, STUDY, sop))
    # Move SOPS[0]'s message to "unacked" the way kombu does when a worker takes it.
    raw = [m for m in client.lrange("gpu", 0, -1)
           if task_key(json.loads(m)) == (TASK_ANALYZE_IMAGE, STUDY, SOPS[0])]
    client.lrem("gpu", 1, raw[0])
    client.hset("unacked", "tag-1", json.dumps([json.loads(raw[0]), "", "gpu"]))
    rec = Reconciler(spool, lease_s=30)
    lease = lease_path(spool, STUDY, SOPS[0])
    with held(lease, spool.tmp, lease_s=30):
        assert rec.due(_view(redis_url)) == [] and rec.due(_view(redis_url)) == []  # running, lease fresh
        old = time.time() - 60
        os.utime(lease, (old, old))  # its worker died a minute ago
        owed = rec.due(_view(redis_url))
        assert [(o.sop_uids, o.why.split()[0]) for o in owed] == [((SOPS[0],), "lease")]
        assert not lease.exists()  # removed, so the re-queued task is not re-queued again
