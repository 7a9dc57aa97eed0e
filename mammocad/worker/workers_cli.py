"""``mammocad workers``: the workers that share this spool, alive or silent, and what they hold.

Read from their presence files (``workers/<worker>.json``, :mod:`mammocad.spool.presence`),
so it needs no broker and works on any box that mounts the spool. A silent worker that
still holds tasks is one the node re-queues work for; once the broker keeps none of its
tasks, the node's reconciler removes its file.

Exit status: 0 a live worker for the analysis and the results queue, 1 a queue without
one (said on stderr), 2 bad command line or configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from mammocad.config import ConfigError, Settings, load_settings
from mammocad.spool.layout import Spool
from mammocad.spool.presence import WorkerState, unreadable, worker_states


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "workers", help="list the workers sharing this spool: alive or silent, and the tasks each holds",
        description="Lists the analysis and results workers that share node.spool_dir, from the presence "
                    "file each one rewrites every worker.lease_s / 6 s. A worker silent for longer than "
                    "worker.lease_s is taken for dead: the node queues the tasks it held again. Exit "
                    "status 1 when no live worker serves the analysis or the results queue.")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.set_defaults(handler=workers_list)


def _as_json(state: WorkerState) -> dict[str, object]:
    r = state.record
    return {"worker": r.worker, "queue": state.queue, "host": r.host, "pid": r.pid, "started": r.started,
            "silent_s": round(state.silent_s, 1), "alive": state.alive, "held": len(r.held)}


def _print_table(states: list[WorkerState]) -> None:
    if not states:
        return
    print(f"{'WORKER':<40}  {'QUEUE':<8}  {'STATE':<6}  {'LAST BEAT':>9}  {'HELD':>4}  STARTED")
    for state in states:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.record.started))
        print(f"{state.record.worker:<40}  {state.queue:<8}  {'alive' if state.alive else 'silent':<6}  "
              f"{state.silent_s:>7.0f} s  {len(state.record.held):>4}  {started}")


def workers_list(args: argparse.Namespace) -> int:
    try:
        settings: Settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"mammocad: {exc}", file=sys.stderr)
        return 2
    spool = Spool(settings.node.spool_dir)
    states = worker_states(spool, settings.worker.lease_s)
    for path, why in sorted(unreadable(spool).items()):
        print(f"left out {path}: {why}", file=sys.stderr)
    if args.json:
        for state in states:
            print(json.dumps(_as_json(state)))
    else:
        _print_table(states)
    w = settings.worker
    missing = [q for q in (w.analysis_queue, w.results_queue)
               if not any(s.alive and s.queue == q for s in states)]
    if missing:
        print(f"no live worker for queue {', '.join(missing)} in {settings.node.spool_dir}: start one "
              f"(systemctl start mammocad-worker@… / mammocad-results-worker, or `mammocad worker "
              f"--queues {','.join(missing)}`); workers of an older release write no presence file",
              file=sys.stderr)
        return 1
    return 0
