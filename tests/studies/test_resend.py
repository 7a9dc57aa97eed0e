"""`studies resend` of a study with a late-image report, on a real spool and outbox on disk.

A late report holds the late images' SC and GSPS only: the earlier images' objects stay in
the earlier report's kept folder and still stand for them (``mammocad.spool.catch_up``). A
resend must send the study's current set, as the results worker gives a new destination.
"""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread

from mammocad.config import Destination, OutputKind
from mammocad.spool.outbox import Outbox, OutboxItem
from mammocad.spool.studies import StudyFiles
from mammocad.studies.actions import resend
from tests.audit.schema import problems
from tests.spool.test_catch_up import CLASSES, STUDY, A, B, C, _report
from tests.worker.conftest import make_settings

SC, GSPS, SR = OutputKind.SECONDARY_CAPTURE, OutputKind.GSPS, OutputKind.MAMMO_CAD_SR
#: r1, the first report (images A and B), and r2, the late report for C: C's SC and GSPS only.
R1 = {"1.1": (SC, A), "1.2": (SC, B), "1.3": (GSPS, A), "1.4": (GSPS, B), "1.5": (SR, None)}
R2 = {"2.1": (SC, C), "2.2": (GSPS, C), "2.3": (SR, None)}
#: What `pacs` got from the two reports and still stands: r2's SR (it supersedes r1's) and
#: every image's SC and GSPS, each once.
CURRENT = {"2.3", "1.1", "1.2", "2.1", "1.3", "1.4", "2.2"}


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    spool = tmp_path / "spool"
    files = StudyFiles(spool, STUDY)
    _report(files, "r1", [A, B], R1, 1.0, {"pacs": "r1"})
    _report(files, "r2", [A, B, C], R2, 2.0, {"pacs": "r2"}, {"pacs": tuple(R2)})
    return spool  # both items confirmed: the outbox holds none


def _dest(name: str, outputs: list[str] | None = None, graphics_only: bool = False) -> Destination:
    return Destination(name=name, ae_title=name.upper(), host="127.0.0.1", port=104, graphics_only=graphics_only,
                       **({"outputs": outputs} if outputs else {}))


def _sent(item: OutboxItem) -> list[str]:
    """The SOP Instance UIDs of the item's files (a duplicate would show twice)."""
    return sorted(p.stem for p in item.files())


def test_a_resend_after_a_late_report_sends_every_images_objects(spool: Path, tmp_path: Path) -> None:
    """It sent r2's folder only: C's SC and GSPS, none of A's and B's, which stay in r1's."""
    audit = tmp_path / "audit.log"
    settings = make_settings(spool, [_dest("pacs"), _dest("archive")], audit={"file": str(audit)})
    (item,) = resend(settings, STUDY, ["archive"])
    assert (item.destination, item.item_id) == ("archive", "r2.s1")
    assert _sent(item) == sorted(CURRENT)  # once each, the very UIDs `pacs` got
    assert Outbox(spool).get("archive", "r2.s1") is not None
    (line,) = audit.read_bytes().splitlines()
    assert problems(line) == [], problems(line)
    root = ET.fromstring(line)
    counts = {c.get("UID"): c.get("NumberOfInstances") for c in root.iter("SOPClass")}
    assert counts == {CLASSES[SC]: "3", CLASSES[GSPS]: "3", CLASSES[SR]: "1"}  # what it queued
    said = root.find("EventIdentification/EventOutcomeDescription")
    assert said is not None and "report r2" in (said.text or "") and "r1" in (said.text or "")


def test_a_resend_after_an_amended_report_sends_nothing_it_withdrew(spool: Path, tmp_path: Path) -> None:
    """An admin's re-analysis (r3.r1) rebuilt A's and C's objects; B failed analysis again, so
    its r1 objects are withdrawn, not current: the resend sends the amended report's only."""
    _report(StudyFiles(spool, STUDY), "r3.r1", [A, B, C],
            {"3.1": (SC, A), "3.2": (SC, C), "3.3": (GSPS, A), "3.4": (GSPS, C), "3.5": (SR, None)}, 3.0, {})
    (item,) = resend(make_settings(spool, [_dest("pacs")]), STUDY)
    assert _sent(item) == ["3.1", "3.2", "3.3", "3.4", "3.5"]


