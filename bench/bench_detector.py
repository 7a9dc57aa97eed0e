"""Time the detector on one full-field mammogram (3500×2800 pixels, 14-bit, 0.085 mm) per run.

    .venv/bin/python bench/bench_detector.py [--device cpu|cuda|auto] [--runs 3] [--weights PATH] [--orientations N]
        [--orientation-crop PX]

Uses the demo weights when present, else a randomly initialised detector with the demo's
architecture and preprocessing from config/train-demo-fine.toml (same cost; weights change the
time only through the number of boxes). ``--default-spec`` benches DetectorSpec() instead.
Prints seconds per image (standardisation and detection separately), tiles run, peak RSS
and the seconds as a fraction of the 15 s per image target: a figure of this machine at this
moment, never a verdict (wall time moves with other load; compare ratios within one run).
``--orientations N`` also times the image
analysed in N orientations (``orientations.py``), alternating with the one-orientation run, and
prints that ratio too; ``--orientation-crop PX`` runs the other orientations on PX-px crops
around the first one's candidates instead of the whole image, and then also times the worst
case: ``orientation_crop_max_crops`` candidates, each far enough from the others to need
its own crop (this image has no lesions, so its own first pass may give none). Without
either option the checkpoint's own settings are timed, so a plain run times what ships
(``--orientations 1`` times one orientation only).
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mammocad.model.detector import DetectorSpec
    from mammocad.model.standardise import PreprocessSpec
    from mammocad.model.tiling import Detections

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_S = 15.0


def of_target(seconds: float) -> str:
    """Seconds per image as a fraction of the target, with no pass/fail: on a shared machine the
    same code measured 0.27 and 0.55 of it an hour apart (bench/README.md)."""
    return f"{seconds / TARGET_S:.2f} of the {TARGET_S:.0f} s/image target on this machine now"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs after one warm-up (default 3)")
    parser.add_argument("--weights", help="checkpoint (default: demo weights, else random weights)")
    parser.add_argument("--backbone", default=None, help="random weights with this backbone and default spec")
    parser.add_argument("--default-spec", action="store_true", help="random weights, DetectorSpec() defaults")
    parser.add_argument("--no-amp", action="store_true", help="float32 on CUDA too (no fp16 autocast; CPUs always run float32)")
    parser.add_argument("--inference-tile", type=int, default=None,
                        help="override DetectorSpec.inference_tile_size (0: the training tile size)")
    parser.add_argument("--orientations", type=int, choices=(1, 2, 4, 8), default=None,
                        help="also time N test-time orientations against one, in the same runs (default: the "
                             "checkpoint's test_time_orientations; 1: one orientation only)")
    parser.add_argument("--orientation-crop", type=int, default=None, metavar="PX",
                        help="with --orientations: the others on PX-px crops around candidates (default: the "
                             "checkpoint's orientation_crop_size; 0: whole image)")
    args = parser.parse_args()

    import torch

    from mammocad.model.checkpoint import default_weights_path
    from mammocad.model.detector import build_detector
    from mammocad.model.devices import configure_cpu_threads, default_batch_size, resolve_device
    from mammocad.model.orientations import detect_oriented, verify_in_crops
    from mammocad.model.standardise import standardise
    from mammocad.model.tiling import detect_tiled
    from tests.factories import make_mammogram

    device = resolve_device(args.device)
    threads = configure_cpu_threads()
    weights = Path(args.weights) if args.weights else default_weights_path()
    if weights.is_file() and not (args.backbone or args.default_spec):
        from mammocad.model.checkpoint import load_checkpoint

        loaded = load_checkpoint(weights, device=device)
        model, spec, preprocess = loaded.model, loaded.spec, loaded.preprocess
        source = f"{weights.name} ({loaded.metadata.get('model_name')} {loaded.metadata.get('version')})"
    else:
        torch.manual_seed(0)
        spec, preprocess = _random_specs(args)
        model = build_detector(spec).to(device).eval()
        source = "random weights" + ("" if args.backbone or args.default_spec else ", demo architecture")
    from mammocad.model.detector import inference_layout

    inference_layout(model)  # the memory layout Detector.load gives the node's and workers' model

    if args.inference_tile is not None:
        spec = dataclasses.replace(spec, inference_tile_size=args.inference_tile)
    if args.orientations is None:
        args.orientations = spec.test_time_orientations
    if args.orientation_crop is None:
        args.orientation_crop = spec.orientation_crop_size
    ds = make_mammogram(rows=3500, columns=2800, bits_stored=14, pixel_spacing_mm=0.085, laterality="L", seed=1)
    batch = default_batch_size(device)
    std_times, det_times, tiles, boxes = [], [], 0, 0
    oriented_times: list[float] = []
    oriented_tiles = 0
    oriented_spec = dataclasses.replace(spec, test_time_orientations=args.orientations,
                                        orientation_crop_size=args.orientation_crop)
    for run in range(args.runs + 1):
        t0 = time.perf_counter()
        std = standardise(ds, preprocess)
        t1 = time.perf_counter()
        det = detect_tiled(model, std.image, spec, device=device, batch_size=batch, amp=not args.no_amp)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if run:  # the first run warms up allocators and kernels
            std_times.append(t1 - t0)
            det_times.append(t2 - t1)
        tiles, boxes = det.tiles, len(det.boxes)
        candidates = int((det.scores >= oriented_spec.orientation_crop_min_score).sum())
        if args.orientations > 1:
            t3 = time.perf_counter()
            oriented = detect_oriented(model, std.image, oriented_spec, device=device, batch_size=batch,
                                       amp=not args.no_amp)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if run:
                oriented_times.append(time.perf_counter() - t3)
            oriented_tiles = oriented.tiles
    worst_times: list[float] = []
    worst_tiles = 0
    if args.orientation_crop and args.orientations > 1:
        worst = _spread_candidates(std.image.shape, oriented_spec)
        for run in range(args.runs + 1):
            t0 = time.perf_counter()
            worst_tiles = verify_in_crops(model, std.image, worst, oriented_spec, device=device, batch_size=batch,
                                          amp=not args.no_amp).tiles - worst.tiles
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if run:
                worst_times.append(time.perf_counter() - t0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total = statistics.median(s + d for s, d in zip(std_times, det_times, strict=True))
    amp = "fp16" if device.startswith("cuda") and not args.no_amp else "off"
    print(f"device: {device}  threads: {threads}  batch: {batch}  amp: {amp}  weights: {source}")
    print(f"model: {spec.backbone} FPN layers {list(spec.returned_layers)} box head {spec.box_head_size}  "
          f"train tile {spec.tile_size}  inference tile {spec.run_tile_size}/{spec.tile_overlap}")
    print(f"image: 3500x2800 14-bit at 0.085 mm -> model frame {std.image.shape[0]}x{std.image.shape[1]} "
          f"at {preprocess.working_spacing_mm} mm, tiles run: {tiles}, boxes: {boxes}")
    print(f"standardise: {statistics.median(std_times):.2f} s  detect: {statistics.median(det_times):.2f} s  "
          f"total: {total:.2f} s/image (median of {args.runs})")
    print(f"peak RSS: {peak_mb:.0f} MiB")
    if device.startswith("cuda"):
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    print(f"one orientation: {of_target(total)}")
    if oriented_times:
        if args.orientation_crop:
            print(f"others on {args.orientation_crop}-px crops around {candidates} candidates (score >= "
                  f"{oriented_spec.orientation_crop_min_score:g})")
        oriented_total = statistics.median(s + d for s, d in zip(std_times, oriented_times, strict=True))
        print(f"{args.orientations} orientations: detect {statistics.median(oriented_times):.2f} s, tiles run: "
              f"{oriented_tiles}, total {oriented_total:.2f} s/image: {oriented_total / total:.2f}x one orientation; "
              f"{of_target(oriented_total)}")
    if worst_times:
        worst_total = total + statistics.median(worst_times)
        print(f"worst case, {oriented_spec.orientation_crop_max_crops} candidates each in its own crop: "
              f"{statistics.median(worst_times):.2f} s ({worst_tiles} crop tiles), total {worst_total:.2f} s/image: "
              f"{worst_total / total:.2f}x one orientation; {of_target(worst_total)}")
    return 0


def _spread_candidates(shape: tuple[int, int], spec: DetectorSpec) -> Detections:
    """As many 12-px candidate boxes as the spec verifies, on a grid half a crop apart (so each
    needs its own crop), all scoring 0.9."""
    import numpy as np

    from mammocad.model.tiling import Detections

    rows, cols = shape
    size, count = spec.orientation_crop_size, spec.orientation_crop_max_crops
    step = size // 2 + 8
    centres = [(x, y) for y in range(step // 2, rows, step) for x in range(step // 2, cols, step)][:count]
    boxes = np.array([[x - 6, y - 6, x + 6, y + 6] for x, y in centres], dtype=np.float64)
    n = len(boxes)
    return Detections(boxes, np.full(n, 0.9), np.tile([0.2, 0.3, 0.5], (n, 1)), tiles=0)


def _random_specs(args: argparse.Namespace) -> tuple[DetectorSpec, PreprocessSpec]:
    """DetectorSpec/PreprocessSpec for random weights: the demo config's, unless asked otherwise."""
    import tomllib

    from mammocad.model.detector import DetectorSpec
    from mammocad.model.standardise import PreprocessSpec

    if args.backbone:
        return DetectorSpec(backbone=args.backbone), PreprocessSpec()
    demo = Path(__file__).resolve().parents[1] / "config" / "train-demo-fine.toml"
    if args.default_spec or not demo.is_file():
        return DetectorSpec(), PreprocessSpec()
    raw = tomllib.loads(demo.read_text())
    return DetectorSpec.from_dict(raw.get("detector", {})), PreprocessSpec.from_dict(raw.get("preprocess", {}))


if __name__ == "__main__":
    sys.exit(main())
