"""Typed spool records: round trips, files written before versions existed, newer versions refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mammocad.config.settings import OutputKind
from mammocad.model.results import ImageRef, ImageResult, Lesion, LesionClass
from mammocad.spool.layout import Spool
from mammocad.spool.outbox import Outbox
from mammocad.spool.records import RecordError
from mammocad.spool.records.analysis import (
    CompletionRecord,
    ReanalysisRecord,
    image_result_from_json,
    image_result_json,
    read_image_result,
)
from mammocad.spool.records.presence import PresenceRecord
from mammocad.spool.records.pruned import PrunedRecord
from mammocad.spool.records.report import OutputObject, ReportRecord
from mammocad.spool.studies import StudyFiles, find_predecessor

STUDY = "1.2.826.0.1.3680043.8.498.1"
SOPS = ["1.2.826.0.1.3680043.8.498.11", "1.2.826.0.1.3680043.8.498.12"]


def _result(sop: str = SOPS[0]) -> ImageResult:
    ref = ImageRef(study_uid=STUDY, series_uid="1.2.3", sop_instance_uid=sop, sop_class_uid="1.2.840.10008.5.1.4.1.1.1.2",
                   laterality="L", view="CC", rows=100, columns=80)
    lesion = Lesion(box=(1.0, 2.0, 30.0, 40.0), lesion_class=LesionClass.MALIGNANT, probability_malignant=0.7,
                    score=0.9)
    return ImageResult(image=ref, lesions=(lesion,), model_name="m", model_version="1", device="cpu", seconds=0.5)


def _report(**kw: object) -> ReportRecord:
    objects = (OutputObject(STUDY, "1.2.9", "1.2.9.1", "1.2.840.10008.5.1.4.1.1.88.50", OutputKind.MAMMO_CAD_SR),
               OutputObject(STUDY, "1.2.8", "1.2.8.1", "1.2.840.10008.5.1.4.1.1.7", OutputKind.SECONDARY_CAPTURE))
    fields: dict[str, object] = {"report_key": "k1", "sop_uids": tuple(SOPS), "model_name": "m", "model_version": "1",
                                 "objects": objects, "destinations": {"__objects__": "k1", "pacs": "k1"},
                                 "failed_images": (SOPS[1],), "created": 12.5,
                                 "destination_objects": {"__objects__": ("1.2.9.1",), "pacs": ("1.2.9.1", "1.2.8.1")}}
    fields.update(kw)
    return ReportRecord(**fields)  # type: ignore[arg-type]


def test_image_result_round_trip_and_version_0() -> None:
    result = _result()
    data = image_result_json(result)
    assert data["version"] == 1
    assert image_result_from_json(json.loads(json.dumps(data))) == result
    old = result.to_dict()  # what the code wrote before records had versions
    assert "version" not in old and image_result_from_json(old) == result


def test_completion_round_trip_and_version_0(tmp_path: Path) -> None:
    record = CompletionRecord(sop_uids=tuple(reversed(SOPS)), reason="four_views", declared_at=5.0)
    data = record.to_json()
    assert data == {"version": 1, "sop_uids": SOPS, "reason": "four_views", "declared_at": 5.0}
    assert CompletionRecord.from_json(data) == CompletionRecord(tuple(SOPS), "four_views", 5.0)
    spool = Spool(tmp_path).create()
    path = spool.complete_path(STUDY)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"sop_uids": SOPS, "reason": "timeout", "declared_at": 1.0}))  # version 0
    assert spool.read_complete(STUDY) == SOPS
    assert StudyFiles(tmp_path, STUDY).complete() == CompletionRecord(tuple(SOPS), "timeout", 1.0)


def test_report_round_trip_with_any_destination_name(tmp_path: Path) -> None:
    report = _report()
    again = ReportRecord.from_json(json.loads(json.dumps(report.to_json())), "ignored")
    assert again == report
    assert again.outputs == ["1.2.9.1", "1.2.8.1"]
    assert [o.sop for o in again.objects_of(OutputKind.MAMMO_CAD_SR)] == ["1.2.9.1"]


def test_report_version_0_as_written_before(tmp_path: Path) -> None:
    """The exact shape finalize_study wrote before typed records (no version, no report_key)."""
    files = StudyFiles(tmp_path, STUDY)
    old = {"sop_uids": SOPS[:1], "model_name": "m", "model_version": "1", "outputs": ["1.2.9.1"],
           "objects": [{"study": STUDY, "series": "1.2.9", "sop": "1.2.9.1",
                        "sop_class": "1.2.840.10008.5.1.4.1.1.88.50", "kind": "mammo-cad-sr"},
                       {"study": STUDY, "series": "1.2.7", "sop": "1.2.7.1", "sop_class": "1.2.3", "kind": ""}],
           "destinations": {"pacs": "oldkey"}, "failed_images": [], "created": 3.0}
    path = files.report("oldkey")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(old))
    (record,) = files.reports()
    assert record.report_key == "oldkey" and record.sop_uids == (SOPS[0],)
    assert [o.kind for o in record.objects] == [OutputKind.MAMMO_CAD_SR, None]
    assert record.destination_objects == {}  # not kept then: what an item carried is read as all the outputs
    assert Spool(tmp_path).has_report_for(STUDY, SOPS[:1])
    assert find_predecessor(files, SOPS, "1") == record


def test_newer_versions_are_refused_not_misread(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="newer"):
        CompletionRecord.from_json({"version": 99, "sop_uids": SOPS, "reason": "timeout"})
    with pytest.raises(RecordError, match="newer"):
        ReportRecord.from_json({**_report().to_json(), "version": 2}, "k")
    with pytest.raises(RecordError, match="newer"):
        image_result_from_json({**image_result_json(_result()), "version": 2})
    with pytest.raises(RecordError, match="newer"):
        PresenceRecord.from_json({**_presence().to_json(), "version": 2})
    bad = tmp_path / "r.json"
    bad.write_text("[1, 2]")
    with pytest.raises(RecordError, match="JSON object"):
        read_image_result(bad)


def test_unreadable_completion_counts_as_never_completed(tmp_path: Path) -> None:
    spool = Spool(tmp_path).create()
    path = spool.complete_path(STUDY)
    path.parent.mkdir(parents=True)
    for text in ("{", '{"sop_uids": "1.2"}', '{"version": 7, "sop_uids": []}'):
        path.write_text(text)
        assert spool.read_complete(STUDY) is None


def test_outbox_item_version_0_and_unknown_fields(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    folder = outbox.root / "pacs" / "item1"
    folder.mkdir(parents=True)
    old = {"destination": "pacs", "item_id": "item1", "created": 1.0, "next_attempt": 2.0, "attempts": 3,
           "last_error": "refused", "delivered": ["1.2.3"], "token": "t"}
    (folder / "item.json").write_text(json.dumps(old))
    item = outbox.get("pacs", "item1")
    assert item is not None and (item.attempts, item.delivered, item.token) == (3, ["1.2.3"], "t")
    outbox.save(item)
    saved = json.loads((folder / "item.json").read_text())
    assert saved["version"] == 1 and {k: saved[k] for k in old} == old
    (folder / "item.json").write_text(json.dumps({**old, "version": 2}))
    with pytest.raises(RecordError, match="newer"):
        outbox.get("pacs", "item1")


def test_an_unreadable_item_does_not_hide_the_others(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(tmp_path)
    for item_id, text in (("good", json.dumps({"destination": "pacs", "item_id": "good", "created": 1.0,
                                              "next_attempt": 1.0})), ("bad", "{"), ("newer", '{"version": 9}')):
        folder = outbox.root / "pacs" / item_id
        folder.mkdir(parents=True)
        (folder / "item.json").write_text(text)
    assert [i.item_id for i in outbox.items()] == ["good"]
    assert caplog.text.count("outbox_item_unreadable") == 2


def _presence() -> PresenceRecord:
    return PresenceRecord(worker="results-12@box", host="box", pid=12, started=1.5, held=("t1", "t2"),
                          lease_s=30.0, dropped=("t0",))


def test_presence_round_trip_and_a_file_name_from_any_node_name(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert PresenceRecord.from_json(json.loads(json.dumps(_presence().to_json()))) == _presence()
    with pytest.raises(RecordError, match="held"):
        PresenceRecord.from_json({**_presence().to_json(), "held": [1]})
    with pytest.raises(RecordError, match="dropped"):
        PresenceRecord.from_json({**_presence().to_json(), "dropped": "t0"})
    # A host name is not a safe file name: no separator, no hidden file, in the workers folder.
    for name in ("results-1@box", "../../etc/x", ".hidden@h", "gpu 1@a/b"):
        path = spool.presence_path(name)
        assert path.parent == spool.workers and "/" not in path.name and not path.name.startswith(".")
    assert spool.presence_path("results-1@box").name == "results-1@box.json"


@pytest.mark.parametrize(("record", "data"), [
    (ReanalysisRecord, {"version": 1, "sop_uids": ["1.2"], "revision": True, "requested_at": 1.0}),
    (PrunedRecord, {"version": 1, "sop_uids": ["1.2"], "reports": True, "pruned_at": 1.0}),
])
def test_a_json_true_is_no_count(record: type[ReanalysisRecord] | type[PrunedRecord], data: dict[str, object]) -> None:
    """Python's bool is an int: ``"revision": true`` read as revision 1, ``"reports": true`` as one report."""
    with pytest.raises(RecordError, match="must be"):
        record.from_json(data)


