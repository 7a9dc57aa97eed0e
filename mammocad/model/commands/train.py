"""``mammocad model train``: train the detector from a TOML config (see ``mammocad.model.train``)."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mammocad.model.commands.outputs import add_overwrite_argument, check_run_folder, shipped
from mammocad.model.commands.pooled import DATA_FORMATS

if TYPE_CHECKING:
    from mammocad.model.train_config import TrainConfig

#: Exit status when training stopped because the loss was not finite (docs/ADMIN.md, "Exit
#: status"). Not 2: the command line and the config were accepted, and the same command with
#: a lower train.lr (or train.amp off) can succeed, which a script must be able to tell from
#: a refused argument.
EXIT_LOSS_NOT_FINITE = 3


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "train", help="train the detector from a TOML config (research use, not a diagnosis)",
        description="Train the Faster R-CNN calcification detector. The config names the data, the "
                    "detector and preprocessing specs, the optimiser and tile sampling; the run ends "
                    "with thresholds chosen on validation data, held-out metrics and model.pt. "
                    f"Exit status: 0 done, 2 refused (arguments, config, data), {EXIT_LOSS_NOT_FINITE} the loss was "
                    "not finite (lower train.lr, or train.amp = false), 130/143 interrupted (resumable).")
    p.add_argument("--config", dest="train_config", required=True, metavar="TOML",
                   help="training config, e.g. config/train-demo.toml")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="run folder (created; default runs/<config name>): train.csv, loss.png, state.pt, model.pt, "
                        "metrics.json, roc.png, froc.png, config.json")
    p.add_argument("--resume", type=Path, metavar="STATE",
                   help="continue from a run's state.pt (written every train.checkpoint_every steps)")
    add_overwrite_argument(p, "a previous run (and the config's release_path file, if it names one)")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument("--steps", type=int, help="override train.steps (e.g. to finish early from --resume)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--data", type=Path, metavar="PATH", help="train on this data instead of the config's")
    p.add_argument("--data-format", default="manifest",
                   choices=DATA_FORMATS,
                   help="format of --data (default: manifest)")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                   help="reader option for --data, repeatable (e.g. split=train for CBIS-DDSM)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes that draw missing synthetic sets and decode the training images "
                        "(default 1; the same data whatever N; a GPU machine wants about its cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from mammocad.logs import configure_logging
    from mammocad.model import train
    from mammocad.model.devices import DeviceError, configure_cpu_threads, resolve_device
    from mammocad.model.sources import DataSource
    from mammocad.model.train_config import check_inputs

    configure_logging()
    for flag, value in (("--workers", args.workers), ("--steps", args.steps)):
        if value is not None and value < 1:
            print(f"mammocad model train: error: {flag} must be at least 1, got {value}", file=sys.stderr)
            return 2
    installed, on_term = _raise_on_sigterm()
    cfg = out = None
    try:
        cfg = train.load_config(Path(args.train_config))
        if args.seed is not None:
            cfg = dataclasses.replace(cfg, seed=args.seed, raw={**cfg.raw, "seed": args.seed})
        if args.data is not None:
            if not args.data.exists():
                raise FileNotFoundError(f"--data {args.data} does not exist; give the data set's folder or file")
            # Your own data: the config's synthetic test and validation sets mean nothing for it
            # and the packaged demo weights must not be overwritten; evaluate with
            # `mammocad model evaluate`.
            from mammocad.model.commands.evaluate import parse_options

            src = DataSource(format=args.data_format, path=args.data, options=parse_options(args.data_option))
            raw = {k: v for k, v in cfg.raw.items() if k not in ("test", "validation", "release_path")}
            cfg = dataclasses.replace(cfg, data=(src,), test=None, validation=(), release_path=None,
                                      raw={**raw, "data": src.to_dict()})
        check_inputs(cfg, args.train_config, args.resume)
        device = resolve_device(args.device)
        if device == "cpu":
            configure_cpu_threads()
        out = args.out or Path("runs") / cfg.name
        _check_outputs(cfg, out, args)
        command = "mammocad " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else ""
        path = train.run(cfg, out, device=device, resume=args.resume, steps=args.steps,
                         command=command or f"mammocad model train --config {args.train_config}",
                         progress=not args.no_progress, workers=args.workers)
    except train.LossNotFiniteError as exc:
        print(f"mammocad model train: error: {exc}", file=sys.stderr)
        return EXIT_LOSS_NOT_FINITE
    except (train.TrainError, DeviceError, ValueError, FileNotFoundError) as exc:
        print(f"mammocad model train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"mammocad model train: interrupted; {_how_to_go_on(cfg, out, args.train_config)}", file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
    finally:
        if installed:
            signal.signal(signal.SIGTERM, on_term)
    print(f"checkpoint written: {path}")
    print("research use only, not for diagnostic use" + (" (trained on synthetic data only)" if cfg.synthetic else ""))
    return 0


def _check_outputs(cfg: TrainConfig, out: Path, args: argparse.Namespace) -> None:
    """Refuse to replace a previous run, or the config's release file, without ``--overwrite``.

    A folder holding only config.json is a run that stopped before its first step: the same
    command may start it again. (Refused data leaves no folder: the run writes config.json
    once its data and model are read.) Resuming into the folder of the state resumed
    continues that run, so it is not a previous run there.
    """
    from mammocad.model import train

    if shipped(out):
        raise ValueError(f"--out {out} is in the package's weights folder: give a run folder such as runs/{cfg.name}")
    resuming_here = args.resume is not None and args.resume.resolve().parent == out.resolve()
    check_run_folder(out, (train.MODEL_NAME, train.STATE_NAME, train.CSV_NAME, "metrics.json"),
                     overwrite=args.overwrite or resuming_here)
    if cfg.release_path is not None and cfg.release_path.exists() and not args.overwrite:
        raise ValueError(f"the config's release_path {cfg.release_path} exists (for a demo config: the shipped "
                         "weights): pass --overwrite to replace it when the run ends, or drop release_path from "
                         "the config (the run's own model.pt is written either way)")


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's or ``kill``'s stop) taken like Ctrl-C, so the run stops the same way."""


