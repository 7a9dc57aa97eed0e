"""CLI for the node: ``mammocad node`` (SCP only) and ``mammocad serve`` (everything)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from mammocad.config import EXIT_INVALID_CONFIG, ConfigError, Settings, load_settings, resolve_config_path
from mammocad.logs import configure_logging, log_event, safe_error

if TYPE_CHECKING:
    from mammocad.spool.retention import PruneReport

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    node = subparsers.add_parser(
        "node", help="run the DICOM node alone (needs broker.url)",
        description="Receive images by C-STORE into the spool and queue them on broker.url. "
                    "Use `mammocad serve` to run broker, node and worker together.")
    _common(node)
    node.set_defaults(handler=run_node)
    serve = subparsers.add_parser(
        "serve", help="run broker (private redis), node and one worker in the foreground",
        description="One foreground program: a private redis-server when broker.url is empty, "
                    "the DICOM node and one Celery worker. Ctrl-C stops everything cleanly.")
    _common(serve)
    serve.set_defaults(handler=run_serve)
    spool = subparsers.add_parser("spool", help="spool maintenance: prune delivered studies")
    sub = spool.add_subparsers(dest="spool_command", required=True, metavar="COMMAND")
    prune = sub.add_parser(
        "prune", help="remove delivered studies and set-aside objects older than node.retention_days",
        description="Removes study folders whose results every destination confirmed and that did not "
                    "change for the retention period, and set-aside objects as old. Studies with results "
                    "still in the outbox or the dead-letter folder, or never finalised, are kept and listed. "
                    "The results worker runs this hourly.")
    prune.add_argument("--days", type=float, default=None, help="age in days (default: node.retention_days)")
    prune.add_argument("--dry-run", action="store_true", help="list what would go; delete nothing")
    prune.set_defaults(handler=run_prune)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="listen on this port instead of node.port")
    parser.add_argument("--ae-title", help="answer to this AE title instead of node.ae_title")


def _settings(args: argparse.Namespace) -> tuple[Settings, Path | None]:
    """The settings with ``--port`` / ``--ae-title`` applied. They go through the loader,
    not an assignment afterwards, so a bad value is refused naming the option, in the
    same words as a bad value in the file."""
    path = resolve_config_path(args.config)
    given = (("node.port", "--port", args.port), ("node.ae_title", "--ae-title", args.ae_title))
    settings = load_settings(args.config, options={key: (flag, value) for key, flag, value in given
                                                   if value is not None})
    configure_logging(settings.log_level, settings.log_json)
    return settings, (path if path.exists() else None)


def _fail(message: str) -> int:
    """A refused argument or a node that cannot start (port in use, spool held): 2, as argparse."""
    print(f"mammocad: error: {message}", file=sys.stderr)
    return 2


def _invalid_config(message: str) -> int:
    """The configuration cannot run this command: the status every command gives it."""
    print(f"mammocad: error: {message}", file=sys.stderr)
    return EXIT_INVALID_CONFIG


def run_prune(args: argparse.Namespace) -> int:
    from mammocad.spool.retention import DAY_S, PruneReport, prune

    try:
        settings = load_settings(args.config)
    except (ConfigError, ValueError) as exc:
        return _invalid_config(str(exc))
    days = settings.node.retention_days if args.days is None else args.days
    if days <= 0:
        return _fail("retention is 0 days (keep everything): give --days N to prune anyway")
    configure_logging(settings.log_level, settings.log_json)
    from mammocad.audit import AuditTrail
    from mammocad.audit.oneshot import AuditUnavailable, check

    trail = None
    if not args.dry_run:
        # Deleting studies is audited (DICOM Study Deleted) like the results worker's hourly
        # prune; an admin who cannot write the audit trail deletes nothing.
        try:
            check(settings, "nothing was removed")
        except AuditUnavailable as exc:  # an operation that failed, not a refused argument: 1 (docs/ADMIN.md)
            print(f"mammocad: error: {exc}", file=sys.stderr)
            return 1
        trail = AuditTrail.from_settings(settings.audit, settings.node.ae_title, program="mammocad-prune")
    report = PruneReport()  # filled as the pass goes: what it removed before a stop is still said
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        prune(settings.node.spool_dir, days * DAY_S, dry_run=args.dry_run, trail=trail,
              pruned_record_s=settings.node.pruned_record_days * DAY_S, report=report)
    except OSError as exc:  # an operation that failed: 1, one line instead of a traceback
        _done_before_stop(report, args.dry_run)
        return _prune_failed(settings.node.spool_dir, exc)
    except KeyboardInterrupt as exc:
        _done_before_stop(report, args.dry_run)
        how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"mammocad: error: {how}; run `mammocad spool prune` again: the next pass finishes or puts "
              "back the folder this one was working on (spool/tmp/)", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if trail is not None:
            trail.close()  # the Study Deleted records of what went: sent before the command ends
    if report.skipped:  # not a failure: the pass that holds the lock is pruning this spool now
        print(f"another prune is running on {settings.node.spool_dir} (the results worker's hourly pass or "
              "another `mammocad spool prune`): nothing was done; run this again once it has finished")
        return 0
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(report.studies)} studies and {len(report.other)} set-aside folders older than "
          f"{days:g} days ({report.bytes / 1e6:.1f} MB) from {settings.node.spool_dir}")
    if report.records:
        print(f"{verb} {len(report.records)} records of pruned studies older than "
              f"{settings.node.pruned_record_days:g} days (spool/pruned/)")
    for uid, action in report.recovered:
        print(f"{'would finish' if args.dry_run else 'finished'} an interrupted prune of {uid}: "
              f"{'would be ' if args.dry_run else ''}{action}")
    for uid, reason in sorted(report.kept.items()):
        print(f"kept {uid}: {reason}")
    if report.aged_by_mtime:  # their age is not the recorded one: a restore or `touch` moves it
        print(f"{len(report.aged_by_mtime)} studies aged by their files' mtimes: no record of theirs holds a time "
              "that can be believed (not finalised yet, records from an older release, or dated in the future)")
    for uid, records in sorted(report.future_dated.items()):  # a clock was wrong when they were written
        print(f"dated in the future (not believed) {uid}: {', '.join(records) or 'its files'}; check the hosts' "
              "clocks (NTP)")
    return _prune_incomplete(settings.node.spool_dir, report.failed)


class Terminated(KeyboardInterrupt):
    """SIGTERM during `spool prune`: stops the pass as Ctrl-C does (what went is listed, the
    audit records are sent), where Python's default ended the process on the spot, saying
    nothing of what it had removed and leaving its queued audit records unsent."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _done_before_stop(report: PruneReport, dry_run: bool) -> None:
    """List what a pass that stopped midway had removed already (one UID a line): the admin
    must not take a stopped pass for one that removed nothing."""
    verb = "would remove" if dry_run else "removed"
    if not (report.studies or report.other or report.records or report.recovered or report.failed):
        return
    print(f"{verb} before it stopped: {len(report.studies)} studies and {len(report.other)} set-aside folders "
          f"({report.bytes / 1e6:.1f} MB), {len(report.records)} records of pruned studies")
    for uid in report.studies:
        print(f"{verb} study {uid}")
    for uid in report.other:
        print(f"{verb} set-aside folder {uid}")
    for uid in report.records:
        print(f"{verb} the record of pruned study {uid}")
    for uid, action in report.recovered:
        print(f"{'would finish' if dry_run else 'finished'} an interrupted prune of {uid}: "
              f"{'would be ' if dry_run else ''}{action}")
    for uid, error in sorted(report.failed.items()):
        print(f"mammocad: error: could not prune {uid}: {error}", file=sys.stderr)


