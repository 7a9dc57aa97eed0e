"""What a late report owes each destination of the earlier reports' SC and GSPS, read from a
real spool on disk (report records, kept objects, outbox and dead-letter items, drop markers)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from mammocad.config import Destination, OutputKind
from mammocad.spool.catch_up import owed_objects
from mammocad.spool.outbox import Outbox
from mammocad.spool.records.report import OutputObject, ReportRecord
from mammocad.spool.studies import StudyFiles

STUDY = "1.2.3.4"
A, B, C, D = "1.2.3.4.1.1", "1.2.3.4.1.2", "1.2.3.4.1.3", "1.2.3.4.1.4"
CLASSES = {OutputKind.SECONDARY_CAPTURE: "1.2.840.10008.5.1.4.1.1.7", OutputKind.GSPS: "1.2.840.10008.5.1.4.1.1.11.1",
           OutputKind.MAMMO_CAD_SR: "1.2.840.10008.5.1.4.1.1.88.50"}
SC, GSPS, SR = OutputKind.SECONDARY_CAPTURE, OutputKind.GSPS, OutputKind.MAMMO_CAD_SR


def _object(kind: OutputKind, sop: str, image: str | None) -> Dataset:
    """A kept object as the builders make it, as far as catching up reads it: the image it shows."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID = CLASSES[kind], sop, STUDY
    ref = Dataset()
    ref.ReferencedSOPInstanceUID = image
    if kind is SC:
        ds.SourceImageSequence = [ref]
    elif kind is GSPS:
        series = Dataset()
        series.ReferencedImageSequence = [ref]
        ds.ReferencedSeriesSequence = [series]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, UID(sop)
    return ds


def _report(files: StudyFiles, key: str, images: list[str], objects: dict[str, tuple[OutputKind, str | None]],
            created: float, destinations: dict[str, str], carried: dict[str, tuple[str, ...]] | None = None,
            ) -> dict[str, Dataset]:
    """Write a report record and its kept objects; returns the objects by SOP Instance UID."""
    folder = files.layout.outputs_dir(STUDY, key)
    folder.mkdir(parents=True)
    out = {}
    for sop, (kind, image) in objects.items():
        out[sop] = _object(kind, sop, image)
        out[sop].save_as(folder / f"{sop}.dcm", enforce_file_format=True)
    files.write_report(ReportRecord(
        report_key=key, sop_uids=tuple(images), model_name="m", model_version="1",
        objects=tuple(OutputObject(STUDY, "1.2.3.4.9", sop, CLASSES[k], k) for sop, (k, _) in objects.items()),
        destinations=destinations, created=created, destination_objects=carried or {}))
    return out


def _dest(name: str, outputs: list[str] | None = None) -> Destination:
    return Destination(name=name, ae_title="PACS", host="127.0.0.1", port=104,
                       **({"outputs": outputs} if outputs else {}))


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    """r1 (images A, B; a record from before per-destination objects were kept), then r2
    (A, B, C) whose changed banner rebuilt every SC (r1's are replaced) and a GSPS for C only.
    A late report for A-D leaves the SC and GSPS of A, B and C to them."""
    spool = tmp_path / "spool"
    files = StudyFiles(spool, STUDY)
    dests = {"delivered": "r1", "dead": "r1", "pending": "r1", "dropped": "r1", "sr-only": "r1"}
    _report(files, "r1", [A, B], {"1.1": (SC, A), "1.2": (SC, B), "1.3": (GSPS, A), "1.4": (GSPS, B),
                                  "1.5": (SR, None)}, 1.0, dests)
    r2 = {"2.1": (SC, A), "2.2": (SC, B), "2.3": (SC, C), "2.4": (GSPS, C), "2.5": (SR, None)}
    objs = _report(files, "r2", [A, B, C], r2, 2.0, {d: "r2" for d in dests},
                   {d: tuple(r2) for d in dests if d != "sr-only"} | {"sr-only": ("2.5",)})
    outbox = Outbox(spool)
    for dest in ("dead", "pending"):
        item = outbox.put(dest, "r2", list(objs.values()))
        assert item is not None
        if dest == "dead":
            item.delivered = ["2.1", "2.5"]
            outbox.save(item)
            outbox.dead_letter(item)
    dropped = outbox.put("dropped", "r2", list(objs.values()))
    assert dropped is not None
    outbox.drop(dropped, STUDY)
    resent = outbox.put("resent", "r2.s1", [objs["2.1"], objs["2.4"]])  # `studies resend`, still waiting
    assert resent is not None
    return spool