def test_a_graphics_only_destination_is_resent_the_kinds_it_receives(spool: Path) -> None:
    """`graphics_only` asks for marks as secondary capture instead of GSPS (the results worker
    sends it SC, never GSPS). A resend filtered on `outputs`: it got the GSPS it does not want
    and no SC, which it never named but receives."""
    viewer = _dest("viewer", ["mammo-cad-sr", "gsps"], graphics_only=True)
    (item,) = resend(make_settings(spool, [viewer]), STUDY)
    assert _sent(item) == ["1.1", "1.2", "2.1", "2.3"]  # the SR and every image's SC


def test_a_resend_names_a_destination_the_report_did_not_in_its_record(spool: Path) -> None:
    """Once `archive` confirmed its copy (the outbox deletes it), the record still says what it
    holds: a late report owes it nothing and `studies show` lists it. A destination the report
    names keeps its own item; a later copy for `archive` is a copy of its recorded item."""
    from mammocad.spool.catch_up import owed_objects
    from mammocad.spool.records.report import ReportRecord
    from mammocad.studies.status import study_status

    files = StudyFiles(spool, STUDY)
    settings = make_settings(spool, [_dest("pacs"), _dest("archive")])
    items = resend(settings, STUDY)
    assert {i.destination: i.item_id for i in items} == {"pacs": "r2.s1", "archive": "r2.s1"}
    record = ReportRecord.read(files.report("r2"))
    assert record.destinations == {"pacs": "r2", "archive": "r2.s1"}
    assert {d: sorted(sops) for d, sops in record.destination_objects.items()} == {
        "pacs": sorted(R2), "archive": sorted(CURRENT)}
    for item in items:
        Outbox(spool).complete(item)  # confirmed: gone from the outbox
    late = {SC: frozenset({A, B, C}), GSPS: frozenset({A, B, C})}
    assert owed_objects(files, settings.destinations, late) == {}
    assert study_status(spool, STUDY).destinations == {"archive": "delivered", "pacs": "delivered"}

    (again,) = resend(settings, STUDY, ["archive"])
    assert again.item_id == "r2.s1.s1"
    assert ReportRecord.read(files.report("r2")).destinations == record.destinations
    assert study_status(spool, STUDY).destinations == {"archive": "pending", "pacs": "delivered"}


@pytest.mark.parametrize("lost", ["dead", "dropped"])
def test_a_confirmed_copy_for_a_named_destination_whose_item_was_lost_is_recorded(spool: Path, lost: str) -> None:
    """`pacs` had r2's own item dead-lettered (nothing confirmed) or dropped, and the admin
    re-sent. Once the copy was confirmed (gone from the outbox), nothing said so: a late
    report owed `pacs` the earlier SC/GSPS again and `studies show` still said dead/dropped."""
    from mammocad.spool.catch_up import owed_objects
    from mammocad.spool.records.report import ReportRecord
    from mammocad.studies.status import study_status

    files = StudyFiles(spool, STUDY)
    outbox = Outbox(spool)
    folder = files.layout.outputs_dir(STUDY, "r2")
    own = outbox.put("pacs", "r2", [dcmread(folder / f"{sop}.dcm") for sop in R2])
    assert own is not None
    outbox.dead_letter(own) if lost == "dead" else outbox.drop(own, STUDY)
    settings = make_settings(spool, [_dest("pacs")])
    late = {SC: frozenset({A, B, C}), GSPS: frozenset({A, B, C})}
    assert owed_objects(files, settings.destinations, late)  # what it lacks, before the resend
    state = "dead" if lost == "dead" else "dropped"
    assert study_status(spool, STUDY).destinations == {"pacs": state}

    (copy,) = resend(settings, STUDY, ["pacs"])
    assert copy.item_id == "r2.s1"
    outbox.complete(copy)  # confirmed: gone from the outbox

    assert owed_objects(files, settings.destinations, late) == {}
    assert study_status(spool, STUDY).destinations == {"pacs": "delivered"}
    record = ReportRecord.read(files.report("r2"))
    assert record.destinations == {"pacs": "r2"}  # its own item stays named
    assert {i: sorted(s) for i, s in record.copies["pacs"].items()} == {"r2.s1": sorted(CURRENT)}
    (again,) = resend(settings, STUDY, ["pacs"])  # a later copy on its way shows as such
    assert again.item_id == "r2.s2"
    assert study_status(spool, STUDY).destinations == {"pacs": "pending"}


