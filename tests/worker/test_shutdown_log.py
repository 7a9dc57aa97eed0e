"""A real worker stopped as systemd stops it (SIGTERM to its whole process group), or with
Ctrl+C (SIGINT), writes only documented log lines: every line of its output, start to exit,
parses as ``TIMESTAMP LEVEL LOGGER event=NAME key=value ...``, Celery's own terminal notices
("worker: Warm shutdown", the Ctrl+C hint, the SIGUSR1 thread dump) included."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests import processes
from tests.log_lines import parse
from tests.services import WORKER_READY_TIMEOUT, redis_server, wait_until


@pytest.mark.parametrize(("stop", "exitcode"), [(signal.SIGTERM, 0), (signal.SIGINT, 1)])
def test_shutdown_lines_parse(stop: signal.Signals, exitcode: int, tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as url:
        config = tmp_path / "mammocad.toml"
        config.write_text(f'log_level = "INFO"\n[node]\nspool_dir = "{tmp_path / "spool"}"\n'
                          f'[broker]\nurl = "{url}"\n[worker]\ndevice = "cpu"\n')
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        env = {k: v for k, v in env.items() if not k.startswith("MAMMOCAD_")}
        proc = processes.spawn([sys.executable, "-m", "mammocad", "--config", str(config), "worker",
                                "--queues", "gpu", "--concurrency", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
        out: dict[str, list[str]] = {"stdout": [], "stderr": []}

        def read(name: str) -> None:
            stream = getattr(proc, name)
            for line in iter(stream.readline, ""):
                out[name].append(line.rstrip("\n"))

        readers = [threading.Thread(target=read, args=(n,), daemon=True) for n in out]
        for reader in readers:
            reader.start()
        try:
            wait_until(lambda: any(" ready." in line for line in out["stderr"]) or proc.poll() is not None,
                       WORKER_READY_TIMEOUT, "the worker")
            assert proc.poll() is None, "\n".join(out["stderr"])
            workers = tmp_path / "spool" / "workers"
            assert [p.name for p in workers.glob("*.json")] == [f"gpu-{proc.pid}@{socket.gethostname()}.json"]
            if stop == signal.SIGTERM:  # an admin's `kill -USR1`: Celery dumps every thread's stack
                os.kill(proc.pid, signal.SIGUSR1)
                wait_until(lambda: any("celery_thread_dump" in line for line in out["stderr"]), 30, "the dump")
            os.killpg(proc.pid, stop)  # systemd's KillMode=control-group; a terminal's Ctrl+C
            assert proc.wait(120) == exitcode, "\n".join(out["stderr"])
            assert not list(workers.glob("*.json"))  # a clean stop holding nothing leaves no presence
        finally:
            processes.stop(proc, sig=signal.SIGKILL)
        for reader in readers:
            reader.join(10)

    lines = [(name, line) for name in out for line in out[name]]
    assert lines, "the worker wrote nothing"
    parsed = [parse(line) for _, line in lines]  # each names its line when it does not parse
    texts = [f.get("msg", "") for f in parsed]
    assert any("Warm shutdown" in t for t in texts), texts  # Celery's notice is routed, not lost
    assert any(t.endswith(" ready.") for t in texts), texts
    if stop == signal.SIGINT:
        assert any("Hitting Ctrl+C again" in t for t in texts), texts
    else:
        (dump,) = [f for f in parsed if f["event"] == "celery_thread_dump"]
        assert "MainThread:\n" in dump["stacks"] and "LOCAL VARIABLES" not in dump["stacks"], dump
