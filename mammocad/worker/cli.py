"""CLI for the worker: ``mammocad worker``; it also registers ``mammocad workers`` (:mod:`.workers_cli`)
and ``mammocad outbox list|retry|drop`` (:mod:`.outbox_cli`).

``mammocad worker`` with both queues (the default) supervises two Celery workers, one per
queue, because Celery has one concurrency per worker: the ``gpu`` queue wants one
process per GPU, while the ``results`` queue must keep finalising and delivering while
an analysis runs. A child that dies unexpectedly is restarted.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mammocad.config import (
    EXIT_INVALID_CONFIG,
    Settings,
    resolve_config_path,
    settings_for_command,
)
from mammocad.listen import PortError, listen
from mammocad.logs import configure_logging
from mammocad.worker import outbox_cli, workers_cli

logger = logging.getLogger(__name__)

#: Processes of the results worker: finalising (CPU) and delivery (network waits).
RESULTS_CONCURRENCY = 2


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    w = subparsers.add_parser(
        "worker", help="run Celery workers: analysis (queue gpu) and results + delivery (queue results)",
        description="Runs the Celery workers of mammocad. Needs broker.url (or MAMMOCAD_BROKER__URL); "
                    "`mammocad serve` starts one for you.")
    w.add_argument("--queues", default="", metavar="Q1,Q2",
                   help="queues to consume (default: worker.analysis_queue,worker.results_queue)")
    w.add_argument("--concurrency", type=int, default=0, metavar="N",
                   help="processes for the analysis queue (default: worker.concurrency; "
                        f"the results queue uses {RESULTS_CONCURRENCY})")
    w.add_argument("--loglevel", default="", help="log level (default: log_level from the config)")
    w.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="serve /metrics, /healthz, /readyz on this port (default: metrics.worker_port for the "
                        "results queue, the port after it for the analysis queue; 0 = off)")
    # Set by whoever has logged the configuration advice already: `mammocad worker` for the
    # children it supervises, `mammocad serve` (its node logs it) for its worker.
    w.add_argument("--config-warnings-logged", action="store_true", help=argparse.SUPPRESS)
    w.set_defaults(handler=run_worker)
    workers_cli.register(subparsers)

    outbox_cli.register(subparsers)



# --------------------------------------------------------------------------- worker


def run_worker(args: argparse.Namespace) -> int:
    settings = settings_for_command(getattr(args, "config", None))
    if settings is None:
        return EXIT_INVALID_CONFIG
    # As the node and `serve` do: what the worker and the libraries it uses write (model caches,
    # Celery's files, anything beside the spool's own 0640/0750) is not open to other users.
    os.umask(0o027)
    level = (args.loglevel or settings.log_level).upper()
    configure_logging(level, settings.log_json)
    if not settings.broker.url:
        print("mammocad worker: broker.url is empty: set it (or MAMMOCAD_BROKER__URL=redis://HOST:PORT/0), "
              "or run `mammocad serve`, which starts a private redis-server", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    w = settings.worker
    queues = [q.strip() for q in (args.queues or f"{w.analysis_queue},{w.results_queue}").split(",") if q.strip()]
    if not getattr(args, "config_warnings_logged", False):
        from mammocad.worker.start_advice import log_config_warnings

        log_config_warnings(settings, queues)
    if len(queues) > 1:
        return _supervise(args, queues, level, w.analysis_queue)
    concurrency = args.concurrency or (w.concurrency if queues[0] == w.analysis_queue else RESULTS_CONCURRENCY)
    config_path = resolve_config_path(getattr(args, "config", None))
    from mammocad.metrics import worker_port

    port = worker_port(settings, queues[0], args.metrics_port)
    return _run_one(settings, queues[0], concurrency, level, config_path if config_path.exists() else None, port,
                    _metrics_key(settings, queues[0], args.metrics_port))


def _metrics_key(settings: Settings, queue: str, override: int | None) -> str:
    """The setting or option that chose this worker's metrics port, for a bind error."""
    if override is not None:
        return "--metrics-port"
    if queue == settings.worker.results_queue:
        return "metrics.worker_port"
    return "metrics.worker_port + 1, the analysis worker's"


