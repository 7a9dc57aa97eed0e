"""Orthanc → node → workers → Orthanc, with a second destination that is down.

One `mammocad serve` and one real Orthanc: the study is uploaded to Orthanc by REST, Orthanc
C-STOREs it to the node, and the results must come back into Orthanc's study, valid,
citing exactly the sent images, with the lesion coordinates `mammocad analyze` reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from mammocad.spool.records.analysis import CompletionRecord
from tests.e2e.harness import elapsed
from tests.factories import make_four_view_study, write
from tests.orthanc import Orthanc
from tests.results.outputs_fixtures import resolve
from tests.services import free_port
from tests.services import wait_until as wait_for
from tests.validators import all_problems, pixelmed_batch, pixelmed_errors

pytestmark = pytest.mark.e2e

MAMMO_CAD_SR = "1.2.840.10008.5.1.4.1.1.88.50"
SR_CLASSES = {MAMMO_CAD_SR, "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33",
              "1.2.840.10008.5.1.4.1.1.88.34"}


def _walk(items: Any) -> Any:
    for item in items or []:
        yield item
        yield from _walk(item.get("ContentSequence"))


def _referenced_images(sr: Dataset) -> set[str]:
    return {str(ref.ReferencedSOPInstanceUID) for item in _walk(sr.ContentSequence)
            if item.get("ValueType") == "IMAGE" for ref in item.ReferencedSOPSequence}


def _outlines(sr: Dataset) -> dict[str, list[tuple[float, ...]]]:
    """Outline polylines per image SOP UID, converted back to pixel-centre boxes."""
    out: dict[str, list[tuple[float, ...]]] = {}
    for item in _walk(sr.ContentSequence):
        if item.get("ValueType") == "SCOORD" and item.GraphicType == "POLYLINE":
            xs, ys = item.GraphicData[0::2], item.GraphicData[1::2]
            image = item.ContentSequence[0]
            if "ReferencedContentItemIdentifier" in image:  # the SCOORD selects an Image Library entry by reference
                image = resolve(sr, image.ReferencedContentItemIdentifier)
            sop = str(image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
            out.setdefault(sop, []).append((min(xs) - 0.5, min(ys) - 0.5, max(xs) - 0.5, max(ys) - 0.5))
    return out


def _analyze_json(weights: Path, files: list[Path]) -> dict[str, list[tuple[float, ...]]]:
    proc = subprocess.run([sys.executable, "-m", "mammocad", "analyze", "--json", "--weights", str(weights),
                           "--device", "cpu", *map(str, files)], capture_output=True, text=True, timeout=180)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    return {im["image"]["sop_instance_uid"]: [tuple(les["box"]) for les in im["lesions"]]
            for st in report["studies"] for im in st["images"]}


def _results_in_orthanc(orthanc: Orthanc, study_id: str, wanted: set[str]) -> list[dict[str, Any]]:
    held = orthanc.instances(study_id)
    got = {i["MainDicomTags"]["SOPInstanceUID"] for i in held}
    return held if wanted <= got else []


def test_study_round_trip_through_orthanc(tmp_path: Path, random_weights: Path, pipelines, orthancs) -> None:
    orthanc_dicom = free_port()
    pipe = pipelines(tmp_path / "node", random_weights, destinations=[
        {"name": "orthanc", "ae_title": "ORTHANC", "host": "127.0.0.1", "port": orthanc_dicom},
        {"name": "offline", "ae_title": "NOBODY", "host": "127.0.0.1", "port": free_port(),
         "outputs": ["mammo-cad-sr"]},
    ])
    orthanc = orthancs(tmp_path / "orthanc", {"mammocad": pipe.modality}, dicom_port=orthanc_dicom)
    study = make_four_view_study(rows=256, columns=200)
    study_uid = str(study[0].StudyInstanceUID)
    sent = [write(ds, tmp_path / "sent" / f"{i}.dcm") for i, ds in enumerate(study)]
    originals = [orthanc.upload(path) for path in sent]
    study_id = orthanc.study_id(study_uid)
    t0 = time.monotonic()
    orthanc.post("/modalities/mammocad/store", {"Resources": [study_id], "Synchronous": True})
    report = pipe.wait_report(study_uid)
    wanted = set(report["outputs"])
    held = wait_for(lambda: _results_in_orthanc(orthanc, study_id, wanted), 60, "all results in Orthanc")
    print(f"results in Orthanc {elapsed(t0):.1f} s after the store request")
    # Four views complete the study at once, not by the timeout (a fact, not a stopwatch on a shared machine).
    completion = CompletionRecord.read(pipe.spool / "studies" / study_uid / "complete.json")
    assert completion.reason == "four_views", completion

    modalities = {s["MainDicomTags"].get("Modality") for s in orthanc.get(f"/studies/{study_id}/series")}
    assert {"SR", "PR"} <= modalities and len(modalities) >= 3, modalities
    files = {}
    for inst in held:
        sop = inst["MainDicomTags"]["SOPInstanceUID"]
        if sop in wanted:
            files[sop] = tmp_path / "got" / f"{sop}.dcm"
            files[sop].parent.mkdir(exist_ok=True)
            files[sop].write_bytes(orthanc.instance_file(inst["ID"]))
    assert set(files) == wanted and len(held) == 4 + len(wanted)

    # The SRs cite exactly the four sent images.
    sent_uids = {str(ds.SOPInstanceUID) for ds in study}
    srs = [dcmread(p) for p in files.values() if str(dcmread(p, stop_before_pixels=True).SOPClassUID) in SR_CLASSES]
    assert len(srs) >= 2
    for sr in srs:
        assert _referenced_images(sr) == sent_uids, sr.SOPClassUID

    # Lesion coordinates are what `mammocad analyze` finds with the same weights.
    expected = _analyze_json(random_weights, sent)
    cad = next(sr for sr in srs if sr.SOPClassUID == MAMMO_CAD_SR)
    outlines = _outlines(cad)
    assert sum(len(v) for v in expected.values()) > 0, "the random checkpoint found nothing: test is blind"
    for sop, boxes in expected.items():
        got = sorted(outlines.get(sop, []))
        assert len(got) == len(boxes), (sop, len(got), len(boxes))
        for a, b in zip(got, sorted(boxes), strict=True):
            assert all(abs(x - y) < 0.05 for x, y in zip(a, b, strict=True)), (a, b)

    # Every result object Orthanc holds passes the validators.
    sr_files = [p for p in files.values() if str(dcmread(p, stop_before_pixels=True).SOPClassUID) in SR_CLASSES]
    other = [p for p in files.values() if p not in sr_files]
    problems = all_problems(sr_files, sr=True) | all_problems(other)
    problems |= {p.name: e for p, found in pixelmed_batch(sr_files).items() if (e := pixelmed_errors(found))}
    assert problems == {}, problems

    # The offline destination keeps its own item, retrying.
    pending = json.loads(next((pipe.spool / "outbox" / "offline").glob("*/item.json")).read_text())
    assert pending["attempts"] >= 1 and "NOBODY" in pending["last_error"]

    # The same images sent again: no second report, no duplicate objects in Orthanc.
    orthanc.post("/modalities/mammocad/store", {"Resources": originals, "Synchronous": True})
    time.sleep(6)  # > study_timeout_s + a finalize round
    assert len(pipe.reports(study_uid)) == 1
    assert len(orthanc.instances(study_id)) == 4 + len(wanted)


def _concepts(sr: Dataset) -> set[str]:
    return {str(item.ConceptNameCodeSequence[0].CodeValue) for item in _walk(sr.ContentSequence)
            if item.get("ConceptNameCodeSequence")}


def test_a_normal_study_yields_valid_reports_in_orthanc(tmp_path: Path, no_findings_weights: Path, pipelines,
                                                        orthancs) -> None:
    """A study with no findings (a detector that finds nothing): a valid TID 1500 SR and a
    valid Mammography CAD SR, both citing the four images, delivered to Orthanc."""
    orthanc_dicom = free_port()
    pipe = pipelines(tmp_path / "node", no_findings_weights, destinations=[
        {"name": "orthanc", "ae_title": "ORTHANC", "host": "127.0.0.1", "port": orthanc_dicom,
         "outputs": ["mammo-cad-sr", "tid1500-sr"]}])
    orthanc = orthancs(tmp_path / "orthanc", {"mammocad": pipe.modality}, dicom_port=orthanc_dicom)
    study = make_four_view_study(rows=256, columns=200)
    study_uid = str(study[0].StudyInstanceUID)
    study_id = orthanc.send_study([write(ds, tmp_path / "sent" / f"{i}.dcm") for i, ds in enumerate(study)])
    report = pipe.wait_report(study_uid)
    assert report["failed_images"] == [] and report["failed_outputs"] == {}, report
    results = [json.loads(p.read_text()) for p in (pipe.spool / "studies" / study_uid / "results").glob("*.json")]
    assert len(results) == 4 and all(r["error"] is None and r["lesions"] == [] for r in results)

    wanted = set(report["outputs"])
    held = wait_for(lambda: _results_in_orthanc(orthanc, study_id, wanted), 60, "the reports in Orthanc")
    files = []
    for inst in held:
        if inst["MainDicomTags"]["SOPInstanceUID"] in wanted:
            files.append(tmp_path / "got" / f"{inst['MainDicomTags']['SOPInstanceUID']}.dcm")
            files[-1].parent.mkdir(exist_ok=True)
            files[-1].write_bytes(orthanc.instance_file(inst["ID"]))
    srs = {str(dcmread(p).SOPClassUID): dcmread(p) for p in files}
    assert sorted(srs) == sorted([MAMMO_CAD_SR, "1.2.840.10008.5.1.4.1.1.88.34"]) and len(files) == 2, sorted(srs)
    sent = {str(ds.SOPInstanceUID) for ds in study}
    for sr in srs.values():
        assert _referenced_images(sr) == sent, sr.SOPClassUID
    assert "111059" not in _concepts(srs[MAMMO_CAD_SR])  # no Single Image Finding
    assert not _outlines(srs[MAMMO_CAD_SR])
    assert not [item for item in _walk(srs["1.2.840.10008.5.1.4.1.1.88.34"].ContentSequence)
                if item.get("ValueType") in ("SCOORD", "SCOORD3D")]  # no finding regions
    problems = all_problems(files, sr=True)
    problems |= {p.name: e for p, found in pixelmed_batch(files).items() if (e := pixelmed_errors(found))}
    assert problems == {}, problems
