"""CLI for the worker: ``mammocad worker`` and ``mammocad outbox list|retry|drop``.

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
from typing import TYPE_CHECKING, Any

from mammocad.config import EXIT_INVALID_CONFIG, ConfigError, Settings, load_settings, resolve_config_path
from mammocad.listen import PortError, listen
from mammocad.logs import configure_logging
from mammocad.worker import workers_cli

if TYPE_CHECKING:  # imported where used: `mammocad --help` stays light (tests/test_cli_help.py)
    from mammocad.spool.outbox import Outbox, OutboxItem

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

    o = subparsers.add_parser("outbox", help="list or retry results waiting for (or given up by) a destination")
    osub = o.add_subparsers(dest="outbox_command", metavar="COMMAND")
    osub.required = True
    ls = osub.add_parser("list", help="items waiting for delivery (or dead-lettered with --dead)")
    ls.add_argument("--dead", action="store_true", help="list the dead-letter folder instead")
    ls.set_defaults(handler=outbox_list)
    rt = osub.add_parser("retry", help="move dead-letter items back to the outbox and queue their delivery")
    rt.add_argument("item", nargs="?", help="item id, or DESTINATION/ITEM_ID")
    rt.add_argument("--all", action="store_true", help="every dead-letter item")
    rt.set_defaults(handler=outbox_retry)
    dr = osub.add_parser("drop", help="give up on items for good (audited): the study stops waiting for them",
                         description="Deletes outbox or dead-letter items without sending them, and writes an "
                                     "audit record (DICOM Instances Transferred, failed: given up). Use it for "
                                     "results a destination will never take; retention can then prune the study.")
    dr.add_argument("item", nargs="?", help="item id, or DESTINATION/ITEM_ID (see `mammocad outbox list`)")
    dr.add_argument("--dest", metavar="NAME", help="every item (waiting and dead) for this destination")
    dr.set_defaults(handler=outbox_drop)


def _load(args: argparse.Namespace) -> Settings | None:
    try:
        return load_settings(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"mammocad: {exc}", file=sys.stderr)
        return None


# --------------------------------------------------------------------------- worker


def run_worker(args: argparse.Namespace) -> int:
    settings = _load(args)
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


# --------------------------------------------------------------------------- outbox

#: How long ``outbox drop`` and ``outbox retry`` wait for an item's lock: held by a delivery
#: attempt, for at most one send (``delivery.network_timeout_s`` per batch) and its bookkeeping.
ADMIN_LOCK_WAIT_S = 5.0


def outbox_list(args: argparse.Namespace) -> int:
    from mammocad.spool.outbox import Outbox

    settings = _load(args)
    if settings is None:
        return EXIT_INVALID_CONFIG
    unreadable: list[tuple[Path, str]] = []
    items = Outbox(settings.node.spool_dir).items(dead=args.dead, unreadable=unreadable)
    for folder, error in unreadable:  # never delivered, and retention keeps their studies
        print(f"mammocad outbox list: unreadable item {folder} ({error}); the worker skips it: correct its "
              f"item.json (docs/ARCHITECTURE.md, records), or check that the destination holds its objects and "
              f"remove the folder", file=sys.stderr)
    if not items:
        print(("dead-letter folder" if args.dead else "outbox") + (" has no readable item" if unreadable
                                                                   else " is empty"))
        return 1 if unreadable else 0
    now = time.time()
    print(f"{'DESTINATION':<16} {'ITEM':<36} {'STUDY UID':<64} {'ACCESSION':<16} {'AGE_S':>7} {'TRIES':>5} "
          f"{'NEXT_S':>7} {'FILES':>5}  LAST_ERROR")
    for i in items:
        nxt = "-" if args.dead else f"{max(0.0, i.next_attempt - now):.0f}"
        study, accession, _ = i.study()
        print(f"{i.destination:<16} {i.item_id:<36} {study or '?':<64} {accession[:16] or '-':<16} "
              f"{now - i.created:>7.0f} {i.attempts:>5} {nxt:>7} {len(i.pending_files()):>5}  {i.last_error or ''}")
    return 1 if unreadable else 0


def outbox_drop(args: argparse.Namespace) -> int:
    from mammocad.audit import events, oneshot
    from mammocad.spool.outbox import Outbox

    settings = _load(args)
    if settings is None:
        return EXIT_INVALID_CONFIG
    if bool(args.item) == bool(args.dest):
        print("mammocad outbox drop: give one ITEM (or DESTINATION/ITEM) or --dest NAME", file=sys.stderr)
        return 2
    outbox = Outbox(settings.node.spool_dir)
    items = outbox.items() + outbox.items(dead=True)
    if args.dest:
        items = [i for i in items if i.destination == args.dest]
    else:
        dest, _, item_id = args.item.rpartition("/")
        items = [i for i in items if i.item_id == item_id and (not dest or i.destination == dest)]
    if not items:
        print(f"mammocad outbox drop: no item {args.item or 'for ' + args.dest!r}; see `mammocad outbox list` "
              "and `mammocad outbox list --dead`", file=sys.stderr)
        return 1
    try:
        oneshot.check(settings, "nothing was dropped")
    except oneshot.AuditUnavailable as exc:
        print(f"mammocad outbox drop: {exc}", file=sys.stderr)
        return 1
    for listed in items:
        with outbox.locked(listed, wait_s=ADMIN_LOCK_WAIT_S) as got:  # not while a delivery attempt is sending it
            # Read again under the lock: the attempt we waited for may have had files confirmed,
            # moved the item to the dead-letter folder (the lock is the folder's, it moved too)
            # or delivered it.
            item = (outbox.get(listed.destination, listed.item_id)
                    or outbox.get(listed.destination, listed.item_id, dead=True)) if got else None
            if item is None:
                why = "a delivery attempt holds it; try again" if not got else "it was delivered or dropped meanwhile"
                print(f"skipped {listed.destination}/{listed.item_id}: {why}", file=sys.stderr)
                continue
            study, _, _ = item.study()
            never = item.pending_files()
            try:  # audited before the files go: an item given up leaves a record or stays
                _audit_drop(settings, item, events.study_transfers(never))
            except oneshot.AuditUnavailable as exc:
                print(f"mammocad outbox drop: {exc}", file=sys.stderr)
                return 1
            outbox.drop(item, study)
        print(f"dropped {item.destination}/{item.item_id} (study {study or '?'}, {len(never)} "
              f"objects never confirmed)")
    return 0


def _peer(settings: Settings, destination: str) -> Any:
    from mammocad.audit import Peer

    try:
        dest = settings.destination(destination)
    except KeyError:  # removed from the configuration since
        return Peer(destination, "")
    return Peer(dest.ae_title, dest.host)


def _audit_drop(settings: Settings, item: Any, transfers: list[Any]) -> None:
    """DICOM Instances Transferred (serious failure), the admin as requestor: these results
    (the item's objects the destination never confirmed) will never reach it."""
    from mammocad.audit import events, oneshot

    def messages(me: Any) -> list[Any]:
        user = events.os_user()
        why = f"given up by {user.user_id} with `mammocad outbox drop`; last error: {item.last_error or 'none'}"
        return [events.instances_sent(me, _peer(settings, item.destination), transfers, error=why,
                                      requested_by=user)]

    oneshot.record(settings, "mammocad-outbox", messages)


def _audit_retry(settings: Settings, items: list[Any]) -> None:
    """Begin Transferring DICOM Instances, the admin as requestor: dead letters queued again."""
    from mammocad.audit import events, oneshot

    def messages(me: Any) -> list[Any]:
        user = events.os_user()
        return [events.transfer_requested(me, user, _peer(settings, item.destination),
                                          events.study_transfers(item.pending_files()),
                                          f"dead letter {item.item_id} queued again by {user.user_id} "
                                          f"with `mammocad outbox retry`; last error: {item.last_error or 'none'}")
                for item in items]

    oneshot.record(settings, "mammocad-outbox", messages)


def outbox_retry(args: argparse.Namespace) -> int:
    """Move dead letters back to the outbox, each under its lock (:func:`_retry_one`), and queue them."""
    from mammocad.audit import oneshot
    from mammocad.spool.outbox import Outbox

    settings = _load(args)
    if settings is None:
        return EXIT_INVALID_CONFIG
    if bool(args.item) == bool(args.all):
        print("mammocad outbox retry: give one ITEM (or DESTINATION/ITEM) or --all", file=sys.stderr)
        return 2
    outbox = Outbox(settings.node.spool_dir)
    dead = outbox.items(dead=True)
    if args.item:
        dest, _, item_id = args.item.rpartition("/")
        dead = [i for i in dead if i.item_id == item_id and (not dest or i.destination == dest)]
        if not dead:
            print(f"mammocad outbox retry: no dead-letter item {args.item!r}; see `mammocad outbox list --dead`",
                  file=sys.stderr)
            return 1
    dead, skipped = _not_waiting(outbox, dead)
    try:
        if dead:
            oneshot.check(settings, "no dead letter was queued again")
    except oneshot.AuditUnavailable as exc:
        print(f"mammocad outbox retry: {exc}", file=sys.stderr)
        return 1
    app = _app_or_none(settings)
    requeued = 0
    for listed in dead:
        try:
            revived = _retry_one(settings, outbox, listed, app is None)
        except oneshot.AuditUnavailable as exc:
            print(f"mammocad outbox retry: {exc}", file=sys.stderr)
            return 1
        if revived is None:
            skipped += 1
            continue
        if app is not None:  # after the lock: the delivery task takes it
            from mammocad.worker.outbox_delivery import schedule_delivery

            schedule_delivery(app, str(settings.node.spool_dir), revived)
        requeued += 1
        print(f"requeued {revived.destination}/{revived.item_id} ({len(revived.pending_files())} files)")
    if app is None and requeued:
        print("no broker.url configured here: the running worker will send these within "
              f"{min(15.0, max(1.0, settings.delivery.retry_initial_s)):.0f} s")
    return 1 if skipped else 0


def _retry_one(settings: Settings, outbox: Outbox, listed: OutboxItem, unscheduled: bool) -> OutboxItem | None:
    """Audit and revive one dead letter under its lock; None (said on stderr) when it is skipped.

    The lock is the one a delivery attempt holds (``Outbox.locked``, on the item's folder, which
    moves with it): an attempt that has just dead-lettered the item still decides whether
    confirmed copies superseded it, then logs and audits it dead. Revived in that window, the
    item was logged and audited dead while it was back in the outbox (or the attempt's
    completion found its folder gone). Read again under the lock, as the attempt may have
    completed it meanwhile. Audited before it goes back: a running worker sends it at once.
    With ``unscheduled`` (no broker here) its token is emptied, so the worker's sweeper sends it.
    """
    with outbox.locked(listed, wait_s=ADMIN_LOCK_WAIT_S) as got:
        item = outbox.get(listed.destination, listed.item_id, dead=True) if got else None
        if item is None or outbox.get(listed.destination, listed.item_id) is not None:
            why = ("a delivery attempt holds it; try again" if not got and listed.path.is_dir() else
                   "an item with this id waits in the outbox (put back by another `outbox retry`?); see "
                   "`mammocad outbox list`" if outbox.get(listed.destination, listed.item_id) is not None else
                   "it left the dead letters meanwhile (dropped, or completed as superseded by a confirmed "
                   "`studies resend` copy)")
            print(f"skipped {listed.destination}/{listed.item_id}: {why}", file=sys.stderr)
            return None
        _audit_retry(settings, [item])
        revived = outbox.revive(item.destination, item.item_id)
        if unscheduled:  # an empty token tells the running worker's sweeper to send it now
            revived.token = ""
            outbox.save(revived)
    return revived


def _not_waiting(outbox: Any, dead: list[Any]) -> tuple[list[Any], int]:
    """The dead letters that can go back, and how many were left because an item with the same
    id waits in the outbox (said on stderr).

    That outbox copy is the live one: a delivery chain owns it (its token), and the dead
    copy is an older state of the same report (the same objects, fewer or more of them
    confirmed). Replacing either could lose objects never confirmed; queueing both would
    send the report twice. So the dead letter stays as it is, for the admin to drop or
    retry once the live copy is delivered.
    """
    retry, skipped = [], 0
    for item in dead:
        waiting = outbox.get(item.destination, item.item_id)
        if waiting is None:
            retry.append(item)
            continue
        skipped += 1
        sent = {p.stem for p in waiting.files()}
        extra = [p for p in item.pending_files() if p.stem not in sent]
        more = (f"; the dead letter holds {len(extra)} objects the outbox item does not, `mammocad outbox retry "
                f"{item.destination}/{item.item_id}` sends them once that item is delivered") if extra else (
                f"; once it is delivered, `mammocad outbox drop {item.destination}/{item.item_id}` removes "
                "the dead letter")
        print(f"skipped {item.destination}/{item.item_id}: an item with this id is waiting in the outbox "
              f"({len(waiting.pending_files())} objects to send, {waiting.attempts} attempts): it is the live "
              f"copy and the worker delivers it; the dead letter was left as it is, not queued, so the report "
              f"is not sent twice{more}", file=sys.stderr)
    return retry, skipped


def _app_or_none(settings: Settings):  # type: ignore[no-untyped-def]
    if not settings.broker.url:
        return None
    from mammocad.spool.broker import make_celery

    return make_celery(settings)

