"""End-to-end latency: last image of a four-view study received → last result stored in Orthanc.

Runs the real thing: Orthanc (source and PACS) sends generated four-view studies to
`mammocad serve` (private redis, node, workers) and the results come back into Orthanc.
The split comes from the spool's done markers (file times) and Orthanc polling:

  waiting   last image on disk → complete.json (four views: immediate; else study_timeout_s)
  analysis  last image on disk → last image result written (model + queue on the critical path)
  building  max(last result, complete) → report written (finalize poll, breast risks, outputs, outbox)
  sending   report written → every result object present in Orthanc (C-STORE + Orthanc indexing,
            measured by polling every 20 ms)

``non-model share`` = 1 − (model seconds on the critical path) / total, against the 10 %
target. A warm-up study (model load in each worker process) is run first and not counted.

    .venv/bin/python bench/bench_e2e.py [--studies 3] [--rows 2048 --columns 1664] [--weights PATH] [--keep]

The work folder (spool, Orthanc's storage, the generated studies: hundreds of MB at full size)
is removed at the end, also when the run fails; ``--keep`` keeps it and prints where it is.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import Pipeline  # noqa: E402
from tests.factories import make_four_view_study, write  # noqa: E402
from tests.orthanc import Orthanc  # noqa: E402
from tests.services import free_port, wait_until  # noqa: E402


@contextmanager
def work_folder(keep: bool) -> Iterator[Path]:
    """A fresh temporary folder, removed afterwards (even when the run fails) unless ``keep``."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    try:
        yield workdir
    finally:
        if keep:
            print(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def pick_weights(arg: str | None, workdir: Path) -> tuple[str, str]:
    """(weights path or "" for the demo weights, a sentence saying which)."""
    from mammocad.model.checkpoint import default_weights_path

    if arg:
        return arg, f"weights {arg}"
    if default_weights_path().is_file():
        return "", f"demo weights {default_weights_path()}"
    import torch

    from mammocad.model.checkpoint import save_checkpoint
    from mammocad.model.detector import DetectorSpec, build_detector
    from mammocad.model.standardise import PreprocessSpec

    torch.manual_seed(0)
    spec = DetectorSpec()
    path = save_checkpoint(workdir / "random-default-spec.pt", build_detector(spec), spec, PreprocessSpec(),
                           {"model_name": "random-default-architecture", "version": "0-random", "synthetic": True})
    return str(path), ("a RANDOM checkpoint of the default architecture (demo weights missing): compute "
                       "cost is realistic, detections are not")


def one_study(orthanc: Orthanc, pipe: Pipeline, workdir: Path, rows: int, columns: int, i: int) -> dict[str, float]:
    study = make_four_view_study(rows=rows, columns=columns)
    uid = str(study[0].StudyInstanceUID)
    ids = [orthanc.upload(write(ds, workdir / f"s{i}" / f"{j}.dcm")) for j, ds in enumerate(study)]
    orthanc.post("/modalities/mammocad/store", {"Resources": ids, "Synchronous": True})
    report = pipe.wait_report(uid, timeout=1800)
    wanted = set(report["outputs"])
    study_id = orthanc.study_id(uid)
    wait_until(lambda: wanted <= {x["MainDicomTags"]["SOPInstanceUID"] for x in orthanc.instances(study_id)},
               600, "the results in Orthanc", interval=0.02)
    t_stored = time.time()
    root = pipe.spool / "studies" / uid
    t_recv = max(p.stat().st_mtime for p in (root / "images").glob("*.dcm"))
    t_complete = json.loads((root / "complete.json").read_text()).get("declared_at") or \
        (root / "complete.json").stat().st_mtime
    results = list((root / "results").glob("*.json"))
    t_analysed = max(p.stat().st_mtime for p in results)
    t_report = max(p.stat().st_mtime for p in (root / "reports").glob("*.json"))
    model_cp = 0.0
    for p in results:
        end = p.stat().st_mtime
        if end > t_recv:  # the part of this image's model time after the last image arrived
            model_cp += min(float(json.loads(p.read_text())["seconds"]), end - t_recv)
    total = t_stored - t_recv
    return {"total": total, "waiting": max(0.0, t_complete - t_recv), "analysis": max(0.0, t_analysed - t_recv),
            "building": t_report - max(t_analysed, t_complete), "sending": t_stored - t_report,
            "model_cp": model_cp, "non_model_share": 1 - model_cp / total if total > 0 else 0.0,
            "model_s_all": sum(float(json.loads(p.read_text())["seconds"]) for p in results)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--studies", type=int, default=3, help="measured studies (after one warm-up)")
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--columns", type=int, default=1664)
    ap.add_argument("--weights", help="checkpoint (default: the demo weights, else a random one)")
    ap.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the workers")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (spool, serve log, Orthanc)")
    args = ap.parse_args()
    with work_folder(args.keep) as workdir:
        return run(args, workdir)


def run(args: argparse.Namespace, workdir: Path) -> int:
    """The warm-up and measured studies in ``workdir``; prints the table."""
    weights, which = pick_weights(args.weights, workdir)
    print(f"bench_e2e: {args.rows}x{args.columns} four-view studies, CPU, {which}")
    dicom_port = free_port()
    pipe = Pipeline(workdir / "node", weights, [{"name": "orthanc", "ae_title": "ORTHANC", "host": "127.0.0.1",
                                                "port": dicom_port}], study_timeout_s=30, threads=args.threads)
    orthanc = Orthanc(workdir / "orthanc", {"mammocad": pipe.modality}, dicom_port=dicom_port)
    rows = []
    try:
        pipe.start()
        orthanc.start()
        one_study(orthanc, pipe, workdir, args.rows, args.columns, 0)  # warm-up: model loads
        from tqdm import tqdm

        for i in tqdm(range(1, args.studies + 1), desc="studies", unit="study"):
            rows.append(one_study(orthanc, pipe, workdir, args.rows, args.columns, i))
    finally:
        orthanc.stop()
        pipe.stop()
    cols = ["total", "waiting", "analysis", "building", "sending", "model_cp", "non_model_share"]
    print(f"{'study':>5} " + " ".join(f"{c:>15}" for c in cols))
    for i, r in enumerate(rows, 1):
        print(f"{i:>5} " + " ".join(f"{r[c]:>15.3f}" for c in cols))
    med = {c: statistics.median(r[c] for r in rows) for c in cols}
    print(f"{'med':>5} " + " ".join(f"{med[c]:>15.3f}" for c in cols))
    share = med["non_model_share"]
    print(f"non-model share {share:.1%} of {med['total']:.2f} s (target <= 10%): "
          f"{'met' if share <= 0.10 else 'NOT met'}")
    print(f"(model seconds per study, all four images: {statistics.median(r['model_s_all'] for r in rows):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