@pytest.mark.parametrize("extra", [False, True])
def test_a_confirmed_copy_settles_the_dead_item_it_replaced_and_retention_prunes(spool: Path, tmp_path: Path,
                                                                                extra: bool) -> None:
    """`pacs` had r2's own item dead-lettered and the admin re-sent; the copy was confirmed and
    `studies show` said delivered, yet the dead item stayed in `deadletter/` and retention kept
    the study until an admin ran `outbox drop`. The dead item the copy carried all of now goes
    with the copy's confirmation (delivered here to DCMTK's storescp); one holding an object the
    copy did not carry (``extra``: r1's SR, withdrawn by r2's) stays, and so does the study:
    that object never reached `pacs`."""
    from mammocad.spool.retention import DAY_S, prune
    from mammocad.studies.status import study_status
    from mammocad.worker.outbox_delivery import attempt
    from tests.worker.conftest import StoreSCP

    files = StudyFiles(spool, STUDY)
    outbox = Outbox(spool)
    own: list[Dataset] = [dcmread(files.layout.outputs_dir(STUDY, "r2") / f"{sop}.dcm") for sop in R2]
    if extra:
        own.append(dcmread(files.layout.outputs_dir(STUDY, "r1") / "1.5.dcm"))
    dead = outbox.put("pacs", "r2", own)
    assert dead is not None
    outbox.dead_letter(dead)
    with StoreSCP(tmp_path / "pacs") as scp:
        settings = make_settings(spool, [scp.destination("pacs")])
        (copy,) = resend(settings, STUDY, ["pacs"])
        later = time.time() + 60 * DAY_S  # the study is old enough: only its items can keep it
        assert prune(spool, 30 * DAY_S, now=later).kept == {STUDY: "results for pacs still in outbox/"}
        assert attempt(settings, outbox, copy) == ("delivered", None)
        assert len(scp.received()) == len(CURRENT)  # the peer stored what the copy carried

    left = outbox.get("pacs", "r2", dead=True)
    assert (left is not None) is extra
    if extra:
        assert left is not None and sorted(p.stem for p in left.pending_files()) == sorted([*R2, "1.5"])
        assert study_status(spool, STUDY).destinations == {"pacs": "dead"}  # was "delivered": 1.5 never went
        assert prune(spool, 30 * DAY_S, now=later).kept == {STUDY: "results for pacs still in deadletter/"}
    else:
        assert study_status(spool, STUDY).destinations == {"pacs": "delivered"}
        assert prune(spool, 30 * DAY_S, now=later).studies == [STUDY]


def _own_item(outbox: Outbox, files: StudyFiles, extra: bool = False) -> OutboxItem:
    """`pacs`'s own item of r2, still retrying and past its delivery deadline (an hour old);
    ``extra``: it also holds r1's SR, which r2's withdrew, so no resend carries it."""
    own: list[Dataset] = [dcmread(files.layout.outputs_dir(STUDY, "r2") / f"{sop}.dcm") for sop in R2]
    if extra:
        own.append(dcmread(files.layout.outputs_dir(STUDY, "r1") / "1.5.dcm"))
    item = outbox.put("pacs", "r2", own)
    assert item is not None
    return _past_deadline(outbox, item)


def _past_deadline(outbox: Outbox, item: OutboxItem) -> OutboxItem:
    item.created -= 3600
    outbox.save(item)
    return item


