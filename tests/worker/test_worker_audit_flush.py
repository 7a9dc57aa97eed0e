"""A real results worker stopped by SIGTERM (systemd's stop) right after one of its pool
processes queued config-change records: the records reach the audit file.

The pool process queued them on its own audit sender; billiard ends a pool process with
``os._exit``, past ``atexit``, and nothing closed its trail, so what its sender had not
written yet went with it. Here the syslog collector does not answer (a firewall dropping
packets): the sender writes the first record to the file, then waits out the collector's
connect timeout, and the records queued behind it were lost at the stop. The pool process
now sends what it queued before it exits (``worker_process_shutdown``), within a bound.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from mammocad.audit import claims
from mammocad.config import Settings
from mammocad.spool.broker import make_celery
from mammocad.spool.tasks import TASK_DELIVER, deliver_args
from tests import processes
from tests.audit.blackhole import Blackhole
from tests.services import WORKER_READY_TIMEOUT, redis_server, wait_until


def _config(spool: Path, url: str, audit: Path, collector: str, edited: bool) -> str:
    text = (f'log_level = "INFO"\n[node]\nspool_dir = "{spool}"\n')
    if edited:  # three audited sections change: three records, one per section
        text += "require_known_callers = false\n"
    text += (f'[broker]\nurl = "{url}"\n[worker]\ndevice = "cpu"\n'
             f'[audit]\nfile = "{audit}"\nsyslog = "{collector}"\n')
    if edited:
        text += ('[[callers]]\nae_title = "MG_ROOM1"\n\n'
                 '[[destinations]]\nname = "pacs"\nae_title = "PACS"\nhost = "10.0.0.5"\nport = 4242\n')
    return text


def _write(config: Path, text: str, version: int) -> None:
    """Replace the file as an editor does, at a distinct modification time per version."""
    tmp = config.with_suffix(".tmp")
    tmp.write_text(text)
    os.utime(tmp, ns=(version * 10**9, version * 10**9))
    os.replace(tmp, config)


def _reloads(audit: Path) -> list[str]:
    """The changed sections the config-change (Security Alert) records name."""
    names = []
    for line in audit.read_bytes().splitlines() if audit.exists() else []:
        root = ET.fromstring(line)
        if root.find("EventIdentification/EventID").get("csd-code") == "110113":  # type: ignore[union-attr]
            names.append(root.findtext("ParticipantObjectIdentification/ParticipantObjectName") or "")
    return names


def test_a_pool_process_stopped_by_sigterm_writes_the_config_records_it_queued(tmp_path: Path) -> None:
    spool, audit, config = tmp_path / "spool", tmp_path / "audit.log", tmp_path / "mammocad.toml"
    log_path = tmp_path / "worker.log"
    with redis_server(tmp_path / "redis") as url, Blackhole() as collector:
        _write(config, _config(spool, url, audit, collector.url, edited=False), 1)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
        with log_path.open("wb") as log:
            proc = processes.spawn([sys.executable, "-m", "mammocad", "--config", str(config), "worker",
                                    "--queues", "results", "--concurrency", "1"],
                                   stdout=log, stderr=subprocess.STDOUT, env={**env, "OMP_NUM_THREADS": "1"},
                                   cwd=tmp_path)
        try:
            wait_until(lambda: " ready." in log_path.read_text() or proc.poll() is not None,
                       WORKER_READY_TIMEOUT, "the results worker")
            assert proc.poll() is None, log_path.read_text()
            _write(config, _config(spool, url, audit, collector.url, edited=True), 2)
            # Any task re-reads the file first: the pool process sees the edit and queues the records.
            make_celery(Settings(), broker_url=url).send_task(
                TASK_DELIVER, args=deliver_args(spool, "pacs", "no-such-item"))
            wait_until(lambda: len(os.listdir(spool / claims.FOLDER)) == 3 if (spool / claims.FOLDER).is_dir()
                       else False, 60, "the pool process claiming the three changes")
            proc.send_signal(signal.SIGTERM)  # systemd's stop (KillMode=mixed: the main process)
            assert proc.wait(120) == 0, log_path.read_text()
        finally:
            processes.stop(proc, sig=signal.SIGKILL)
    assert sorted(_reloads(audit)) == ["[[callers]]", "[[destinations]]", "node.require_known_callers"], \
        log_path.read_text()
