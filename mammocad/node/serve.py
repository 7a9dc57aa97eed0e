"""``mammocad serve``: broker, node and one worker as one foreground program.

With ``broker.url`` empty a private redis-server runs in ``spool/redis`` with an
append-only file, so queued tasks survive a restart. Ctrl-C / SIGTERM stop the node
first (no new images), then the worker, then redis (which flushes its AOF on SIGTERM).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from mammocad.config import Settings
from mammocad.logs import log_event
from mammocad.node.scp import Node
from mammocad.spool.layout import InstanceLock, Spool, SpoolInUse, atomic_write_bytes, ensure_dir

logger = logging.getLogger("mammocad.serve")


def _child_setup() -> None:
    """Runs in each child before exec: own process group (a terminal's Ctrl-C reaches only
    serve, which stops things in order) and SIGTERM when serve itself dies (no orphans)."""
    os.setpgid(0, 0)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ServeError(RuntimeError):
    """A part of ``mammocad serve`` could not start; the message says what to do."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServeError(f"redis-server exited with status {proc.returncode} at start-up; "
                             f"is port {port} taken? set broker.private_port or broker.url")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServeError(f"redis-server did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


def start_private_redis(settings: Settings) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which(settings.broker.redis_server)
    if exe is None:
        raise ServeError(f"broker.redis_server {settings.broker.redis_server!r} not found: install redis-server "
                         "or set broker.url to an existing Redis")
    port = settings.broker.private_port or _free_port()
    data_dir = Spool(settings.node.spool_dir).redis
    ensure_dir(data_dir)
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir.resolve()),
         "--appendonly", "yes", "--save", "", "--protected-mode", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, preexec_fn=_child_setup)
    _wait_for_port(port, proc)
    url = f"redis://127.0.0.1:{port}/0"
    spool = Spool(settings.node.spool_dir)
    atomic_write_bytes(spool.broker_url_file, url.encode(), spool.root)
    log_event(logger, "broker_started", url=url, dir=str(data_dir))
    return proc, url


def worker_environment(settings: Settings, broker_url: str) -> dict[str, str]:
    """What the worker must be told beyond the config file: the broker serve uses and the
    node settings serve's options changed (``--ae-title``, ``--port``).

    The worker reads the file itself, so without these it sent results with the file's
    ``node.ae_title`` as calling AE title while the node answered to ``--ae-title``. They go
    as ``MAMMOCAD_*`` variables, which outrank the file and so also hold across the
    worker's reloads of the file.
    """
    return {"MAMMOCAD_BROKER__URL": broker_url,
            "MAMMOCAD_NODE__AE_TITLE": settings.node.ae_title,
            "MAMMOCAD_NODE__PORT": str(settings.node.port)}


def start_worker(config_path: Path | None, env_overrides: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "mammocad"]
    if config_path is not None:
        cmd += ["--config", str(config_path)]
    cmd += ["worker", "--config-warnings-logged"]  # the node logs them, for every part
    env = {**os.environ, **env_overrides}
    proc = subprocess.Popen(cmd, env=env, preexec_fn=_child_setup)
    log_event(logger, "worker_started", pid=proc.pid)
    return proc


#: How long ``serve`` waits for each child (the worker, then redis) to stop after SIGTERM before
#: it kills it: a worker finishing a task in flight may take a while, but a foreground program
#: that hangs on Ctrl-C is worse (the task is queued again: the broker never saw it acked).
CHILD_STOP_S = 30.0


def _terminate(proc: subprocess.Popen[bytes] | None, name: str, timeout: float = CHILD_STOP_S) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log_event(logger, "kill", logging.WARNING, child=name, after_s=timeout)
        proc.kill()
        proc.wait()
    log_event(logger, "stopped", child=name, status=proc.returncode)


def serve(settings: Settings, config_path: Path | None) -> int:
    """Run until SIGINT/SIGTERM or until the worker dies; return the exit status."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    redis_proc = worker = None
    node: Node | None = None
    status = 0
    os.umask(0o027)  # redis's files and every spool file: no access for others (children inherit)
    try:
        lock = InstanceLock(settings.node.spool_dir).acquire()
    except SpoolInUse as exc:
        raise ServeError(str(exc)) from exc
    try:
        url = settings.broker.url
        if not url:
            redis_proc, url = start_private_redis(settings)
        # The worker starts before the node's threads exist (preexec_fn is not thread-safe).
        worker = start_worker(config_path, worker_environment(settings, url))
        node = Node(settings, config_path, broker_url=url)
        node.start()
        while not stop.wait(0.5):
            if worker.poll() is not None:
                log_event(logger, "worker_exited", logging.ERROR, status=worker.returncode,
                          hint="see the worker's messages above; fix and restart `mammocad serve`")
                status = 1
                break
            if redis_proc is not None and redis_proc.poll() is not None:
                log_event(logger, "broker_exited", logging.ERROR, status=redis_proc.returncode)
                status = 1
                break
    finally:
        if node is not None:
            node.stop()
        _terminate(worker, "worker")
        _terminate(redis_proc, "redis-server")
        if redis_proc is not None:
            Spool(settings.node.spool_dir).broker_url_file.unlink(missing_ok=True)
        lock.release()
    return status
