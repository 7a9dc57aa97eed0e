"""``mammocad model evaluate``: run a checkpoint on annotated data and report every metric.

Prints a table with bootstrap 95% intervals and writes ``metrics.json``, ``roc.png`` and
``froc.png`` into ``--out``. Definitions: ``mammocad.model.metrics``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mammocad.model.commands.outputs import add_overwrite_argument, check_run_folder
from mammocad.model.commands.pooled import add_data_arguments

#: What ``evaluate`` writes into ``--out``.
OUTPUT_NAMES = ("metrics.json", "roc.png", "froc.png")


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "evaluate", help="measure a checkpoint on annotated images (table, metrics.json, ROC/FROC plots)",
        description="Run the detector on every image of an annotated data set and compute lesion-level, "
                    "breast-level and FROC metrics with bootstrap 95 % intervals (research use only).")
    add_data_arguments(p, data_help="data set folder or manifest.json (or the folder of a public data set, see "
                                     "--data-format); repeat to pool several sets into one report (their breasts "
                                     "are kept apart)",
                       option_example="split=test for CBIS-DDSM, calc_mode=clusters for INbreast")
    p.add_argument("--weights", default=None, metavar="PATH", help="checkpoint (default: the demo weights)")
    p.add_argument("--out", type=Path, default=Path("runs/evaluate"), metavar="DIR",
                   help="folder for metrics.json, roc.png and froc.png (created; default runs/evaluate)")
    add_overwrite_argument(p, "an earlier evaluation's metrics.json and plots")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--rule", choices=("centre", "iou"), default="centre",
                   help="when a lesion counts as detected: prediction centre inside it, or IoU >= 0.3")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples for the 95%% intervals (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from mammocad.logs import configure_logging
    from mammocad.model.checkpoint import CheckpointError
    from mammocad.model.commands.pooled import load_pooled
    from mammocad.model.devices import DeviceError
    from mammocad.model.evaluate import (
        DEFAULT_LESION_SCORE_THRESHOLD,
        compute_report,
        format_table,
        predict_items,
    )
    from mammocad.model.inference import Detector
    from mammocad.model.plots import froc_png, roc_png

    configure_logging("WARNING")
    try:
        check_run_folder(args.out, OUTPUT_NAMES, overwrite=args.overwrite)
        if args.bootstrap < 0:
            raise ValueError(f"--bootstrap must be 0 or more, got {args.bootstrap}")
        items = load_pooled(args.data, args.data_format, parse_options(args.data_option))
        det = Detector.load(args.weights, args.device)
        ev = predict_items(det, items)
    except (CheckpointError, DeviceError, ValueError, FileNotFoundError, KeyError) as exc:
        print(f"mammocad model evaluate: error: {exc}", file=sys.stderr)
        return 2
    lesion_t = float(det.metadata.get("lesion_score_threshold", DEFAULT_LESION_SCORE_THRESHOLD))
    report = compute_report(ev, breast_threshold=det.spec.operating_threshold, lesion_threshold=lesion_t,
                            risk_method=det.spec.risk_method, n_bootstrap=args.bootstrap, seed=args.seed,
                            rule=args.rule)
    report["definitions"]["malignant_threshold"] = det.info.malignant_threshold
    report["model"] = {"name": det.model_name, "version": det.model_version, "synthetic": det.synthetic_weights,
                       "weights": str(det.weights_path), "test_time_orientations": det.spec.test_time_orientations,
                       "orientation_crop_size": det.spec.orientation_crop_size,
                       "orientation_crop_min_score": det.spec.orientation_crop_min_score,
                       "orientation_crop_max_crops": det.spec.orientation_crop_max_crops}
    where = ", ".join(str(d) for d in args.data)
    report["data"] = {"path": where, "format": args.data_format, "options": parse_options(args.data_option)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(report, indent=1))
    roc_png(report, args.out / "roc.png", title=f"Breast-level ROC — {det.model_name} {det.model_version}")
    froc_png(report, args.out / "froc.png", title=f"Lesion FROC — {det.model_name} {det.model_version}")
    print(f"{det.model_name} {det.model_version} on {where} ({args.data_format})"
          + (" — weights trained on synthetic data only" if det.synthetic_weights else ""))
    print(format_table(report))
    chosen_on = det.metadata.get("thresholds", {}).get("chosen_on", "validation")
    when = "at training" if chosen_on == "validation" else "by `mammocad model calibrate`"
    print(f"thresholds (chosen on validation data {when}): lesion reported at score >= {lesion_t:.3f}; "
          f"called malignant at p(malignant) >= {det.info.malignant_threshold:.3f}; breast called malignant at "
          f"risk >= {det.spec.operating_threshold:.3f} (breast risk rule {det.spec.risk_method!r})")
    if det.spec.test_time_orientations > 1:
        scope = (f"the others on {det.spec.orientation_crop_size}-px crops around marks scoring at least "
                 f"{det.spec.orientation_crop_min_score:g}" if det.spec.orientation_crop_size else "each the whole image")
        print(f"each image analysed in {det.spec.test_time_orientations} orientations ({scope}), a mark's score its "
              "mean over them (the checkpoint's test_time_orientations)")
    print(f"written: {args.out / 'metrics.json'}, {args.out / 'roc.png'}, {args.out / 'froc.png'}")
    print("research use only, not for diagnostic use")
    return 0


def parse_options(pairs: list[str]) -> dict[str, object]:
    """``["split=test", "all_findings=true"]`` → ``{"split": "test", "all_findings": True}``."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--data-option must be KEY=VALUE, got {pair!r}")
        low = value.lower()
        out[key] = True if low == "true" else False if low == "false" else _number(value)
    return out


def _number(value: str) -> object:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value
