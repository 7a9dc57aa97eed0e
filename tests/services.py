"""Real services for tests: a private redis-server on a free port, started and stopped here."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests import processes

# How long a freshly started Celery worker may take to log "ready." (a deadline, not a speed
# assertion): importing torch/torchvision on a loaded 2-core machine takes ~150 s.
WORKER_READY_TIMEOUT = 300.0


def torch_threads(most: int = 2) -> str:
    """OMP_NUM_THREADS for a command a test starts: ``most``, or fewer where this process has
    fewer (a pytest-xdist worker's share of the cores, tests/conftest.py)."""
    return str(min(most, int(os.environ.get("OMP_NUM_THREADS") or most)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


@contextmanager
def redis_server(workdir: Path, port: int | None = None) -> Iterator[str]:
    """A private redis-server with an append-only file; yields its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed: run `make test`, which installs it")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = processes.spawn(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
         "--appendonly", "yes", "--save", "", "--protected-mode", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        processes.stop(proc)


def wait_until(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
               interval: float = 0.05) -> Any:
    """Poll ``cond`` until truthy and return its value; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