_REQUEST = ReanalysisRecord(revision=1, sop_uids=tuple(SOPS), requested_at=4.0)
#: Every record family with a time: (reader, a valid record as JSON, its time field, what errors name).
_TIMED: dict[str, tuple[Callable[[dict[str, Any]], object], dict[str, Any], str, str]] = {
    "completion": (CompletionRecord.from_json, CompletionRecord(tuple(SOPS), "timeout", 5.0).to_json(),
                   "declared_at", "complete.json"),
    "reanalysis": (ReanalysisRecord.from_json, _REQUEST.to_json(), "requested_at", "reanalysis.json"),
    "pruned": (PrunedRecord.from_json, PrunedRecord(tuple(SOPS), 1, 6.0).to_json(), "pruned_at", "pruned study"),
    "report": (lambda d: ReportRecord.from_json(d, "k1"), _report().to_json(), "created", "report"),
    "report's request": (lambda d: ReportRecord.from_json({**_report().to_json(), "reanalysis": d}, "k1"),
                         _REQUEST.to_json(), "requested_at", "report: reanalysis"),
    "presence": (PresenceRecord.from_json, _presence().to_json(), "started", "worker presence"),
}
_MALFORMED_TIMES = [True, False, "12.5", "yesterday", "2024-05-01T10:00:00", "2024-05-01T10:00:00+02:00", None,
                    [12.5], {"t": 12.5}, float("nan"), float("inf")]