def _raise_on_sigterm() -> tuple[bool, Any]:
    """Make SIGTERM raise :class:`_Terminated`; returns whether it did and the handler to put back.

    Why: by default SIGTERM ends the process at once and says nothing; the run's state.pt is
    whole either way (written to a temporary file, then renamed), but the user was not told
    that it exists nor how to continue from it.
    """
    def stop(signum: int, frame: object) -> None:
        raise _Terminated

    try:
        return True, signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave the signal alone
        return False, None


def _how_to_go_on(cfg: TrainConfig | None, out: Path | None, config: str) -> str:
    """The command that continues an interrupted run from its last state.pt, or why there is none."""
    from mammocad.model import train

    if cfg is None or out is None:
        return "nothing was trained: run the command again"
    state = out / train.STATE_NAME
    if not state.is_file():
        again = " with --overwrite" if (out / train.CSV_NAME).exists() else ""
        return (f"no checkpoint yet (one is written every {cfg.optim.checkpoint_every} steps): nothing to resume; "
                f"run the same command again{again}")
    words = _without(sys.argv[1:] if sys.argv[1:2] == ["model"] else ["model", "train", "--config", config],
                     flags=("--out", "--resume"), switches=("--overwrite",))
    command = " ".join(shlex.quote(w) for w in ["mammocad", *words, "--out", str(out), "--resume", str(state)])
    return (f"the last checkpoint is {state} (written every {cfg.optim.checkpoint_every} steps); "
            f"continue with: {command}")


def _without(words: list[str], *, flags: tuple[str, ...], switches: tuple[str, ...]) -> list[str]:
    """``words`` less each of ``flags`` with its value (``--out X`` or ``--out=X``) and each of ``switches``."""
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in flags:
            skip = True
        elif word not in switches and not word.startswith(tuple(f + "=" for f in flags)):
            kept.append(word)
    return kept
