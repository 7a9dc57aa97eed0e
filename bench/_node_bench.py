"""Shared helpers of the benchmarks: synthetic full-field mammograms and a node subprocess.

Every process a benchmark starts goes through ``tests.processes.spawn``, like the test
suite's: it dies with the benchmark even when the benchmark is killed (process group,
``PR_SET_PDEATHSIG`` and a reaper process), so an interrupted run leaves no node, redis or
DCMTK peer holding a port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.processes import spawn, stop  # noqa: E402

MG_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def make_images(folder: Path, count: int, rows: int = 4096, columns: int = 3328,
                prefix: str = "img") -> list[Path]:
    """``count`` uint16 MG files of rows × columns (default ≈27 MB each); one pixel array reused."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 4096, size=(rows, columns), dtype=np.uint16).tobytes()
    study = generate_uid()
    paths = []
    for i in tqdm(range(count), desc="generating images", unit="img"):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID = MG_PRESENTATION, generate_uid(), study
        ds.SeriesInstanceUID, ds.Modality, ds.PatientID = generate_uid(), "MG", "BENCH"
        ds.ImageLaterality, ds.ViewPosition = ("L", "R")[i % 2], ("CC", "MLO")[(i // 2) % 2]
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, columns, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = pixels
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        path = folder / f"{prefix}{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def start_redis(workdir: Path) -> tuple[subprocess.Popen[Any], int]:
    """A private, non-persistent redis-server on a free loopback port, data under ``workdir/redis``."""
    port = free_port()
    (workdir / "redis").mkdir(parents=True, exist_ok=True)
    redis = spawn([shutil.which("redis-server") or "redis-server", "--port", str(port),
                   "--bind", "127.0.0.1", "--dir", str(workdir / "redis"), "--save", ""],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return redis, port


@contextmanager
def node_process(workdir: Path, *, max_pdu: int = 0, timeout_s: float = 300) -> Iterator[tuple[int, int]]:
    """A private redis-server and ``mammocad node`` as subprocesses; yields (port, node pid)."""
    redis, redis_port = start_redis(workdir)
    port = free_port()
    cfg = workdir / "mammocad.toml"
    cfg.write_text(f'[node]\nae_title = "MAMMOCAD"\nhost = "127.0.0.1"\nport = {port}\n'
                   f'spool_dir = "{workdir / "spool"}"\nmax_pdu_size = {max_pdu}\nstudy_timeout_s = {timeout_s}\n'
                   f'require_known_callers = false\n\n[broker]\nurl = "redis://127.0.0.1:{redis_port}/0"\n')
    env = {**os.environ, "MAMMOCAD_LOG_LEVEL": "WARNING"}
    node = spawn([sys.executable, "-m", "mammocad", "--config", str(cfg), "node"], name="mammocad node", env=env)
    try:
        wait_for_port(port)
        yield port, node.pid
    finally:
        stop(node)
        stop(redis)


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) of ``pid`` in MB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmHWM"], fields["VmRSS"]