@pytest.mark.parametrize("family", list(_TIMED))
@pytest.mark.parametrize("value", _MALFORMED_TIMES, ids=repr)
def test_every_family_refuses_a_malformed_time_the_same_way(family: str, value: object) -> None:
    """One reader for every time: ``float()`` took ``true`` as 1.0 and ``"12.5"`` as a time,
    and NaN compares as neither older nor newer. Each is refused, with the same words."""
    read, good, key, what = _TIMED[family]
    with pytest.raises(RecordError) as caught:
        read({**good, key: value})
    assert str(caught.value) == (f"{what}: {key} must be a time in seconds since the epoch (a JSON number), "
                                 f"got {value!r}")


@pytest.mark.parametrize("family", list(_TIMED))
def test_every_family_reads_a_time_as_written_or_absent(family: str) -> None:
    """A JSON integer is a time too; a file written before the field existed reads as 0 (long ago)."""
    read, good, key, _ = _TIMED[family]
    assert _time_of(read({**good, key: 7}), key) == 7.0
    assert _time_of(read({k: v for k, v in good.items() if k != key}), key) == 0.0


def _time_of(record: object, key: str) -> float:
    if isinstance(record, ReportRecord) and key == "requested_at":
        assert record.reanalysis is not None
        record = record.reanalysis
    value = getattr(record, key)
    assert isinstance(value, float)
    return value