def _run_one(settings: Settings, queue: str, concurrency: int, level: str,
             config_path: Path | None = None, metrics_port: int = 0, metrics_key: str = "--metrics-port") -> int:
    from mammocad.model.checkpoint import CheckpointError
    from mammocad.worker import model_cache

    # Fail at start, not at the first image, when the weights are missing or not a mammocad
    # checkpoint: config check only sees that the file exists, and an analysis worker that
    # started anyway turned every study into a "CAD failed" report. The header is read
    # without CUDA, so every child of the prefork pool inherits it.
    try:
        model_cache.get_info(settings.worker.weights)
    except CheckpointError as exc:
        print(f"mammocad worker: {exc}; fix worker.weights (or MAMMOCAD_WORKER__WEIGHTS), "
              "or leave it empty for the demo weights", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    if metrics_port:  # before anything imports prometheus_client (multiprocess.py)
        from mammocad.metrics import multiprocess

        multiprocess.prepare(multiprocess.default_dir(metrics_port))
    from mammocad.spool.broker import make_celery
    from mammocad.worker import celery_notices
    from mammocad.worker.tasks import register_tasks

    app = make_celery(settings)
    register_tasks(app, settings, config_path)
    # Import torch and the model code once here, before the prefork pool forks: each child
    # then starts in milliseconds instead of re-importing (seconds). No weights are
    # loaded and no CUDA context is made before the fork (see model_cache.py).
    import mammocad.model.inference  # noqa: F401

    if queue == settings.worker.results_queue:
        from mammocad.results import outputs

        outputs.warm_caches()
        start_sweeper(app, settings)
    from celery.utils.nodenames import host_format

    from mammocad.worker.presence import start_presence

    name = host_format(f"{queue}-{os.getpid()}@%h")
    worker = app.Worker(hostname=name, queues=[queue], concurrency=concurrency,
                        loglevel=level, quiet=True, pool_cls="prefork",
                        # no revokes or worker events are used: skip the start-up sync and chatter
                        without_mingle=True, without_gossip=True)
    celery_notices.route()  # "worker: Warm shutdown" and friends as event=log lines
    # Before the pool forks: the main process, which holds the messages, beats for them.
    beacon = start_presence(settings, name)
    try:
        with _observed(app, settings, metrics_port, metrics_key):
            worker.start()
    except PortError as exc:
        print(f"mammocad worker: cannot start the {queue} worker: {exc.strerror}", file=sys.stderr)
        return 2
    finally:
        beacon.stop()
    return int(worker.exitcode or 0)


@contextmanager
def _observed(app, settings: Settings, metrics_port: int,  # type: ignore[no-untyped-def]
              metrics_key: str = "--metrics-port") -> Iterator[None]:
    """Audit the worker's start and stop; serve its metrics (summed over pool processes).

    Each pool process sends what its audit trails queued before it exits (SIGTERM or a warm
    shutdown alike); the main process closes its trail last, after the pool has stopped."""
    from celery.signals import worker_process_shutdown

    from mammocad.audit import events
    from mammocad.audit.trail import close_all
    from mammocad.metrics import multiprocess
    from mammocad.metrics.endpoints import start_worker_endpoint

    trail = app.mammocad_audit
    server = listen(metrics_key, settings.metrics.host, metrics_port,
                    lambda: start_worker_endpoint(settings, metrics_port)) if metrics_port else None
    # A pool process ends with os._exit (billiard), past atexit: send what its trails queued
    # first (a reload's config-change record, a delivery's), then drop its metrics files.
    worker_process_shutdown.connect(lambda **_: close_all(), weak=False)
    worker_process_shutdown.connect(lambda pid=None, **_: multiprocess.process_exited(pid or os.getpid()),
                                    weak=False)
    trail.emit(events.application_activity(trail.identity, started=True))
    try:
        yield
    finally:
        trail.emit(events.application_activity(trail.identity, started=False))
        trail.close()
        if server is not None:
            server.stop()


#: How often the results worker prunes the spool (node.retention_days).
PRUNE_INTERVAL_S = 3600.0


def start_sweeper(app, settings: Settings) -> threading.Thread:  # type: ignore[no-untyped-def]
    """Requeue outbox items whose delivery task was lost: all due ones now, overdue ones later.

    The same thread prunes the spool hourly (``node.retention_days``; 0 never), starting an
    interval after start-up so a restart loop cannot turn into a deletion loop, and retires the
    dead letters that confirmed ``studies resend`` copies carried, at start and then every
    :data:`~mammocad.worker.outbox_delivery.DEAD_SWEEP_INTERVAL_S`.
    """
    from mammocad.spool.outbox import Outbox
    from mammocad.spool.retention import DAY_S, prune
    from mammocad.spool.superseded import retire_superseded_dead_letters
    from mammocad.worker.outbox_delivery import DEAD_SWEEP_INTERVAL_S, requeue_due

    d = settings.delivery
    interval = min(15.0, max(1.0, d.retry_initial_s))
    grace = 2 * d.network_timeout_s + 30
    spool = str(settings.node.spool_dir)

    retention_s = settings.node.retention_days * DAY_S

    def loop() -> None:
        first, next_prune, next_dead = True, time.monotonic() + PRUNE_INTERVAL_S, time.monotonic()
        while True:
            try:
                requeue_due(app, spool, 0.0 if first else grace)
                first = False
            except Exception:  # the broker may be down for a while: keep trying
                logger.warning("outbox_sweep_failed", exc_info=True)
            if time.monotonic() >= next_dead:  # due an interval later even if this one fails
                next_dead = time.monotonic() + DEAD_SWEEP_INTERVAL_S
                try:
                    retire_superseded_dead_letters(Outbox(spool))  # one deadletter_superseded line each
                except Exception:
                    logger.warning("deadletter_sweep_failed", exc_info=True)
            if retention_s > 0 and time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_INTERVAL_S
                try:
                    prune(spool, retention_s, trail=getattr(app, "mammocad_audit", None),  # A.5.3.8 per study
                          pruned_record_s=settings.node.pruned_record_days * DAY_S)
                except Exception:
                    logger.warning("spool_prune_failed", exc_info=True)
            time.sleep(interval)

    thread = threading.Thread(target=loop, name="outbox-sweeper", daemon=True)
    thread.start()
    return thread


def _supervise(args: argparse.Namespace, queues: list[str], level: str, analysis_queue: str) -> int:
    """Run one child worker per queue; restart a child that dies; stop all on SIGTERM/SIGINT."""
    base = [sys.executable, "-m", "mammocad"] + (["--config", args.config] if args.config else [])

    def spawn(queue: str) -> subprocess.Popen[bytes]:
        cmd = base + ["worker", "--queues", queue, "--loglevel", level, "--config-warnings-logged"]
        if args.metrics_port is not None:  # the results worker takes it, the analysis worker the next one
            cmd += ["--metrics-port", str(args.metrics_port + (queue == analysis_queue) if args.metrics_port else 0)]
        if args.concurrency and queue == analysis_queue:
            cmd += ["--concurrency", str(args.concurrency)]
        return subprocess.Popen(cmd)

    children = {q: spawn(q) for q in queues}
    started = {q: time.monotonic() for q in queues}
    quick_failures = 0
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopping.set()
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping.is_set():
        for q, child in list(children.items()):
            if child.poll() is None or stopping.is_set():
                continue
            if child.returncode != 0 and time.monotonic() - started[q] < 60:
                quick_failures += 1
            if quick_failures >= 3:  # a broken setup, not a crash: restarting will not help
                print(f"mammocad worker: the {q} worker keeps failing at start (exit {child.returncode}); "
                      "see its messages above", file=sys.stderr)
                stop(signal.SIGTERM, None)
                break
            print(f"mammocad worker: the {q} worker exited with {child.returncode}; restarting it",
                  file=sys.stderr)
            time.sleep(1.0)
            children[q], started[q] = spawn(q), time.monotonic()
        stopping.wait(0.5)
    for child in children.values():
        try:
            child.wait(60)
        except subprocess.TimeoutExpired:
            child.kill()
    return 1 if quick_failures >= 3 else 0
