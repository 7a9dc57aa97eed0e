"""``mammocad model average``: one checkpoint whose weights are the mean of several fine-tunes'.

See ``mammocad.model.averaging`` for why and when; calibrate the result before using it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mammocad.model.commands.outputs import add_overwrite_argument, check_new_file


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "average", help="average the weights of fine-tunes of one checkpoint (then calibrate the result)",
        description="Write a checkpoint whose weights are the uniform mean of the given checkpoints' (a 'model "
                    "soup'): fine-tunes of one checkpoint with the same detector spec and preprocessing, e.g. one "
                    "training config run with two seeds. The thresholds are the first checkpoint's until "
                    "`mammocad model calibrate` chooses them again. Research use only, not for diagnostic use.")
    p.add_argument("--weights", required=True, action="append", type=Path, metavar="PATH",
                   help="a checkpoint to average (give two or more)")
    p.add_argument("--out", required=True, type=Path, metavar="PATH",
                   help="the averaged checkpoint to write (a new file: not one of --weights, not the shipped weights)")
    add_overwrite_argument(p, "an existing checkpoint file")
    p.add_argument("--version", default=None, help="version label of the new checkpoint (default: the first's)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from mammocad.logs import configure_logging
    from mammocad.model.averaging import average_checkpoints
    from mammocad.model.checkpoint import CheckpointError, save_release_checkpoint

    configure_logging("WARNING")
    try:
        if any(args.out.resolve() == w.resolve() for w in args.weights):
            raise ValueError(f"--out {args.out} is one of the checkpoints being averaged: write a new file")
        check_new_file(args.out, overwrite=args.overwrite)
        averaged = average_checkpoints(args.weights)
        meta = averaged.metadata
        meta["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if args.version:
            meta["version"] = args.version
        save_release_checkpoint(args.out, averaged.model, averaged.spec, averaged.preprocess, meta)
    except (CheckpointError, ValueError) as exc:
        print(f"mammocad model average: error: {exc}", file=sys.stderr)
        return 2
    print(f"{meta['model_name']} {meta['version']}: the mean of {len(args.weights)} checkpoints' weights"
          + (" — trained on synthetic data only" if meta["synthetic"] else ""))
    print(f"written: {args.out}")
    print(f"its thresholds are {args.weights[0]}'s: choose them for the average with `mammocad model calibrate "
          f"--weights {args.out} ...` before analysing with it")
    print("research use only, not for diagnostic use")
    return 0
