"""``mammocad model synth``: write a synthetic screening data set (DICOM + manifest.json).

The images are synthetic (patients "SYNTH^0001"...), for demo weights, tests and
pipeline checks only; nothing trained on them is fit for diagnosis.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mammocad import NOT_FOR_DIAGNOSIS


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "synth", help="generate synthetic 4-view mammography studies with calcification boxes",
        description="Generate synthetic screening studies (R/L x CC/MLO) as DICOM MG files with "
                    f"calcification ground truth in OUT/manifest.json. {NOT_FOR_DIAGNOSIS}.")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created)")
    p.add_argument("--studies", type=int, default=10, metavar="N", help="number of studies (default 10)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed; same seed, same files (default 0)")
    p.add_argument("--size", choices=("small", "full"), default="small",
                   help="small: a 160 x 200 mm field at 0.2 mm, 800x1000 px (fast, CPU training); "
                        "full: a 238 x 297.5 mm field at the vendor's 0.07-0.1 mm, 2380-3400 x 2975-4250 px")
    p.add_argument("--spacing", type=float, default=None, metavar="MM", help="override the pixel spacing in mm")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="draw in N processes (default 1; the same files whatever N)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mammocad.model.synth import generate_dataset

    if args.studies < 1:
        print("error: --studies must be at least 1", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} exists and is not a folder; choose another path", file=sys.stderr)
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot make the output folder {args.out}: {exc.strerror or exc}; give a folder you can write",
              file=sys.stderr)
        return 2
    try:
        images = generate_dataset(args.out, args.studies, args.seed, size=args.size,
                                  spacing_mm=args.spacing, progress=not args.quiet, workers=args.workers)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: writing the synthetic set to {args.out} failed: {exc}; free space or choose another folder, "
              "then run again (the same seed draws the same studies)", file=sys.stderr)
        return 1
    n_les = sum(len(i.lesions) for i in images)
    n_mal = sum(1 for i in images for les in i.lesions if les.lesion_class.value == "malignant")
    print(f"wrote {len(images)} images ({args.studies} studies, {n_les} lesion boxes, {n_mal} malignant) "
          f"to {args.out}; manifest: {args.out / 'manifest.json'}")
    return 0
