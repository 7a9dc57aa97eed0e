"""A real results worker, killed (kill -9 of its process group) while it holds a study's
finalize waiting for a countdown: its presence file goes stale and the node's reconciler
queues the finalize again at once, instead of waiting out Redis's visibility timeout
(2 x worker.time_limit_s, half an hour by default) as it did when a held task was always
taken for a live one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from mammocad.config import Settings
from mammocad.spool.broker import make_celery
from mammocad.spool.layout import Spool, atomic_write_json
from mammocad.spool.reconcile import BrokerView, Owed, Reconciler, read_broker, redis_client
from mammocad.spool.records import PresenceRecord
from mammocad.spool.tasks import TASK_DELIVER, TASK_FINALIZE_STUDY, deliver_args, finalize_study_args
from tests import processes
from tests.services import WORKER_READY_TIMEOUT, redis_server, wait_until

STUDY = "1.2.3.4"
SOPS = ["1.2.3.4.1", "1.2.3.4.2"]
LEASE_S = 2.0


def test_a_killed_results_worker_s_held_finalize_is_queued_again(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool").create()
    for sop in SOPS:  # analysed; the finalize, sent with a ten-minute countdown, waits in the worker
        spool.write(spool.image_path(STUDY, sop), b"image")
        atomic_write_json(spool.result_path(STUDY, sop), {"done": True}, spool.tmp)
    atomic_write_json(spool.complete_path(STUDY), {"sop_uids": SOPS, "reason": "four_views"}, spool.tmp)
    with redis_server(tmp_path / "redis") as url:
        config = tmp_path / "mammocad.toml"
        config.write_text(f'log_level = "INFO"\n[node]\nspool_dir = "{spool.root}"\n'
                          f'[broker]\nurl = "{url}"\n[worker]\ndevice = "cpu"\nlease_s = {LEASE_S}\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
        log = (tmp_path / "worker.log").open("wb")
        proc = processes.spawn([sys.executable, "-m", "mammocad", "--config", str(config), "worker",
                                "--queues", "results", "--concurrency", "1"],
                               stdout=log, stderr=subprocess.STDOUT, env={**env, "OMP_NUM_THREADS": "1"},
                               cwd=tmp_path)
        client = redis_client(url)

        def view() -> BrokerView:
            return read_broker(client, ["gpu", "results"])

        try:
            wait_until(lambda: " ready." in (tmp_path / "worker.log").read_text() or proc.poll() is not None,
                       WORKER_READY_TIMEOUT, "the results worker")
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()
            app = make_celery(Settings(), broker_url=url)
            # A task done at once ("gone": no such outbox item), then the finalize that waits.
            app.send_task(TASK_DELIVER, args=deliver_args(spool.root, "pacs", "no-such-item"))
            app.send_task(TASK_FINALIZE_STUDY, args=finalize_study_args(spool.root, STUDY, SOPS), countdown=600)

            def listed() -> set[str]:
                files = list(spool.workers.glob("*.json"))
                return {t for f in files for t in PresenceRecord.read(f).held} if files else set()

            def unacked() -> set[str]:
                return {t.decode() for t in client.hkeys("unacked")}

            def finalize_tags() -> set[str]:
                return view().held_tags.get((TASK_FINALIZE_STUDY, STUDY, ""), set())

            # Exactly what it holds: the finalize; the done task's tag has left the list at a beat.
            wait_until(lambda: finalize_tags() and listed() == unacked() == finalize_tags(), 60,
                       "the worker listing exactly the finalize it holds")
            (beat,) = spool.workers.glob("*.json")
            assert PresenceRecord.read(beat).pid == proc.pid  # the main process beats, not a pool child
            rec = Reconciler(spool, lease_s=LEASE_S)
            first = beat.stat().st_mtime

            def beaten_past_a_lease() -> bool:  # held by a live worker: never owed, however often asked
                assert rec.due(view()) == []
                return beat.stat().st_mtime >= first + 1.5 * LEASE_S

            wait_until(beaten_past_a_lease, 60, "the worker beating for longer than a lease", interval=0.2)

            processes.stop(proc, sig=signal.SIGKILL)  # the whole group, as the fault suite does
            assert client.hkeys("unacked"), "the held message stays in redis after the kill"
            owed: list[Owed] = wait_until(lambda: rec.due(view()), 60,
                                          "the finalize owed again")
            assert [(o.task, o.study_uid) for o in owed] == [(TASK_FINALIZE_STUDY, STUDY)]
            assert owed[0].why.startswith(f"held by a dead worker: results-{proc.pid}@")
        finally:
            processes.stop(proc, sig=signal.SIGKILL)
            log.close()
