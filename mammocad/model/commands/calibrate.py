"""``mammocad model calibrate``: choose a checkpoint's thresholds again on your own annotated images.

Writes a new checkpoint (same weights, new thresholds in its header) and prints the
validation table at the new thresholds. The images used here are then validation data:
measure the result with ``mammocad model evaluate`` on *other* images.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mammocad.model.commands.evaluate import parse_options
from mammocad.model.commands.outputs import add_overwrite_argument, check_new_file
from mammocad.model.commands.pooled import add_data_arguments
from mammocad.model.risk import METHODS as RISK_METHODS  # risk.py imports neither numpy nor torch

if TYPE_CHECKING:  # the command imports torch only when it runs, so that --help stays quick
    from mammocad.model.annotations import AnnotatedImage
    from mammocad.model.calibrate import Calibration, RightCounts
    from mammocad.model.inference import Detector
    from mammocad.model.train_config import ThresholdConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "calibrate", help="choose a checkpoint's reporting thresholds on your own annotated images",
        description="Run a checkpoint on annotated validation images and choose its lesion score threshold, "
                    "malignant cut-off and breast operating threshold again (the weights are not changed); "
                    "writes a new checkpoint. Research use only, not for diagnostic use.")
    sets = p.add_mutually_exclusive_group(required=True)
    add_data_arguments(p, data_help="validation data set (repeat to pool several); keep it apart from the images "
                                     "you report metrics on", option_example="split=train for CBIS-DDSM",
                       data_group=sets)
    sets.add_argument("--validation-of", type=Path, metavar="TOML",
                      help="instead of --data: the [[validation]] sets of a training config (each with its own "
                           "format, seed and options; synthetic sets are generated when absent)")
    p.add_argument("--weights", default=None, metavar="PATH", help="checkpoint to calibrate (default: the demo weights)")
    p.add_argument("--out", required=True, type=Path, metavar="PATH",
                   help="the calibrated checkpoint to write (a new file: not --weights, not the shipped weights)")
    add_overwrite_argument(p, "an existing checkpoint file")
    p.add_argument("--risk-method", choices=RISK_METHODS, default=None,
                   help="breast risk rule (default: the checkpoint's own)")
    p.add_argument("--method", choices=("youden", "sensitivity"), default="youden",
                   help="breast operating threshold: Youden's J, or the highest with --target-sensitivity")
    p.add_argument("--target-sensitivity", type=float, default=0.9, metavar="S",
                   help="breast sensitivity to reach with --method sensitivity (default 0.9)")
    p.add_argument("--max-fp-per-image", type=float, default=1.0, metavar="N",
                   help="false positives per image allowed at the lesion score threshold (default 1)")
    cutoff = p.add_mutually_exclusive_group()
    cutoff.add_argument("--keep-class-cutoff", action="store_true",
                        help="keep the checkpoint's malignant cut-off instead of choosing it on these images")
    cutoff.add_argument("--class-method", choices=("accuracy", "sensitivity"), default="accuracy",
                        help="malignant cut-off: the one that classes most found validation lesions right "
                             "(accuracy), or the highest that still calls --class-target-sensitivity of the found "
                             "malignant lesions malignant (sensitivity; steadier where the accuracy curve is flat)")
    p.add_argument("--class-target-sensitivity", type=float, default=None, metavar="S",
                   help="share of found malignant validation lesions to call malignant with --class-method "
                        "sensitivity (default 0.9)")
    p.add_argument("--orientations", type=int, choices=(1, 2, 4, 8), default=None, metavar="N",
                   help="analyse each image in N orientations (1, 2, 4 or 8: flips, then transposes) and average "
                        "the marks; chosen here because the thresholds are chosen on the averaged scores; costs "
                        "N times the analysis time (default: the checkpoint's own, 1 unless set)")
    p.add_argument("--orientation-crop", type=int, default=None, metavar="PX",
                   help="with --orientations: the other orientations analyse only PX-pixel crops around the first "
                        "one's candidates (a multiple of 32, e.g. 384; 0: the whole image; default: the "
                        "checkpoint's own, 0 unless set)")
    p.add_argument("--orientation-crop-min-score", type=float, default=None, metavar="S",
                   help="with --orientation-crop: marks scoring at least S are candidates (default: the "
                        "checkpoint's own, 0.25 unless set)")
    p.add_argument("--version", default=None, help="version label of the new checkpoint (default: unchanged)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from mammocad.logs import configure_logging
    from mammocad.model import calibrate as calibration
    from mammocad.model.checkpoint import CheckpointError, resolve_weights, save_release_checkpoint
    from mammocad.model.devices import DeviceError
    from mammocad.model.evaluate import predict_items
    from mammocad.model.train_config import TrainError

    configure_logging("WARNING")
    try:
        source = resolve_weights(args.weights)
        if args.out.resolve() == source.resolve():
            raise ValueError(f"--out {args.out} is the checkpoint being calibrated: write a new file")
        check_new_file(args.out, overwrite=args.overwrite)
        rules = _rules(args)
        items, where = _items(args)
        det = _detector(args, source)
        predictions = predict_items(det, items, desc="calibrate")
        cal = calibration.calibrate(predictions, risk_method=args.risk_method or det.spec.risk_method, rules=rules,
                                    fallback_operating_threshold=det.spec.operating_threshold,
                                    malignant_threshold=det.info.malignant_threshold if args.keep_class_cutoff else None)
        right = calibration.against_previous(predictions, cal, malignant_threshold=det.info.malignant_threshold,
                                             operating_threshold=det.spec.operating_threshold)
        ckpt = det.checkpoint
        spec, meta = calibration.apply(det.spec, ckpt.metadata, cal, rules=rules, chosen_on=where)
        meta["calibration"] = {
            "command": "mammocad " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "from": str(source),
            "previous": {**dataclasses.asdict(det.info), "version": ckpt.metadata.get("version")},
            "right_here": {k: dataclasses.asdict(v) for k, v in right.items()},
        }
        # Metrics measured at the old thresholds no longer describe this file.
        meta["metrics"] = {"calibration": {k: cal.report[k] for k in ("metrics", "ci95", "counts")}}
        if args.version:
            meta["version"] = args.version
        save_release_checkpoint(args.out, ckpt.model, spec, ckpt.preprocess, meta)
    except (CheckpointError, DeviceError, TrainError, ValueError, FileNotFoundError, KeyError) as exc:
        print(f"mammocad model calibrate: error: {exc}", file=sys.stderr)
        return 2
    print(f"{meta['model_name']} {meta['version']} calibrated on {where}, {len(items)} images"
          + (" — weights trained on synthetic data only" if meta.get("synthetic") else ""))
    _print_outcome(args, rules, cal, right, det)
    print(f"written: {args.out}")
    print("research use only, not for diagnostic use")
    return 0


def _rules(args: argparse.Namespace) -> ThresholdConfig:
    from mammocad.model.train_config import ThresholdConfig

    if args.class_target_sensitivity is not None and args.class_method != "sensitivity":
        raise ValueError("--class-target-sensitivity sets the floor of --class-method sensitivity: give that too")
    # The floor's default lives in ThresholdConfig; the option only overrides it.
    floor = ({} if args.class_target_sensitivity is None
             else {"class_target_sensitivity": args.class_target_sensitivity})
    return ThresholdConfig(method=args.method, target_sensitivity=args.target_sensitivity,
                           max_fp_per_image=args.max_fp_per_image, class_threshold=not args.keep_class_cutoff,
                           class_method=args.class_method, **floor)


def _items(args: argparse.Namespace) -> tuple[list[AnnotatedImage], str]:
    """The validation images, and how to name them in the checkpoint and the printout."""
    from mammocad.model.commands.pooled import load_pooled, load_sources
    from mammocad.model.train_config import load_validation_sources

    if args.validation_of is None:
        items = load_pooled(args.data, args.data_format, parse_options(args.data_option))
        return items, ", ".join(str(d) for d in args.data) + f" ({args.data_format})"
    if args.data_option or args.data_format != "manifest":
        raise ValueError("--data-format and --data-option describe --data; the sets of --validation-of "
                         "carry their own format and options")
    sources = load_validation_sources(args.validation_of)
    where = f"[[validation]] of {args.validation_of}: " + ", ".join(
        f"{s.path.name} ({s.format}, seed {s.seed})" for s in sources)
    return load_sources(sources), where


def _detector(args: argparse.Namespace, source: Path) -> Detector:
    """The checkpoint with this run's test-time orientations: thresholds are chosen on the scores they give."""
    from mammocad.model.inference import Detector

    changes = {field: value for field, value in (
        ("test_time_orientations", args.orientations), ("orientation_crop_size", args.orientation_crop),
        ("orientation_crop_min_score", args.orientation_crop_min_score)) if value is not None}
    det = Detector.load(source, args.device).with_spec(**changes)
    crop_given = args.orientation_crop or args.orientation_crop_min_score is not None
    if det.spec.test_time_orientations == 1 and crop_given:
        raise ValueError("--orientation-crop and --orientation-crop-min-score choose how the other orientations "
                         "are analysed: give --orientations 2, 4 or 8 too")
    return det