def _prune_incomplete(spool_dir: Path, failed: dict[str, str]) -> int:
    """0, or 1 with a line per folder the pass could not remove or put back (the others went)."""
    for uid, error in sorted(failed.items()):
        print(f"mammocad: error: could not prune {uid}: {error}", file=sys.stderr)
    if failed:
        print(f"mammocad: error: {len(failed)} folder(s) of {spool_dir} were left as they were, nothing lost (a "
              "half-moved one waits in spool/tmp/ and the next pass settles it); fix the cause named above "
              "(the disk, or the permissions of that path: run as the service user that owns the spool), then "
              "run `mammocad spool prune` again", file=sys.stderr)
    return 1 if failed else 0


def _prune_failed(spool_dir: Path, exc: OSError) -> int:
    """The spool (``tmp/``, ``prune.lock``, a study folder) cannot be written by this account.

    Typically an admin ran the command as themselves on a spool owned by the service account,
    or the spool is read-only: say which path and what to do rather than show a traceback.
    """
    path = exc.filename if exc.filename is not None else spool_dir
    hint = (f"run `mammocad spool prune` as the service user that owns {spool_dir} (the node's and the "
            f"workers' account), or check the permissions of {path}")
    log_event(logger, "prune_failed", logging.ERROR, path=str(path), error=safe_error(exc), hint=hint)
    print(f"mammocad: error: cannot prune {spool_dir}: {exc.strerror or exc}: {path}; {hint}", file=sys.stderr)
    return 1


def run_node(args: argparse.Namespace) -> int:
    try:
        settings, path = _settings(args)
    except (ConfigError, ValueError) as exc:
        return _invalid_config(str(exc))
    if not settings.broker.url:
        return _invalid_config("broker.url is empty: `mammocad node` queues on an existing Redis; set broker.url "
                               "(or MAMMOCAD_BROKER__URL=redis://HOST:PORT/0), or run `mammocad serve`")
    from mammocad.listen import PortError
    from mammocad.node.scp import Node
    from mammocad.spool.layout import InstanceLock, SpoolInUse

    os.umask(0o027)
    try:
        lock = InstanceLock(settings.node.spool_dir).acquire()
    except SpoolInUse as exc:
        return _fail(str(exc))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        node = Node(settings, path)
        node.start()
    except PortError as exc:
        return _fail(f"cannot start the node: {exc.strerror}")
    except OSError as exc:
        return _fail(f"cannot start the node on {settings.node.host}:{settings.node.port} with spool "
                     f"{settings.node.spool_dir}: {exc}")
    try:
        stop.wait()
    finally:
        node.stop()
        lock.release()
    return 0


def run_serve(args: argparse.Namespace) -> int:
    try:
        settings, path = _settings(args)
    except (ConfigError, ValueError) as exc:
        return _invalid_config(str(exc))
    from mammocad.listen import PortError
    from mammocad.node.serve import ServeError, serve

    try:
        return serve(settings, path)
    except ServeError as exc:
        return _fail(str(exc))
    except PortError as exc:
        return _fail(f"cannot start the node: {exc.strerror}")
    except OSError as exc:
        return _fail(f"cannot start: {exc}")
