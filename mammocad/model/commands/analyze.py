"""``mammocad analyze FILE_OR_FOLDER...``: run the detector on DICOM files, print the findings.

A thin wrapper over :class:`mammocad.model.inference.Detector`. Folders are walked for
files; anything that is not a readable DICOM image is reported and skipped, never fatal.
Exit status: 0 every image analysed, 1 some file could not be analysed (listed), 2 the
detector could not be loaded or the command line is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

NOTICE = "Research software: NOT a diagnosis and not for diagnostic use."
SYNTHETIC_NOTICE = "These weights were trained on SYNTHETIC images only: the findings are a demonstration."


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "analyze", help="detect calcifications in DICOM mammograms and print lesions and breast risks",
        description="Run the detector on DICOM files or folders (walked recursively). " + NOTICE,
        epilog="Exit status: 0 all images analysed, 1 some files skipped or failed, 2 detector not loadable.")
    p.add_argument("paths", nargs="+", metavar="FILE_OR_FOLDER", help="DICOM files or folders to analyse")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument("--weights", metavar="PATH",
                   help="checkpoint (default: worker.weights from the configuration, else the demo weights)")
    p.add_argument("--device", metavar="D", help="auto, cpu, cuda, cuda:N (default: worker.device, else auto)")
    # --out: the worker's results builders (mammocad.results), written as DICOM files.
    p.add_argument("--out", metavar="DIR", type=Path,
                   help="also write the DICOM results (CAD SR, TID 1500 SR, SC, GSPS) into DIR")
    p.set_defaults(handler=run)


def find_files(paths: list[str]) -> list[Path]:
    """Files named, plus every file under the folders named (sorted, hidden files skipped)."""
    out: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                out.extend(Path(root) / f for f in sorted(files) if not f.startswith("."))
        else:
            out.append(path)
    return out


def _settings_defaults(args: argparse.Namespace) -> tuple[str | None, str]:
    from mammocad.config.settings import load_settings

    settings = load_settings(getattr(args, "config", None))
    weights = args.weights or settings.worker.weights or None
    return weights, args.device or settings.worker.device


def run(args: argparse.Namespace) -> int:
    from mammocad.config.settings import ConfigError
    from mammocad.logs import configure_logging
    from mammocad.model.checkpoint import CheckpointError
    from mammocad.model.devices import DeviceError

    try:
        weights, device = _settings_defaults(args)
    except ConfigError as exc:
        print(f"mammocad analyze: {exc}", file=sys.stderr)
        return 2
    # Library warnings (highdicom quotes a one-component patient name) go through the redacting
    # formatter too, as in the services: stderr is often collected into a log.
    configure_logging("WARNING")
    files = find_files(args.paths)
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        print(f"mammocad analyze: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        from mammocad.model.inference import Detector

        det = Detector.load(weights=weights, device=device)
    except (CheckpointError, DeviceError) as exc:
        print(f"mammocad analyze: {exc}", file=sys.stderr)
        return 2
    report = analyze_files(det, files, out_dir=args.out)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_text(report)
    return 0 if not report["skipped"] and all(
        im["error"] is None for st in report["studies"] for im in st["images"]) else 1


def analyze_files(det: Any, files: list[Path], out_dir: Path | None = None) -> dict[str, Any]:
    """Analyse every readable DICOM image; group by study; breast risks per study."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from tqdm import tqdm

    from mammocad.model.results import StudyResult

    skipped: list[dict[str, str]] = []
    by_study: dict[str, list[tuple[Path, Any]]] = defaultdict(list)
    datasets: dict[str, dict[str, Any]] = defaultdict(dict)
    for path in tqdm(files, desc="analyze", unit="file", file=sys.stderr, disable=None):
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError:
            # pydicom's own text ends "Use force=True", advice for programmers, not for this command's users.
            skipped.append({"path": str(path), "reason": "not a DICOM file: no 'DICM' prefix after the 128-byte "
                                                         "preamble (export it from the PACS as a DICOM Part 10 file)"})
            continue
        except (OSError, ValueError, EOFError) as exc:
            skipped.append({"path": str(path), "reason": f"not a readable DICOM file: {exc}"})
            continue
        if "PixelData" not in ds:
            skipped.append({"path": str(path), "reason": f"no pixel data (SOP class {ds.get('SOPClassUID', '?')})"})
            continue
        result = det.analyze_dataset(ds)
        by_study[result.image.study_uid].append((path, result))
        if out_dir is not None:
            datasets[result.image.study_uid][result.image.sop_instance_uid] = ds
    studies = []
    for study_uid, items in by_study.items():
        results = [r for _, r in items]
        breasts = det.breast_risks(results)
        study = StudyResult(study_uid=study_uid, images=tuple(results), breasts=breasts, model_name=det.model_name,
                            model_version=det.model_version, synthetic_weights=det.synthetic_weights)
        entry = study.to_dict()
        for image, (path, _) in zip(entry["images"], items, strict=True):
            image["path"] = str(path)
        if out_dir is not None:
            entry["outputs"] = write_outputs(study, datasets[study_uid], out_dir)
        studies.append(entry)
    return {"model_name": det.model_name, "model_version": det.model_version,
            "synthetic_weights": det.synthetic_weights, "device": det.device, "notice": NOTICE,
            "studies": studies, "skipped": skipped}


def write_outputs(study: Any, sources: dict[str, Any], out_dir: Path) -> list[str]:
    """--out: build the DICOM results with the worker's builders and save them in ``out_dir``."""
    from mammocad.config.settings import OutputKind
    from mammocad.results.outputs import build_outputs  # highdicom is heavy: import on use

    analysed = [r for r in study.images if r.analysed]
    if not analysed:
        return []
    outputs = build_outputs(study, sources, list(OutputKind), device=analysed[0].device, predecessor=None)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for ds in outputs:
        path = out_dir / f"{ds.Modality}_{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        written.append(str(path))
    return written


def print_text(report: dict[str, Any]) -> None:
    print(f"model {report['model_name']} version {report['model_version']} on {report['device']}")
    print(NOTICE)
    if report["synthetic_weights"]:
        print(SYNTHETIC_NOTICE)
    for study in report["studies"]:
        print(f"\nstudy {study['study_uid']}")
        for image in study["images"]:
            ref = image["image"]
            where = f"{image['path']} ({ref['laterality'] or '?'} {ref['view'] or '?'})"
            if image["error"]:
                print(f"  {where}: NOT ANALYSED: {image['error']}")
                continue
            print(f"  {where}: {len(image['lesions'])} lesion(s), {image['seconds']:.1f} s")
            for les in image["lesions"]:
                x1, y1, x2, y2 = les["box"]
                print(f"    box ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}) {les['lesion_class']:<9} "
                      f"p_malignant={les['probability_malignant']:.3f} score={les['score']:.3f}")
        for breast in study["breasts"]:
            call = "MALIGNANT" if breast["malignant"] else "not suspicious"
            print(f"  breast {breast['laterality']}: risk {breast['risk']:.3f} ({call} at threshold "
                  f"{breast['threshold']:.2f}, {breast['n_images']} image(s))")
        for line in study.get("outputs", []):
            print(f"  wrote {line}")
    for item in report["skipped"]:
        print(f"skipped {item['path']}: {item['reason']}")