def _print_outcome(args: argparse.Namespace, rules: ThresholdConfig, cal: Calibration,
                   right: dict[str, RightCounts], det: Detector) -> None:
    from mammocad.model.evaluate import format_table

    print(format_table(cal.report))
    if args.keep_class_cutoff:
        cutoff_rule = "the checkpoint's"
    elif rules.class_method == "accuracy":
        cutoff_rule = "best lesion accuracy"
    else:
        cutoff_rule = f"the highest calling {rules.class_target_sensitivity:.0%} of found malignant lesions malignant"
    print(f"thresholds: lesion reported at score >= {cal.lesion_score_threshold:.3f}; called malignant at "
          f"p(malignant) >= {cal.malignant_threshold:.3f} ({cutoff_rule}); breast called malignant at risk >= "
          f"{cal.operating_threshold:.3f} (breast risk rule {cal.risk_method!r})")
    lesions, breasts = right["lesions"], right["breasts"]
    other_rule = (f" (chosen for its breast risk rule {det.spec.risk_method!r}, counted here by {cal.risk_method!r})"
                  if det.spec.risk_method != cal.risk_method else "")
    print(f"on these images: {lesions.new} of {lesions.total} found lesions classed right at the new cut-off, "
          f"{lesions.previous} at the checkpoint's {det.info.malignant_threshold:.3f}; {breasts.new} of "
          f"{breasts.total} breasts called right at the new breast threshold, {breasts.previous} at the "
          f"checkpoint's {det.spec.operating_threshold:.3f}{other_rule}. A difference of a few is what other "
          "images could reverse: --keep-class-cutoff keeps the checkpoint's cut-off, --class-method sensitivity "
          "chooses it by a floor on malignant calls")
    print("these figures are on the calibration images themselves: measure on other images with "
          "`mammocad model evaluate`")
