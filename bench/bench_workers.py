"""Drawing synthetic studies and decoding training images in worker processes, against one process.

    .venv/bin/python bench/bench_workers.py [--studies 8] [--spacing 0.1] [--workers 1 2]
    .venv/bin/python bench/bench_workers.py --data var/cache/s6-train-s61-01 [--workers 1 2]

Draws ``--studies`` synthetic studies (``generate_dataset``, the path ``mammocad model train
--workers N`` and ``mammocad model synth --workers N`` take) and decodes their images to the
0.2 mm working frame (``load_samples``), once per entry of ``--workers``, in fresh temporary
folders. Prints wall seconds per study and per image and each run's speed-up against the
first entry of ``--workers`` measured in the same run; it also checks that every run wrote
byte-identical files and decoded identical samples. No figure is a pass/fail: compare within
one run, on an otherwise idle machine (a speed-up cannot exceed the free cores). Each pool
pays its processes' start (a fresh interpreter importing mammocad, numpy and torch), so a small
set decodes faster in one process: ``--data DIR`` decodes an existing folder with a
manifest.json (a training folder) instead of drawing, to see a realistic set.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--studies", type=int, default=8, help="synthetic studies to draw (default 8)")
    p.add_argument("--seed", type=int, default=5, help="their seed (default 5)")
    p.add_argument("--spacing", type=float, default=0.1, help="drawing spacing in mm (default 0.1, as training draws)")
    p.add_argument("--data", type=Path, help="decode this folder (manifest.json) instead of drawing")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                   help="process counts to compare; the first is the reference (default 1 2)")
    args = p.parse_args()
    if args.studies < 1 or min(args.workers) < 1:
        p.error("--studies and every --workers must be at least 1")

    from mammocad.model.annotations import load_manifest
    from mammocad.model.dataset import load_samples
    from mammocad.model.standardise import PreprocessSpec
    from mammocad.model.synth import generate_dataset

    spec = PreprocessSpec(working_spacing_mm=0.2)
    rows = []
    reference_files: dict[str, bytes] | None = None
    reference_samples = None
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        for n in args.workers:
            out = args.data or Path(tmp) / f"w{n}"
            t0 = time.perf_counter()
            if args.data is None:
                generate_dataset(out, args.studies, args.seed, spacing_mm=args.spacing, progress=False, workers=n)
            draw_s = time.perf_counter() - t0
            items = load_manifest(out)
            t0 = time.perf_counter()
            samples = load_samples(items, spec, progress=False, workers=n)
            decode_s = time.perf_counter() - t0
            files = {str(f.relative_to(out)): f.read_bytes() for f in sorted(out.rglob("*.dcm"))}
            if reference_files is None:
                reference_files, reference_samples = files, samples
            same = files == reference_files and all(
                np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
                for a, b in zip(samples, reference_samples or [], strict=True))
            rows.append((n, draw_s, decode_s, len(items), same))
    ref_draw, ref_decode = rows[0][1], rows[0][2]
    if args.data is None:
        print(f"{args.studies} studies of seed {args.seed} drawn at {args.spacing} mm, decoded to 0.2 mm")
    else:
        print(f"{rows[0][3]} images of {args.data} decoded to 0.2 mm (nothing drawn)")
    print(f"{'workers':>7} {'draw s/study':>13} {'decode s/img':>13} {'draw speed-up':>14} {'decode speed-up':>16} same data")
    for n, draw_s, decode_s, images, same in rows:
        per_study, speed_up = ("-", "-") if args.data else (f"{draw_s / args.studies:.2f}", f"{ref_draw / draw_s:.2f}")
        print(f"{n:>7} {per_study:>13} {decode_s / images:>13.3f} {speed_up:>14} "
              f"{ref_decode / decode_s:>16.2f} {'yes' if same else 'NO'}")
    return 0 if all(r[4] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
