"""Do inference tile size and mixed precision change what the detector finds?

    .venv/bin/python bench/compare_tiles.py CHECKPOINT_OR_TRAIN_STATE MANIFEST_DIR [-n 16]

    .venv/bin/python bench/compare_tiles.py CHECKPOINT MANIFEST_DIR -n 16 --device cuda

Runs ``Detector.predict_standardised`` on the first N images of an annotated data set with
training-size tiles and with ``inference_tile_size`` (768) tiles, each in float32 and, on CUDA,
with float16 autocast too (CPUs always run float32: ``mammocad/model/tiling.py``, so a CPU run
has no precision variant), and prints time, its ratio to the first variant (training tiles,
float32) measured in the same run, lesions found (a box centre inside the lesion) and false
positives per image at score thresholds 0.3/0.5/0.7. Accepts a release checkpoint or a
``runs/<name>/state.pt`` training state (its config gives the specs).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _checkpoint(path: Path, tmp: Path) -> Path:
    import torch

    from mammocad.model.checkpoint import save_checkpoint
    from mammocad.model.detector import DetectorSpec, build_detector
    from mammocad.model.standardise import PreprocessSpec

    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != "mammocad-train-state/1":
        return path
    cfg = payload["config"]
    spec = DetectorSpec.from_dict(cfg.get("detector", {}))
    model = build_detector(spec)
    model.load_state_dict(payload["model"])
    meta = {"model_name": "train-state", "version": f"step{payload['step']}", "synthetic": True}
    return save_checkpoint(tmp / "state.pt", model, spec, PreprocessSpec.from_dict(cfg.get("preprocess", {})), meta)


def _found(items: list, stds: list, preds: list, thr: float) -> tuple[int, int, float]:
    hit = total = fp = 0
    for item, std, pred in zip(items, stds, preds, strict=True):
        keep = pred.scores >= thr
        boxes = std.transform.to_original(pred.boxes[keep]) if keep.any() else np.zeros((0, 4))
        centres = np.c_[(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2]
        used = np.zeros(len(centres), dtype=bool)
        for lesion in item.lesions:
            x1, y1, x2, y2 = lesion.box
            inside = ((centres[:, 0] >= x1) & (centres[:, 0] <= x2) & (centres[:, 1] >= y1)
                      & (centres[:, 1] <= y2))
            hit, total, used = hit + bool(inside.any()), total + 1, used | inside
        fp += int((~used).sum())
    return hit, total, fp / max(1, len(items))


def precisions(device: str) -> tuple[bool, ...]:
    """The ``amp`` settings worth timing on ``device``: autocast exists on CUDA only, and a CPU
    run with ``amp=True`` is the float32 run again (it used to be timed and printed as "amp on")."""
    return (False, True) if device.startswith("cuda") else (False,)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path)
    parser.add_argument("manifest", type=Path, help="data set folder with manifest.json")
    parser.add_argument("-n", type=int, default=16, help="images to use (default 16)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    args = parser.parse_args()

    from mammocad.model.annotations import load_manifest
    from mammocad.model.dataset import decode_image
    from mammocad.model.devices import resolve_device
    from mammocad.model.inference import Detector

    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        det = Detector.load(str(_checkpoint(args.weights, Path(tmp))), device=device)
    items = load_manifest(args.manifest)[: args.n]
    stds = [decode_image(item, det.preprocess) for item in items]
    base = det.spec
    print(f"{det.model_name} {det.model_version}: training tile {base.tile_size}/{base.tile_overlap}, "
          f"{len(items)} images, {sum(len(i.lesions) for i in items)} lesions, {device}")
    reference = 0.0
    for tile in (0, base.run_tile_size):
        for amp in precisions(device):
            run = det.with_spec(inference_tile_size=tile)
            run.amp = amp
            started = time.perf_counter()
            preds = [run.predict_standardised(std.image) for std in stds]
            seconds = time.perf_counter() - started
            reference = reference or seconds
            cols = [f"@{t}: {h}/{n} found, {f:.2f} FP/img" for t in (0.3, 0.5, 0.7)
                    for h, n, f in [_found(items, stds, preds, t)]]
            print(f"tile {run.spec.run_tile_size:4d} {'float16' if amp else 'float32'}: {seconds:6.1f} s "
                  f"(x{seconds / reference:.2f})  " + "  ".join(cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
