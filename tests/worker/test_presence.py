"""A real results worker, killed (kill -9 of its process group) while it holds a study's
finalize waiting for a countdown: its presence file goes stale and the node's reconciler
queues the finalize again at once, instead of waiting out Redis's visibility timeout
(2 x worker.time_limit_s, half an hour by default) as it did when a held task was always
taken for a live one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mammocad.config import Settings
from mammocad.spool.broker import make_celery
from mammocad.spool.layout import Spool, atomic_write_json
from mammocad.spool.reconcile import BrokerView, Owed, Reconciler, read_broker, redis_client
from mammocad.spool.records.presence import PresenceRecord
from mammocad.spool.tasks import TASK_DELIVER, TASK_FINALIZE_STUDY, deliver_args, finalize_study_args
from tests import processes
from tests.services import WORKER_READY_TIMEOUT, redis_server, wait_until

STUDY = "1.2.3.4"
SOPS = ["1.2.3.4.1", "1.2.3.4.2"]
LEASE_S = 2.0


@dataclass
class Holding:
    """A real results worker that holds a study's finalize (countdown ten minutes) and lists it."""

    spool: Spool
    proc: subprocess.Popen[bytes]
    client: Any
    beat: Path
    reconciler: Reconciler
    url: str
    redis_dir: Path
    log: Path

    def view(self) -> BrokerView:
        return read_broker(self.client, ["gpu", "results"])

    def listed(self, field: str = "held") -> set[str]:
        return set(getattr(PresenceRecord.read(self.beat), field))

    def owed_finalizes(self) -> list[Owed]:
        return [o for o in self.reconciler.due(self.view()) if o.task == TASK_FINALIZE_STUDY]


@pytest.fixture
def holding(tmp_path: Path) -> Iterator[Holding]:
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
        log_path = tmp_path / "worker.log"
        log = log_path.open("wb")
        proc = processes.spawn([sys.executable, "-m", "mammocad", "--config", str(config), "worker",
                                "--queues", "results", "--concurrency", "1"],
                               stdout=log, stderr=subprocess.STDOUT, env={**env, "OMP_NUM_THREADS": "1"},
                               cwd=tmp_path)
        client = redis_client(url)
        try:
            wait_until(lambda: " ready." in log_path.read_text() or proc.poll() is not None,
                       WORKER_READY_TIMEOUT, "the results worker")
            assert proc.poll() is None, log_path.read_text()
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
                return read_broker(client, ["results"]).held_tags.get((TASK_FINALIZE_STUDY, STUDY, ""), set())

            # Exactly what it holds: the finalize; the done task's tag has left the list at a beat.
            wait_until(lambda: finalize_tags() and listed() == unacked() == finalize_tags(), 60,
                       "the worker listing exactly the finalize it holds")
            (beat,) = spool.workers.glob("*.json")
            assert PresenceRecord.read(beat).pid == proc.pid  # the main process beats, not a pool child
            held = Holding(spool, proc, client, beat, Reconciler(spool, lease_s=LEASE_S), url, tmp_path / "redis",
                           log_path)
            first = beat.stat().st_mtime

            def beaten_past_a_lease() -> bool:  # held by a live worker: never owed, however often asked
                assert held.owed_finalizes() == []
                return beat.stat().st_mtime >= first + 1.5 * LEASE_S

            wait_until(beaten_past_a_lease, 60, "the worker beating for longer than a lease", interval=0.2)
            yield held
        finally:
            processes.stop(proc, sig=signal.SIGKILL)
            log.close()


def test_a_killed_results_worker_s_held_finalize_is_queued_again(holding: Holding) -> None:
    processes.stop(holding.proc, sig=signal.SIGKILL)  # the whole group, as the fault suite does
    assert holding.client.hkeys("unacked"), "the held message stays in redis after the kill"
    owed: list[Owed] = wait_until(holding.owed_finalizes, 60, "the finalize owed again")
    assert [(o.task, o.study_uid) for o in owed] == [(TASK_FINALIZE_STUDY, STUDY)]
    assert owed[0].why.startswith(f"held by a dead worker: results-{holding.proc.pid}@")


def test_a_finalize_the_worker_dropped_in_a_broker_restart_is_queued_again(holding: Holding) -> None:
    """Redis restarted from its append-only file while the worker waited to run a finalize: the
    worker could not put the message back (Redis was down), Celery forgot the task when the
    connection closed, and the restarted Redis keeps the message unacknowledged until the
    visibility timeout. The live worker lists it as dropped, and the node queues it again."""
    (tag,) = holding.listed()
    port = int(holding.url.rsplit(":", 1)[1].split("/")[0])
    holding.client.shutdown()  # saves the append-only file, then exits
    wait_until(lambda: "Connection to broker lost" in holding.log.read_text(), 60, "the worker seeing redis go")
    with redis_server(holding.redis_dir, port=port):
        wait_until(lambda: holding.listed("dropped") == {tag} and not holding.listed(), 60,
                   "the worker listing the finalize as dropped")
        assert holding.proc.poll() is None  # the worker reconnected and lives on
        assert tag in {t.decode() for t in holding.client.hkeys("unacked")}
        owed: list[Owed] = wait_until(holding.owed_finalizes, 30, "the finalize owed again")
        assert owed[0].why == f"dropped by its worker: results-{holding.proc.pid}@{socket.gethostname()} " \
                              "(dropped it: its broker connection closed)"


def test_workers_lists_alive_and_silent_and_fails_for_a_queue_without_a_live_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mammocad.cli import main

    spool = Spool(tmp_path / "spool").create()
    config = tmp_path / "mammocad.toml"
    config.write_text(f'[node]\nspool_dir = "{spool.root}"\n[worker]\nlease_s = 30\n')

    def beat(worker: str, held: tuple[str, ...], silent_s: float, lease_s: float = 30.0) -> Path:
        path = spool.presence_path(worker)
        record = PresenceRecord(worker=worker, host="box", pid=7, started=1.7e9, held=held, lease_s=lease_s)
        atomic_write_json(path, record.to_json(), spool.tmp)
        os.utime(path, (time.time() - silent_s,) * 2)
        return path

    beat("gpu-11@box", (), 2)
    beat("results-12@box", ("t1", "t2"), 600)  # killed ten minutes ago, holding two tasks
    assert main(["workers", "--config", str(config)]) == 1
    out, err = capsys.readouterr()
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["gpu-11@box"][1:3] == ["gpu", "alive"]
    assert rows["results-12@box"][1:3] == ["results", "silent"] and rows["results-12@box"][5] == "2"
    assert err.startswith(f"no live worker for queue results in {spool.root}:")

    # A box whose own lease is longer beats more slowly: not dead to a node set shorter.
    beat("results-13@other", ("t3",), 100, lease_s=300)
    assert main(["--config", str(config), "workers", "--json"]) == 0
    listed = {d["worker"]: d for d in map(json.loads, capsys.readouterr().out.splitlines())}
    assert listed["results-13@other"]["alive"] is True and listed["results-13@other"]["held"] == 1
    assert listed["results-12@box"]["alive"] is False
