"""Which working resolution? Speck and cluster visibility against detector cost, 0.1 vs 0.2 mm.

    .venv/bin/python bench/bench_resolution.py [--images 6] [--spacings 0.1 0.2] [--reference 0.2]

Visibility. Each test image is a left CC made by synth v2's own chain (``synth.generate.
render_view``: breast anatomy and texture, attenuation physics, then the DR detector with
vendor processing or digitised film, as the seed's vendor profile says) at the finest spacing
compared (``--draw-spacing`` to force another; ``drawing_spacing_mm``), with a test pattern of calcium
spheres placed by this script: ``--specks-per-size`` isolated specks of each diameter in
0.1-1 mm and ``--clusters`` clusters of six 0.1-0.35 mm specks within 4 mm, all of fill
fraction ``--fill``. Their contrast therefore comes from the same physics, noise and blur as
the generator's calcifications. The image is standardised as the detector's input is
(``mammocad.model.standardise``) at the drawn spacing, then resampled to each working
spacing the way ``standardise`` resamples.

A speck's CNR is ``realism_stats.speck_cnr`` (peak over a local ring's median, in units of the
ring's robust sd); it is detectable at CNR >= 3 (Rose). A cluster is visible when at least 3
of its six specks are.

Cost. For each spacing, one subprocess standardises a 3500x2800 0.085 mm mammogram and runs
the tiled detector with the shipped architecture and weights, median of ``--runs`` after a
warm-up: seconds per image, tiles, model frame, peak RSS. Ratios are against
``--reference`` measured in the same run. No figure is a pass/fail: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES_MM = (0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0)
CLUSTER_SPECKS, CLUSTER_RADIUS_MM, CLUSTER_SIZES_MM = 6, 4.0, (0.1, 0.35)
VISIBLE_CLUSTER_SPECKS = 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=6, help="test-pattern images (default 6)")
    p.add_argument("--seed", type=int, default=11, help="seed of anatomy, vendor and pattern (default 11)")
    p.add_argument("--draw-spacing", type=float, default=None,
                   help="spacing in mm the test images are drawn at (default: the finest of --spacings)")
    p.add_argument("--spacings", type=float, nargs="+", default=[0.1, 0.2], help="working spacings (default 0.1 0.2)")
    p.add_argument("--reference", type=float, default=0.2, help="spacing the ratios refer to (default 0.2)")
    p.add_argument("--specks-per-size", type=int, default=6, help="isolated specks per size and image (default 6)")
    p.add_argument("--clusters", type=int, default=3, help="inserted clusters per image (default 3)")
    p.add_argument("--fill", type=float, default=0.65,
                   help="hydroxyapatite fill fraction of every speck (default 0.65; synth draws 0.3-1)")
    p.add_argument("--runs", type=int, default=2, help="timed detector runs per spacing (default 2)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--weights", help="checkpoint for the cost runs (default: shipped weights)")
    p.add_argument("--no-cost", action="store_true", help="visibility only")
    p.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    p.add_argument("--cost-one", type=float, help=argparse.SUPPRESS)  # internal: one cost run in a subprocess
    return p


def main() -> int:
    p = build_parser()
    args = p.parse_args()
    if args.cost_one is not None:
        print(json.dumps(cost_one(args.cost_one, args)))
        return 0
    if args.reference not in args.spacings:
        p.error(f"--reference {args.reference} must be one of --spacings {args.spacings}")
    visibility = measure_visibility(args)
    costs = {} if args.no_cost else {s: cost_subprocess(s, args) for s in args.spacings}
    print_report(args, visibility, costs)
    if args.json:
        args.json.write_text(json.dumps({"visibility": visibility, "cost": costs, "args": vars(args)},
                                        indent=1, default=str))
    return 0


# -- visibility -------------------------------------------------------------------------------

def measure_visibility(args: argparse.Namespace) -> dict[str, Any]:
    """Draw test-pattern breasts through synth v2 and measure every speck at every spacing."""

    from mammocad.model import realism

    found: dict[str, Any] = {"isolated": {s: [] for s in args.spacings}, "clusters": {s: [] for s in args.spacings},
                             "drawn_mm": [], "acquisition": []}
    for index in range(args.images):
        ds, isolated, clusters, film = _pattern_image(index, args)
        std, drawn = _standardise_drawn(ds)
        found["drawn_mm"].append(drawn)
        found["acquisition"].append("film" if film else "DR")
        print(f"image {index + 1}/{args.images}: {'film' if film else 'DR'} at {drawn} mm", file=sys.stderr)
        isolated = _to_model(std, isolated)
        clusters = [_to_model(std, c) for c in clusters]
        acq = "film" if film else "DR"
        for spacing in args.spacings:
            work = realism.resample(std.image, drawn, spacing)
            scale = drawn / spacing
            found["isolated"][spacing] += [(d, c, acq) for d, c in _cnrs(work, isolated, scale, spacing)]
            found["clusters"][spacing] += [[(d, v, acq) for d, v in _cnrs(work, c, scale, spacing)] for c in clusters]
    return found


def _pattern_image(index: int, args: argparse.Namespace) -> tuple[Any, list[Any], list[list[Any]], bool]:
    """One left CC through the synth v2 chain (anatomy, physics, acquisition, vendor header) with
    isolated specks of every size and a few clusters; returns the data set and the truth
    (x, y, diameter mm) in stored pixels."""
    import numpy as np

    from mammocad.model.results import LesionClass
    from mammocad.model.synth.anatomy import Breast
    from mammocad.model.synth.calc_primitives import Ellipsoids
    from mammocad.model.synth.calcifications import ClusterSpec
    from mammocad.model.synth.dicom_writer import ImageIds, build_dataset, sample_profile, to_stored
    from mammocad.model.synth.generate import DENSITIES, FIELDS_MM, render_view

    rng = np.random.default_rng([args.seed, index])
    profile = sample_profile(rng)
    spacing = drawing_spacing_mm(profile, args)
    field_mm = FIELDS_MM["full"]
    shape = (int(round(field_mm[0] / spacing)), int(round(field_mm[1] / spacing)))
    density = float(np.clip(DENSITIES[str(rng.choice(list(DENSITIES)))] + rng.normal(0, 0.04), 0.03, 0.95))
    breast = Breast.sample(rng, field_mm, density, compression_rng=np.random.default_rng([args.seed, index, 3]))
    origin = breast.to_view_mm("CC", (breast.depth_cc, 0.0, 0.0))  # chest wall on the nipple row
    spots = _spots(breast, field_mm, rng, args)
    pos = np.array([p for p, _, _ in spots])
    diam = np.array([d for _, d, _ in spots])
    # CC projection (raster.project): row offset = -lateral, column offset = towards the nipple.
    offsets = np.column_stack([pos[:, 1] - origin[1], -(pos[:, 0] - origin[0]), np.zeros(len(pos))])
    specks = Ellipsoids.build(offsets, np.repeat(diam[:, None] / 2, 3, axis=1), np.repeat(np.eye(3)[None], len(pos), 0),
                              np.full(len(pos), args.fill))
    spec = ClusterSpec(kind="test_pattern", lesion_class=LesionClass.BENIGN, description="resolution test pattern",
                       ellipsoids=specks)
    img, _ = render_view(breast, "L", "CC", shape, spacing, rng, [(spec, origin)], profile)
    ids = ImageIds(seed=args.seed, index=index, patient_id=f"RES_{index:04d}", laterality="L", view="CC", instance=1)
    ds = build_dataset(to_stored(img, profile), ids, profile, spacing)
    truth = [((p[1] / spacing - 0.5), (p[0] / spacing - 0.5), d, group) for p, d, group in spots]
    isolated = [(x, y, d) for x, y, d, g in truth if g < 0]
    clusters = [[(x, y, d) for x, y, d, g in truth if g == k] for k in range(args.clusters)]
    return ds, isolated, [c for c in clusters if c], bool(profile.secondary_capture)


def drawing_spacing_mm(profile: Any, args: argparse.Namespace) -> float:
    """The pixel size (mm) a test image is drawn at: ``--draw-spacing``, else the finest spacing compared.

    It is drawn the way training draws (``generate.drawing_spacing`` with a caller's spacing): the
    header states the drawn spacing and the image carries the resize from the unit's own pitch
    (``mtf.resampling_mtf``), so the product draws nothing differently. Until 2026-12-07 this bench
    drew at the unit's pitch (``VendorProfile.full_spacing_mm``): a Fujifilm AMULET at 50 µm, 4x the
    pixels (and drawing time and memory) of 0.1 mm, and its 0.1 mm figures came from a 2x resize of
    that drawing while a GE's came from none, so the units entered the 0.1 vs 0.2 mm comparison unalike.
    """
    from mammocad.model.synth.generate import drawing_spacing

    return drawing_spacing("full", args.draw_spacing or min(args.spacings), profile)


def _spots(breast: Any, field_mm: tuple[float, float], rng: Any, args: argparse.Namespace
           ) -> list[tuple[tuple[float, float], float, int]]:
    """((row, col) mm, diameter mm, cluster number or -1) of every speck, inside the breast,
    10 mm clear of the skin line and the chest wall, isolated ones >= 4 mm from anything."""
    import numpy as np

    def inside(row: float, col: float, margin: float) -> bool:
        if not margin <= row <= field_mm[0] - margin or col < margin:
            return False
        return bool(col + margin <= breast.width_profile("CC", np.array([row - margin, row, row + margin])).min())

    def draw(margin: float) -> tuple[float, float] | None:
        for _ in range(400):
            row, col = float(rng.uniform(0, field_mm[0])), float(rng.uniform(0, field_mm[1]))
            if inside(row, col, margin):
                return row, col
        return None

    out: list[tuple[tuple[float, float], float, int]] = []
    centres: list[tuple[float, float]] = []
    for k in range(args.clusters):
        for _ in range(50):
            c = draw(10.0 + CLUSTER_RADIUS_MM)
            if c and all(np.hypot(c[0] - a, c[1] - b) >= 2 * CLUSTER_RADIUS_MM + 6 for a, b in centres):
                centres.append(c)
                break
        else:
            continue
        members: list[tuple[float, float]] = []
        while len(members) < CLUSTER_SPECKS:
            r, a = CLUSTER_RADIUS_MM * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
            p = (c[0] + r * np.sin(a), c[1] + r * np.cos(a))
            if all(np.hypot(p[0] - m[0], p[1] - m[1]) >= 0.8 for m in members):
                members.append(p)
                out.append((p, float(rng.uniform(*CLUSTER_SIZES_MM)), k))
    for d in SIZES_MM * args.specks_per_size:
        for _ in range(50):
            spot = draw(10.0)
            if spot and all(np.hypot(spot[0] - q[0], spot[1] - q[1]) >= 4.0 for q, _, g in out if g < 0) and all(
                    np.hypot(spot[0] - a, spot[1] - b) >= CLUSTER_RADIUS_MM + 4 for a, b in centres):
                out.append((spot, d, -1))
                break
    return out


def _standardise_drawn(ds: Any) -> tuple[Any, float]:
    from mammocad.dicom import header
    from mammocad.model.standardise import PreprocessSpec, standardise

    (drawn, _), _ = header.spacing_from_header(ds, 0.1)
    return standardise(ds, PreprocessSpec(working_spacing_mm=drawn, crop_breast=True)), drawn


def _to_model(std: Any, specks: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """Stored-pixel speck centres → the standardised image at the drawn spacing."""
    import numpy as np

    if not specks:
        return []
    pts = std.transform.to_model(np.array([[x, y, x, y] for x, y, _ in specks], dtype=np.float64))
    return [(float(p[0]), float(p[1]), d) for p, (_, _, d) in zip(pts, specks, strict=True)]


def _cnrs(work: Any, specks: list[tuple[float, float, float]], scale: float, spacing: float) -> list[tuple[float, float]]:
    from mammocad.model.realism_stats import Speck, speck_cnr

    return [(d, speck_cnr(work, Speck(x=(x + 0.5) * scale - 0.5, y=(y + 0.5) * scale - 0.5, diameter_px=d / spacing),
                          spacing)) for x, y, d in specks]


# -- cost -------------------------------------------------------------------------------------

def cost_subprocess(spacing: float, args: argparse.Namespace) -> dict[str, Any]:
    """One spacing's cost in a fresh process, so peak RSS belongs to that spacing alone."""
    cmd = [sys.executable, __file__, "--cost-one", str(spacing), "--runs", str(args.runs), "--device", args.device]
    if args.weights:
        cmd += ["--weights", args.weights]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"cost run at {spacing} mm failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def own_peak_rss_mib() -> float:
    """This process's peak resident memory since its exec, in MiB (``VmHWM``, /proc/self/status).

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries that across fork and exec, so a cost
    subprocess reported the parent's peak (the visibility images) whenever it was larger, and
    every spacing showed the same figure.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status: peak memory needs Linux")


def cost_one(spacing: float, args: argparse.Namespace) -> dict[str, Any]:
    import dataclasses

    import torch

    from mammocad.model.checkpoint import load_checkpoint, resolve_weights
    from mammocad.model.detector import inference_layout
    from mammocad.model.devices import configure_cpu_threads, default_batch_size, resolve_device
    from mammocad.model.standardise import standardise
    from mammocad.model.tiling import detect_tiled
    from tests.factories import make_mammogram

    device = resolve_device(args.device)
    configure_cpu_threads()
    loaded = load_checkpoint(resolve_weights(args.weights), device=device)
    inference_layout(loaded.model)  # as Detector.load lays out the node's and workers' model
    preprocess = dataclasses.replace(loaded.preprocess, working_spacing_mm=spacing)
    ds = make_mammogram(rows=3500, columns=2800, bits_stored=14, pixel_spacing_mm=0.085, laterality="L", seed=1)
    times, tiles, shape = [], 0, (0, 0)
    for run in range(args.runs + 1):
        t0 = time.perf_counter()
        std = standardise(ds, preprocess)
        det = detect_tiled(loaded.model, std.image, loaded.spec, device=device, batch_size=default_batch_size(device))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if run:
            times.append(time.perf_counter() - t0)
        tiles, shape = det.tiles, std.image.shape
    result = {"seconds": statistics.median(times), "tiles": tiles, "model_shape": list(shape),
              "peak_rss_mib": own_peak_rss_mib(), "device": device,
              "model": f"{loaded.metadata.get('model_name')} {loaded.metadata.get('version')}"}
    if device.startswith("cuda"):
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


# -- report -----------------------------------------------------------------------------------

def _summary(items: list[tuple[float, float, str]]) -> tuple[int, float, float]:
    """(n, median CNR, fraction detectable) of (diameter, CNR, acquisition) items."""
    import numpy as np

    values = np.array([c for _, c, _ in items if np.isfinite(c)])
    if not values.size:
        return 0, float("nan"), float("nan")
    return int(values.size), float(np.median(values)), float((values >= 3.0).mean())


def print_report(args: argparse.Namespace, vis: dict[str, Any], costs: dict[float, Any]) -> None:
    ref, others = args.reference, [s for s in args.spacings if s != args.reference]
    drawn = sorted(set(round(n, 4) for n in vis["drawn_mm"]))
    kinds = {k: vis["acquisition"].count(k) for k in sorted(set(vis["acquisition"]))}
    print(f"{args.images} synth v2 test-pattern images (seed {args.seed}; {kinds}), drawn at {drawn} mm, "
          f"speck fill {args.fill}; detectable: CNR >= 3")
    head = "  ".join(f"@{s:g} mm: CNR median / detectable" for s in args.spacings)
    print(f"\nisolated specks by diameter  {head}  CNR ratio " + " ".join(f"{o:g}/{ref:g}" for o in others))
    for d in SIZES_MM:
        cells, meds = [], {}
        for s in args.spacings:
            n, med, frac = _summary([p for p in vis["isolated"][s] if p[0] == d])
            meds[s] = med
            cells.append(f"{med:6.1f} / {frac:4.0%} (n={n})".ljust(len(f"@{s:g} mm: CNR median / detectable")))
        ratios = " ".join(f"{meds[o] / meds[ref]:.2f}" if meds[ref] else "n/a" for o in others)
        print(f"  {d:4.2f} mm                   " + "  ".join(cells) + f"  {ratios}")
    print(f"\nclusters ({CLUSTER_SPECKS} specks {CLUSTER_SIZES_MM[0]}-{CLUSTER_SIZES_MM[1]} mm within "
          f"{CLUSTER_RADIUS_MM:g} mm; visible: >= {VISIBLE_CLUSTER_SPECKS} detectable specks)")
    for acq in ("all", *sorted(set(vis["acquisition"]))):
        for s in args.spacings:
            clusters = [c for c in vis["clusters"][s] if acq == "all" or (c and c[0][2] == acq)]
            visible = sum(1 for c in clusters if sum(1 for _, v, _ in c if v >= 3.0) >= VISIBLE_CLUSTER_SPECKS)
            n, med, frac = _summary([p for c in clusters for p in c])
            print(f"  {acq:>4} @{s:g} mm: {visible}/{len(clusters)} clusters visible; their specks: CNR median "
                  f"{med:.1f}, {frac:.0%} detectable (n={n})")
    print("\ndetectable isolated specks by acquisition: " + ", ".join(f"{d:g}" for d in SIZES_MM) + " mm")
    for acq in sorted(set(vis["acquisition"])):
        for s in args.spacings:
            fractions = [_summary([p for p in vis["isolated"][s] if p[0] == d and p[2] == acq])[2] for d in SIZES_MM]
            print(f"  {acq:>4} @{s:g} mm: " + "  ".join(f"{f:4.0%}" for f in fractions))
    if costs:
        print(f"\ncost per 3500x2800 0.085 mm image ({costs[ref]['model']}, {costs[ref]['device']}), ratio vs {ref:g} mm")
        for s in args.spacings:
            c = costs[s]
            print(f"  @{s:g} mm: model frame {c['model_shape'][0]}x{c['model_shape'][1]}, {c['tiles']} tiles, "
                  f"{c['seconds']:.2f} s/image (x{c['seconds'] / costs[ref]['seconds']:.2f}), peak RSS "
                  f"{c['peak_rss_mib']:.0f} MiB (x{c['peak_rss_mib'] / costs[ref]['peak_rss_mib']:.2f})")


if __name__ == "__main__":
    sys.exit(main())