SENT = {SC: frozenset({A, B, C}), GSPS: frozenset({A, B, C})}
CURRENT = ["2.1", "2.2", "2.3", "1.3", "1.4", "2.4"]  # newest SC and GSPS of A, B and C


def _owed(spool: Path, *dests: Destination, sent: dict[OutputKind, frozenset[str]] = SENT) -> dict[str, list[str]]:
    owed = owed_objects(StudyFiles(spool, STUDY), list(dests), sent)
    return {name: sorted(p.stem for p in paths) for name, paths in owed.items()}


def test_each_destination_gets_the_newest_objects_it_has_not_confirmed(spool: Path) -> None:
    got = _owed(spool, _dest("new"), _dest("delivered"), _dest("dead"), _dest("pending"), _dest("dropped"),
                _dest("resent"), _dest("sr-only", ["mammo-cad-sr", "sc"]), _dest("gsps-only", ["gsps"]))
    assert got == {
        "new": sorted(CURRENT),  # never got any: all, and never r1's replaced SCs
        "dead": ["2.2", "2.3", "2.4"],  # r2 dead-lettered with 2.1 confirmed (r1, gone, was delivered)
        "dropped": ["2.1", "2.2", "2.3", "2.4"],  # r2 dropped: none of it confirmed
        "resent": ["1.3", "1.4", "2.2", "2.3"],  # its resend copy holds 2.1 and 2.4 (on their way)
        "sr-only": ["2.1", "2.2", "2.3"],  # now wants SC too: r2's item carried the SR only
        "gsps-only": ["1.3", "1.4", "2.4"],  # only the kinds it wants
    }  # "delivered" (both items gone) and "pending" (r2's item still sending) are owed nothing


def test_nothing_is_owed_for_a_first_report_or_a_re_analysis(spool: Path) -> None:
    assert _owed(spool, _dest("new"), sent={}) == {}


def test_an_unreadable_kept_copy_is_not_replaced_by_an_older_object(spool: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """r2's SC of B is lost: which image it showed is unknown, and r1's SC of B is the one it
    replaced; sending that would show the PACS the old banner. Logged, with what to do."""
    (StudyFiles(spool, STUDY).layout.outputs_dir(STUDY, "r2") / "2.2.dcm").unlink()
    with caplog.at_level(logging.WARNING, logger="mammocad.worker.tasks"):
        got = _owed(spool, _dest("new"))
    assert got == {"new": ["1.3", "1.4", "2.1", "2.3", "2.4"]}
    (line,) = [r for r in caplog.records if r.getMessage() == "late_report_catch_up_incomplete"]
    assert line.unreadable == 1 and "studies reanalyse" in line.hint  # type: ignore[attr-defined]


def test_objects_an_amended_report_replaced_are_not_carried(spool: Path) -> None:
    """An admin's re-analysis (r3.r1, images A-C) rebuilt everything, except B's SC and GSPS: B
    failed analysis this time. r1's and r2's objects of B are what the amended report withdrew."""
    files = StudyFiles(spool, STUDY)
    _report(files, "r3.r1", [A, B, C], {"3.1": (SC, A), "3.2": (SC, C), "3.3": (GSPS, A), "3.4": (GSPS, C),
                                        "3.5": (SR, None)}, 3.0, {})
    assert _owed(spool, _dest("new")) == {"new": ["3.1", "3.2", "3.3", "3.4"]}