@pytest.mark.parametrize("extra", [False, True])
def test_an_item_a_confirmed_copy_carried_is_completed_at_its_deadline_not_dead_lettered(
        spool: Path, tmp_path: Path, extra: bool, caplog: pytest.LogCaptureFixture) -> None:
    """`pacs`'s own item r2 was still retrying when the admin re-sent and the copy was confirmed
    (to DCMTK's storescp, back for a while). The PACS went away again and r2 reached its
    deadline: it went to `deadletter/` although the PACS held all it had, and retention kept
    the study until an admin ran `outbox drop`. It is now completed, with one line saying why;
    one holding an object the copy did not carry (``extra``) is dead-lettered as before."""
    from mammocad.spool.retention import DAY_S, prune
    from mammocad.studies.status import study_status
    from mammocad.worker.outbox_delivery import attempt
    from tests.worker.conftest import StoreSCP

    outbox = Outbox(spool)
    own = _own_item(outbox, StudyFiles(spool, STUDY), extra)
    with StoreSCP(tmp_path / "pacs") as scp:
        settings = make_settings(spool, [scp.destination("pacs")])
        (copy,) = resend(settings, STUDY, ["pacs"])
        assert attempt(settings, outbox, copy) == ("delivered", None)
        assert len(scp.received()) == len(CURRENT)
    assert outbox.get("pacs", "r2", dead=True) is None  # still in the outbox: the copy left it be
    with caplog.at_level(logging.INFO, logger="mammocad.worker.outbox_delivery"):
        outcome = attempt(settings, outbox, own)  # storescp stopped: its port refuses
    said = [vars(r) for r in caplog.records if r.getMessage() == "delivery_superseded"]
    later = time.time() + 60 * DAY_S  # the study is old enough: only its items can keep it
    if extra:
        assert outcome == ("dead", None) and said == []
        left = outbox.get("pacs", "r2", dead=True)
        assert left is not None and sorted(p.stem for p in left.pending_files()) == sorted([*R2, "1.5"])
        assert study_status(spool, STUDY).destinations == {"pacs": "dead"}
        assert prune(spool, 30 * DAY_S, now=later).kept == {STUDY: "results for pacs still in deadletter/"}
    else:
        assert outcome == ("superseded", None)
        assert outbox.items() == [] and outbox.items(dead=True) == []
        assert [(s["item"], s["copies"], s["objects"]) for s in said] == [("r2", "r2.s1", len(R2))]
        assert study_status(spool, STUDY).destinations == {"pacs": "delivered"}
        assert prune(spool, 30 * DAY_S, now=later).studies == [STUDY]


@pytest.mark.parametrize(("case", "superseded"), [
    ("copy on its way", False), ("copy dropped", False), ("copy not recorded", False),
    ("later copy confirmed", True), ("earlier copy confirmed", False), ("dead copy delivered the rest", True),
    ("destination removed since", True)])
def test_only_what_confirmed_recorded_copies_after_it_carried_settles_an_item(
        spool: Path, tmp_path: Path, case: str, superseded: bool) -> None:
    """Which copies vouch for the item at its deadline: those the report records, after it in
    its lineage, for what the destination confirmed of them (all they carried once gone, their
    ``delivered`` while still in the outbox or dead letters; nothing once dropped). Else the
    item is dead-lettered as before: an admin can still drop it, nothing is lost."""
    from mammocad.worker.outbox_delivery import attempt
    from tests.worker.conftest import StoreSCP

    files, outbox = StudyFiles(spool, STUDY), Outbox(spool)
    own = _own_item(outbox, files)
    # Never started: its port refuses, as a PACS that went away does.
    settings = make_settings(spool, [StoreSCP(tmp_path / "pacs").destination("pacs")])
    target = own
    if case == "copy not recorded":  # the resend's record write failed
        kept = [files.layout.outputs_dir(STUDY, "r1" if sop.startswith("1.") else "r2") / f"{sop}.dcm"
                for sop in CURRENT]
        copy = outbox.put("pacs", "r2.s1", [dcmread(p) for p in kept])
        assert copy is not None
        outbox.complete(copy)
    elif case == "dead copy delivered the rest":  # r2 got its SR through, the copy the rest
        own.delivered = ["2.3"]
        outbox.save(own)
        (copy,) = resend(settings, STUDY, ["pacs"])
        copy.delivered = ["2.1", "2.2"]
        outbox.save(copy)
        outbox.dead_letter(copy)
    elif case in ("later copy confirmed", "earlier copy confirmed"):
        (first,) = resend(settings, STUDY, ["pacs"])
        if case == "earlier copy confirmed":
            outbox.complete(first)
        (second,) = resend(settings, STUDY, ["pacs"])
        assert (first.item_id, second.item_id) == ("r2.s1", "r2.s2")
        target = _past_deadline(outbox, first if case == "later copy confirmed" else second)
        if case == "later copy confirmed":
            outbox.complete(second)
    else:
        (copy,) = resend(settings, STUDY, ["pacs"])
        if case == "copy dropped":
            outbox.drop(copy, STUDY)
        elif case == "destination removed since":  # dead-lettered at once, unless settled
            outbox.complete(copy)
            settings = make_settings(spool, [])

    assert attempt(settings, outbox, target) == ("superseded" if superseded else "dead", None)
    assert (outbox.get("pacs", target.item_id, dead=True) is None) is superseded
    assert outbox.get("pacs", target.item_id) is None
