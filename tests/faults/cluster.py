"""A whole mammocad installation as separate processes, for killing them one at a time.

redis-server, the node (``mammocad node``), the analysis worker (``mammocad worker
--queues gpu``), the results worker (``--queues results``) and Orthanc as the PACS each run
as their own process (group) with their own log, so a test can ``kill -9`` any of them
mid-study, restart it as systemd would, and then reconcile: images acknowledged = images
analysed = images in exactly one delivered report, per study, in Orthanc.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pydicom import dcmread

from tests import processes
from tests.orthanc import Orthanc
from tests.services import WORKER_READY_TIMEOUT, free_port, wait_for_port, wait_until

MAMMO_CAD_SR = "1.2.840.10008.5.1.4.1.1.88.50"
ROLES = ("node", "gpu", "results")


class Cluster:
    def __init__(self, workdir: Path, weights: Path, *, lease_s: float = 4.0, study_timeout_s: float = 3.0,
                 outputs: tuple[str, ...] = ("mammo-cad-sr",)) -> None:
        self.workdir = workdir
        self.spool = workdir / "spool"
        self.port = free_port()
        self.redis_port = free_port()
        self.orthanc_http, self.orthanc_dicom = free_port(), free_port()
        self.config = workdir / "mammocad.toml"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.orthanc: Orthanc | None = None
        self.study_timeout_s = study_timeout_s
        #: a cluster made in a module fixture keeps the processes it restarts inside tests
        self.lifetime = processes.current_lifetime()
        lines = [
            'log_level = "INFO"',
            "[node]", 'ae_title = "MAMMOCAD"', 'host = "127.0.0.1"', f"port = {self.port}",
            f"study_timeout_s = {study_timeout_s}", f'spool_dir = "{self.spool}"', "requeue_interval_s = 1",
            "reconcile_interval_s = 1", "network_timeout_s = 10", "association_timeout_s = 5",
            "[broker]", f'url = "redis://127.0.0.1:{self.redis_port}/0"',
            "[worker]", f'weights = "{weights}"', 'device = "cpu"', "soft_time_limit_s = 60", "time_limit_s = 90",
            f"lease_s = {lease_s}",
            "[delivery]", "retry_initial_s = 0.5", "retry_max_s = 2.0", "deadline_s = 600.0", "network_timeout_s = 5.0",
            "[[callers]]", 'ae_title = "STORESCU"',
            "[[destinations]]", 'name = "pacs"', 'ae_title = "ORTHANC"', 'host = "127.0.0.1"',
            f"port = {self.orthanc_dicom}", f"outputs = {json.dumps(list(outputs))}", "associations = 1",
        ]
        workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text("\n".join(lines) + "\n")

    # ------------------------------------------------------------------ processes
    def log(self, role: str) -> Path:
        return self.workdir / f"{role}.log"

    def start_redis(self, aof: bool = True) -> None:
        data = self.workdir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        cmd = [shutil.which("redis-server") or "redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
               "--dir", str(data), "--save", "", "--protected-mode", "no",
               "--appendonly", "yes" if aof else "no", "--appendfsync", "always"]
        self._spawn("redis", cmd)
        wait_for_port(self.redis_port)

    def start(self, role: str) -> None:
        cmd = [sys.executable, "-m", "mammocad", "--config", str(self.config)]
        cmd += ["node"] if role == "node" else ["worker", "--queues", role, "--concurrency", "1"]
        before = self.log_text(role).count(" ready.")
        self._spawn(role, cmd)
        if role == "node":
            wait_for_port(self.port, timeout=60)
        else:
            wait_until(lambda: self.log_text(role).count(" ready.") > before, WORKER_READY_TIMEOUT,
                       f"the {role} worker")

    def _spawn(self, role: str, cmd: list[str]) -> None:
        """Start ``cmd``; its output reaches the role's log through a pipe, so a file-size
        limit put on the process (a "full disk") does not stop it from logging."""
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        env.pop("MAMMOCAD_BROKER__URL", None)
        proc = processes.spawn(cmd, name=role, lifetime=self.lifetime, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=env, cwd=self.workdir)
        self.procs[role] = proc
        path = self.log(role)

        def copy() -> None:
            assert proc.stdout is not None
            with open(path, "ab") as log:
                for line in iter(proc.stdout.readline, b""):
                    log.write(line)
                    log.flush()

        threading.Thread(target=copy, name=f"log-{role}", daemon=True).start()

    def start_orthanc(self) -> Orthanc:
        self.orthanc = Orthanc(self.workdir / "orthanc", {"mammocad": ("MAMMOCAD", "127.0.0.1", self.port)},
                               http_port=self.orthanc_http, dicom_port=self.orthanc_dicom,
                               lifetime=self.lifetime).start()
        return self.orthanc

    def start_all(self) -> Cluster:
        self.start_redis()
        self.start_orthanc()
        for role in ROLES:
            self.start(role)
        return self

    def kill(self, role: str) -> None:
        """kill -9 of the role's whole process group (a worker's pool children die with it)."""
        processes.stop(self.procs.pop(role), sig=signal.SIGKILL)

    def pids(self, role: str) -> list[int]:
        proc = self.procs[role]
        out = [proc.pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == proc.pid:
                        out.append(int(entry.name))
                except OSError:
                    continue
        return sorted(set(out))

    def stop(self) -> None:
        for role in list(self.procs):
            processes.stop(self.procs.pop(role), grace=30)
        if self.orthanc is not None:
            self.orthanc.stop()

    def log_text(self, role: str | None = None) -> str:
        roles = [role] if role else ["redis", *ROLES]
        return "\n".join(self.log(r).read_text(errors="replace") for r in roles if self.log(r).exists())

    # ------------------------------------------------------------------ sending
    def send(self, files: list[Path], check: bool = True, opts: tuple[str, ...] = ()
             ) -> subprocess.CompletedProcess[str]:
        """storescu; ``opts`` adds its options (``-xr``: propose RLE Lossless too)."""
        proc = subprocess.run(["storescu", "-aet", "STORESCU", "-aec", "MAMMOCAD", *opts, "127.0.0.1",
                               str(self.port), *map(str, files)], capture_output=True, text=True, timeout=120)
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    # ------------------------------------------------------------------ reconciling
    def reports(self, study_uid: str) -> list[dict[str, Any]]:
        folder = self.spool / "studies" / study_uid / "reports"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []

    def pacs_objects(self, study_uid: str) -> list[Any]:
        assert self.orthanc is not None
        study_id = self.orthanc.study_id(study_uid)
        if not study_id:
            return []
        out = []
        for instance in self.orthanc.instances(study_id):
            raw = self.orthanc.instance_file(instance["ID"])
            from io import BytesIO

            out.append(dcmread(BytesIO(raw), stop_before_pixels=True))
        return out

    def wait_delivered(self, study_uid: str, sops: list[str], timeout: float = 240) -> dict[str, Any]:
        """Wait for a report over exactly ``sops`` whose outputs are all in Orthanc; return it."""
        wanted = sorted(sops)

        def done() -> dict[str, Any] | None:
            final = [r for r in self.reports(study_uid) if sorted(r["sop_uids"]) == wanted]
            if not final:
                return None
            outbox = self.spool / "outbox" / "pacs" / final[0]["destinations"].get("pacs", "-")
            return final[0] if final[0]["outputs"] and not outbox.exists() else None

        try:
            return wait_until(done, timeout, f"study {study_uid} reported and delivered")  # type: ignore[no-any-return]
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- logs ---\n{self.log_text()[-6000:]}") from None

    def reconcile(self, study_uid: str, acknowledged: list[str]) -> None:
        """Images acknowledged = analysed = in exactly one delivered report, in Orthanc."""
        report = self.wait_delivered(study_uid, acknowledged)
        results = self.spool / "studies" / study_uid / "results"
        analysed = sorted(p.stem for p in results.glob("*.json")
                          if not json.loads(p.read_text()).get("error"))
        assert analysed == sorted(acknowledged), (analysed, acknowledged)
        assert sorted(report["sop_uids"]) == sorted(acknowledged) and report["failed_images"] == []
        srs = [ds for ds in self.pacs_objects(study_uid) if str(ds.SOPClassUID) == MAMMO_CAD_SR]
        # Exactly one current report; any earlier partial one must be cited as its predecessor.
        current = [ds for ds in srs if str(ds.SOPInstanceUID) in report["outputs"]]
        assert len(current) == 1, [str(ds.SOPInstanceUID) for ds in srs]
        cited = {str(item.ReferencedSOPInstanceUID) for ds in current
                 for seq in ds.get("PredecessorDocumentsSequence", [])
                 for series in seq.ReferencedSeriesSequence for item in series.ReferencedSOPSequence}
        for ds in srs:
            assert ds in current or str(ds.SOPInstanceUID) in cited, "two parallel reports for one study"


def fresh_study(tmp: Path, name: str, rows: int = 64, columns: int = 48) -> tuple[str, list[str], list[Path]]:
    """A small four-view study written to files; (study UID, SOP UIDs, paths)."""
    from tests.factories import make_four_view_study, write

    study = make_four_view_study(rows=rows, columns=columns)
    paths = [write(ds, tmp / name / f"{i}.dcm") for i, ds in enumerate(study)]
    return str(study[0].StudyInstanceUID), [str(ds.SOPInstanceUID) for ds in study], paths


def in_flight(cluster: Cluster, study_uid: str, sops: list[str]) -> list[str]:
    results = cluster.spool / "studies" / study_uid / "results"
    return [s for s in sops if (results / f"{s}.lease").exists() and not (results / f"{s}.json").exists()]


def settle(seconds: float) -> None:
    """Let the processes run on (not an assertion on time)."""
    time.sleep(seconds)


def count(pattern: str, text: str) -> int:
    return len(re.findall(pattern, text))
