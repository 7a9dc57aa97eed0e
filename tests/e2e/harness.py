"""`mammocad serve` as a child process with its own config, spool and log (tests and bench)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests import processes
from tests.services import WORKER_READY_TIMEOUT, free_port, wait_for_port
from tests.services import wait_until as wait_for


class Pipeline:
    """A `mammocad serve` process with its own config, spool and log file (``extra``: more TOML)."""

    def __init__(self, workdir: Path, weights: Path | str, destinations: list[dict[str, Any]],
                 callers: tuple[str, ...] = ("ORTHANC", "STORESCU"), study_timeout_s: float = 2.0,
                 delivery: dict[str, float] | None = None, threads: int = 1, node_extra: str = "",
                 extra: str = "") -> None:
        self.workdir = workdir
        self.spool = workdir / "spool"
        self.port = free_port()
        self.config = workdir / "mammocad.toml"
        self.log = workdir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.threads = threads
        d = {"retry_initial_s": 0.5, "retry_max_s": 2.0, "deadline_s": 300.0, "network_timeout_s": 5.0}
        d.update(delivery or {})
        lines = [
            'log_level = "INFO"',
            "[node]", 'ae_title = "MAMMOCAD"', 'host = "127.0.0.1"', f"port = {self.port}",
            f"study_timeout_s = {study_timeout_s}", f'spool_dir = "{self.spool}"', "requeue_interval_s = 1",
            node_extra,
            "[worker]", f'weights = "{weights}"', 'device = "cpu"', "soft_time_limit_s = 60", "time_limit_s = 90",
            "[delivery]", *[f"{k} = {v}" for k, v in d.items()],
        ]
        for caller in callers:
            lines += ["[[callers]]", f'ae_title = "{caller}"']
        for dest in destinations:
            lines += ["[[destinations]]", *[f"{k} = {json.dumps(v)}" for k, v in dest.items()]]
        lines.append(extra)  # more TOML sections, e.g. [audit] or [metrics]
        workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text("\n".join(lines) + "\n")

    @property
    def modality(self) -> tuple[str, str, int]:
        """This node as an Orthanc ``DicomModalities`` entry."""
        return ("MAMMOCAD", "127.0.0.1", self.port)

    def start(self) -> Pipeline:
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "PYTHONUNBUFFERED": "1"}
        env.pop("MAMMOCAD_BROKER__URL", None)
        with open(self.log, "ab") as log:
            self.proc = processes.spawn([sys.executable, "-m", "mammocad", "--config", str(self.config), "serve"],
                                        name="mammocad serve", stdout=log, stderr=subprocess.STDOUT, env=env,
                                        cwd=self.workdir)
        try:
            try:
                wait_for_port(self.port, timeout=60)
            except TimeoutError as exc:
                raise AssertionError(f"the node did not listen; serve log:\n{self.log_text()[-4000:]}") from exc
            try:  # both Celery workers (gpu and results) up, so timings measure the pipeline, not imports
                wait_for(lambda: len(re.findall(r"@\S+ ready\.", self.log_text())) >= 2, WORKER_READY_TIMEOUT,
                         "the workers to be ready")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; serve log:\n{self.log_text()[-4000:]}") from None
        except BaseException:  # the caller gets no pipeline to stop: stop it here
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM to serve (it stops its node, workers and redis in order), SIGKILL to all
        of them after 60 s."""
        if self.proc is not None:
            processes.stop(self.proc, grace=60)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def reports(self, study_uid: str) -> list[dict[str, Any]]:
        folder = self.spool / "studies" / study_uid / "reports"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []

    def wait_report(self, study_uid: str, timeout: float = 120) -> dict[str, Any]:
        try:
            return wait_for(lambda: self.reports(study_uid), timeout, "the study report")[0]
        except AssertionError as exc:
            raise AssertionError(f"{exc}; serve log tail:\n{self.log_text()[-4000:]}") from None

    def analysis_pool_pids(self) -> list[int]:
        """PIDs of the prefork children of the `--queues gpu` worker (the ones running analyses)."""
        assert self.proc is not None
        gpu = [p for p in _descendants(self.proc.pid) if "--queues gpu" in _cmdline(p)]
        return [c for g in gpu for c in _children(g)]


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _descendants(pid: int) -> list[int]:
    todo, out = [pid], []
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def send_with_storescu(port: int, files: list[Path]) -> None:
    """Send files to the node with DCMTK storescu (calling AE STORESCU)."""
    proc = subprocess.run(["storescu", "-aec", "MAMMOCAD", "127.0.0.1", str(port), *map(str, files)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def elapsed(t0: float) -> float:
    return time.monotonic() - t0
