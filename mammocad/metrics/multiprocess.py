"""prometheus_client's multiprocess mode for Celery's prefork pool.

Each pool process writes its samples to files in ``PROMETHEUS_MULTIPROC_DIR``; the worker's
main process serves their sum (``MultiProcessCollector``). The folder belongs to one worker
(one metrics port): it is emptied at start, because files of a previous run would be added
to the new counts. The variable must be set before prometheus_client is first imported,
which is why this module imports it only inside its functions.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ENV = "PROMETHEUS_MULTIPROC_DIR"


def default_dir(port: int) -> Path:
    """One folder per metrics port on this machine (one per worker process group)."""
    return Path(tempfile.gettempdir()) / f"mammocad-metrics-{os.getuid()}" / str(port)


def prepare(folder: Path) -> Path:
    """Empty ``folder`` and point prometheus_client at it; call before importing it."""
    values = sys.modules.get("prometheus_client.values")
    if values is not None and getattr(values.ValueClass, "__name__", "") != "MmapedValue":
        raise RuntimeError("prometheus_client was imported before multiprocess mode was set up; "
                           "import mammocad.metrics.definitions only after prepare()")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, mode=0o700)
    os.environ[ENV] = str(folder)
    return folder


def registry() -> Any:
    """A registry summing every process's files (for the worker's HTTP endpoint)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    reg = CollectorRegistry()
    MultiProcessCollector(reg)
    return reg


def process_exited(pid: int) -> None:
    """Drop a dead pool process's live gauges (Celery's worker_process_shutdown)."""
    if os.environ.get(ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
