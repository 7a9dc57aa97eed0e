"""Spool retention: only studies whose results every destination confirmed, and old enough, go."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom import Dataset

from mammocad.spool.layout import Spool
from mammocad.spool.outbox import Outbox
from mammocad.spool.retention import DAY_S, prune
from tests.factories import make_four_view_study
from tests.log_lines import parse

NOW = time.time()
OLD = NOW - 40 * DAY_S


def _study(spool: Path, uid: str, *, images: int = 2, reported: int | None = None, item: str | None = None,
           age: float = OLD) -> Path:
    """A study folder with images, results and (optionally) a report naming outbox item ``item``."""
    root = spool / "studies" / uid
    sops = [f"{uid}.{i}" for i in range(images)]
    for sop in sops:
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "images" / f"{sop}.dcm").write_bytes(b"\0" * 1000)
        (root / "results").mkdir(exist_ok=True)
        (root / "results" / f"{sop}.json").write_text("{}")
    if reported is not None:
        (root / "reports").mkdir()
        report = {"sop_uids": sops[:reported], "destinations": {"pacs": item or f"key-{uid}"}}
        (root / "reports" / f"key-{uid}.json").write_text(json.dumps(report))
    _age(root, age)
    return root


def _age(folder: Path, when: float) -> None:
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (when, when))


def _old_set_aside(spool: Spool, uid: str, data: bytes) -> Path:
    """``other/<uid>/`` holding one set-aside object ``<uid>.1.dcm``, untouched since OLD."""
    folder = spool.other / uid
    folder.mkdir(parents=True)
    (folder / f"{uid}.1.dcm").write_bytes(data)
    _age(folder, OLD)
    return folder


def test_only_delivered_old_studies_and_old_set_aside_objects_go(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    Spool(spool).create()
    _study(spool, "1.1", reported=2)                                  # delivered, old: goes
    _study(spool, "1.2", reported=2, item="waiting")                  # results still owed: stays
    (spool / "outbox" / "pacs" / "waiting").mkdir(parents=True)
    _study(spool, "1.3", reported=2, item="dead")                     # dead-lettered: stays
    (spool / "deadletter" / "pacs" / "dead").mkdir(parents=True)
    _study(spool, "1.4", reported=None)                               # never finalised: stays
    _study(spool, "1.5", images=3, reported=2)                        # a late image unreported: stays
    _study(spool, "1.6", reported=2, age=NOW - 2 * DAY_S)             # delivered but recent: stays
    late = _study(spool, "1.7", reported=2)                           # old study, result touched today
    os.utime(late / "results" / "1.7.0.json", (NOW, NOW))
    other_old = spool / "other" / "9.1"
    other_old.mkdir(parents=True)
    (other_old / "9.1.1.dcm").write_bytes(b"x" * 500)
    _age(other_old, OLD)
    other_new = spool / "other" / "9.2"
    other_new.mkdir(parents=True)
    (other_new / "9.2.1.dcm").write_bytes(b"x")

    expected_bytes = sum(f.stat().st_size for d in (spool / "studies" / "1.1", other_old)
                         for f in d.rglob("*") if f.is_file())
    dry = prune(spool, 30 * DAY_S, dry_run=True, now=NOW)
    assert dry.studies == ["1.1"] and dry.other == ["9.1"] and dry.bytes == expected_bytes > 2500
    assert (spool / "studies" / "1.1").is_dir() and other_old.is_dir()  # dry run deletes nothing

    done = prune(spool, 30 * DAY_S, now=NOW)
    assert done.studies == ["1.1"] and done.other == ["9.1"]
    left = sorted(p.name for p in (spool / "studies").iterdir())
    assert left == ["1.2", "1.3", "1.4", "1.5", "1.6", "1.7"]
    assert not other_old.exists() and other_new.is_dir()
    assert done.kept == {"1.2": "results for pacs still in outbox/", "1.3": "results for pacs still in deadletter/",
                         "1.4": "never finalised (no report)", "1.5": "1 image(s) in no report"}
    assert not [p for p in (spool / "tmp").iterdir()], "the renamed folders are deleted"

    shutil.rmtree(spool / "outbox" / "pacs" / "waiting")  # delivered at last
    assert prune(spool, 30 * DAY_S, now=NOW).studies == ["1.2"]


def test_prune_command(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    Spool(spool).create()
    _study(spool, "1.1", reported=2)
    _study(spool, "1.4", reported=None)
    config = tmp_path / "mammocad.toml"
    config.write_text(f'[node]\nspool_dir = "{spool}"\nretention_days = 30\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
    exe = [sys.executable, "-m", "mammocad", "--config", str(config), "spool", "prune"]
    out = subprocess.run([*exe, "--dry-run"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "would remove 1 studies" in out.stdout and "kept 1.4: never finalised" in out.stdout
    assert "2 studies aged by their files' mtimes" in out.stdout  # their reports hold no time
    assert (spool / "studies" / "1.1").is_dir()
    out = subprocess.run(exe, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0 and "removed 1 studies" in out.stdout
    assert not (spool / "studies" / "1.1").exists() and (spool / "studies" / "1.4").is_dir()
    out = subprocess.run([*exe, "--days", "0"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and "keep everything" in out.stderr


@pytest.mark.parametrize("dry_run", [False, True])
def test_prune_command_on_a_spool_it_cannot_write_says_what_to_do(tmp_path: Path, dry_run: bool) -> None:
    """An admin ran `spool prune` on a spool this account cannot write (read-only, owned by the
    service account): it stopped with a traceback. Now one line names the path and what to do,
    the event is logged, and the exit status is 1 (a failed operation). Real paths that fail for
    root too: tmp/ under a plain file, then prune.lock that is a folder."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
    locked = Spool(tmp_path / "spool").create()
    locked.prune_lock.mkdir()  # os.open(..., O_RDONLY | O_CREAT) on it: EISDIR, as EACCES would be
    for spool_dir, path in ((blocker / "spool", blocker / "spool"), (locked.root, locked.prune_lock)):
        config = tmp_path / "mammocad.toml"
        config.write_text(f'[node]\nspool_dir = "{spool_dir}"\nretention_days = 30\n')
        exe = [sys.executable, "-m", "mammocad", "--config", str(config), "spool", "prune"]
        out = subprocess.run([*exe, "--dry-run"] if dry_run else exe, capture_output=True, text=True, env=env,
                             timeout=60)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        line = next(line for line in out.stderr.splitlines() if line.startswith("mammocad: error:"))
        assert f"cannot prune {spool_dir}" in line and "service user" in line
        assert f"check the permissions of {path}" in line
        (logged,) = [parse(line) for line in out.stderr.splitlines() if "event=prune_failed" in line]
        assert logged["level"] == "ERROR" and logged["path"] == str(path) and out.stdout == ""


def test_an_image_arriving_while_its_study_is_pruned_is_never_deleted(tmp_path: Path) -> None:
    """Retention checked the study, then the node committed an image (and answered Success)."""
    from mammocad.spool.retention import _remove, _why_kept

    spool = Spool(tmp_path / "spool").create()
    folder = _study(spool.root, "1.2.3", reported=2)
    (folder / "images" / "1.2.3.9.dcm").write_bytes(b"late")  # between the checks and the rename
    assert not _remove(spool, folder, lambda moved: _why_kept(spool, moved))
    assert (folder / "images" / "1.2.3.9.dcm").read_bytes() == b"late"
    assert len(list((folder / "reports").glob("*.json"))) == 1  # the rest is back too

    def node_commits_after_the_rename(moved: Path) -> str | None:
        (folder / "images").mkdir(parents=True)
        (folder / "images" / "1.2.3.10.dcm").write_bytes(b"later")
        return _why_kept(spool, moved)

    (folder / "images" / "1.2.3.9.dcm").unlink()
    assert not _remove(spool, folder, node_commits_after_the_rename)
    assert (folder / "images" / "1.2.3.10.dcm").exists() and len(list((folder / "images").glob("*.dcm"))) == 3
    assert list((folder / "reports").glob("*.json")) and not list(spool.tmp.glob(".pruned-*"))


def test_a_study_folder_the_node_creates_while_it_is_put_back_is_merged(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An image arrived after the checks (the study goes back), and the node created the study
    folder again between the look and the rename that puts it back: the rename failed on a
    folder that was not empty and the pass stopped there, every later study left unpruned.
    Now the folder is merged back file by file, and the pass goes on."""
    spool = Spool(tmp_path / "spool").create()
    folder = _study(spool.root, "1.1", reported=2)
    _study(spool.root, "1.2", reported=2)
    before = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    real_rename = os.rename

    def node_stores_meanwhile(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src) == folder and Path(dst).parent == spool.tmp:  # the pass renames the study away
            (folder / "images" / "1.1.10.dcm").write_bytes(b"late")  # committed after its checks
        elif Path(dst) == folder and not folder.exists():  # putting it back: one more image first
            (folder / "images").mkdir(parents=True)
            (folder / "images" / "1.1.11.dcm").write_bytes(b"later")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", node_stores_meanwhile)
    done = prune(spool.root, 30 * DAY_S, now=NOW)
    monkeypatch.undo()
    assert done.studies == ["1.2"] and not (spool.studies / "1.2").exists()
    held = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert held == sorted([*before, "images/1.1.10.dcm", "images/1.1.11.dcm"])
    assert (folder / "images" / "1.1.11.dcm").read_bytes() == b"later" and not any(spool.tmp.iterdir())


def test_a_set_aside_object_arriving_while_its_folder_is_pruned_is_never_deleted(tmp_path: Path) -> None:
    """Retention found other/<study> old, then the node committed one more object into it."""
    from mammocad.spool.retention import _arrived, _remove

    spool = Spool(tmp_path / "spool").create()
    folder = _old_set_aside(spool, "9.1", b"old")
    cutoff = NOW - 30 * DAY_S
    assert _arrived(folder, cutoff) is None
    (folder / "9.1.2.dcm").write_bytes(b"late")  # between the age check and the rename
    assert not _remove(spool, folder, lambda moved: _arrived(moved, cutoff))
    assert sorted(p.name for p in folder.iterdir()) == ["9.1.1.dcm", "9.1.2.dcm"]
    assert not list(spool.tmp.glob(".pruned-*"))
    assert prune(spool.root, 30 * DAY_S, now=NOW).other == []  # now recent: kept, and not reported removed


def test_a_study_whose_reanalysis_is_owed_stays(tmp_path: Path) -> None:
    """An admin's re-analysis deleted the old results; the amended report waits for the broker."""
    spool = tmp_path / "spool"
    Spool(spool).create()
    folder = _study(spool, "1.8", reported=2)
    request = {"version": 1, "revision": 1, "sop_uids": ["1.8.0", "1.8.1"], "requested_at": OLD}
    (folder / "reanalysis.json").write_text(json.dumps(request))
    _age(folder, OLD)
    done = prune(spool, 30 * DAY_S, now=NOW)
    assert done.studies == [] and done.kept == {"1.8": "re-analysis pending (no amended report yet)"}
    (folder / "reports" / "key-1.8.r1.json").write_text(json.dumps({"sop_uids": ["1.8.0", "1.8.1"],
                                                                     "destinations": {}}))
    _age(folder, OLD)
    assert prune(spool, 30 * DAY_S, now=NOW).studies == ["1.8"]  # the amended report exists: it may go


def test_a_study_whose_resent_results_are_still_owed_stays(tmp_path: Path) -> None:
    """`studies resend` queued the report again (item ``<key>.s1``, here to a destination the
    report did not name) and the PACS has not confirmed it: the study went, and `studies show`
    then knew nothing of a study still being delivered. It stays until the copy is confirmed."""
    from tests.factories import make_mammogram

    spool = tmp_path / "spool"
    Spool(spool).create()
    folder = _study(spool, "1.9", reported=2)
    item = Outbox(spool).put("archive", "key-1.9.s1", [make_mammogram(rows=64, columns=48)])
    assert item is not None
    _age(folder, OLD)
    done = prune(spool, 30 * DAY_S, now=NOW)
    assert done.studies == [] and done.kept == {"1.9": "results for archive still in outbox/"}
    Outbox(spool).dead_letter(item)
    assert prune(spool, 30 * DAY_S, now=NOW).kept == {"1.9": "results for archive still in deadletter/"}
    dead = Outbox(spool).get("archive", "key-1.9.s1", dead=True)
    assert dead is not None
    shutil.rmtree(dead.path)  # confirmed at last (dropped)
    assert prune(spool, 30 * DAY_S, now=NOW).studies == ["1.9"]


def _delivered_study(spool: Path) -> tuple[list[Dataset], Path]:
    """A delivered four-view study of real DICOM images (headers are what the audit reads), old."""
    Spool(spool).create()
    study = make_four_view_study(rows=64, columns=48)
    folder = _study(spool, str(study[0].StudyInstanceUID), images=4, reported=4)
    for ds, path in zip(study, sorted((folder / "images").glob("*.dcm")), strict=True):
        ds.save_as(path, enforce_file_format=True)  # under the names the report lists
    _age(folder, OLD)
    return study, folder


def test_each_pruned_study_is_audited_as_deleted(tmp_path: Path) -> None:
    """PS3.15 A.5.3.8 DICOM Study Deleted, one per study folder (and set-aside folder) that
    goes, from the process that prunes: the study, its SOP classes and counts, the patient
    ID; nothing for a dry run, a study kept, or one put back because an image arrived."""
    import xml.etree.ElementTree as ET

    from mammocad.audit import AuditTrail, Identity
    from tests.audit.schema import problems
    from tests.factories import make_mammogram

    spool = tmp_path / "spool"
    study, folder = _delivered_study(spool)
    uid = str(study[0].StudyInstanceUID)
    _study(spool, "1.4", reported=None)  # kept: never finalised
    aside = make_mammogram(rows=64, columns=48)
    other = spool / "other" / str(aside.StudyInstanceUID)
    other.mkdir(parents=True)
    aside.save_as(other / f"{aside.SOPInstanceUID}.dcm", enforce_file_format=True)
    _age(folder, OLD)
    _age(other, OLD)
    audit = tmp_path / "audit.log"
    trail = AuditTrail(Identity.make("MAMMOCAD", program="mammocad-worker"), file=audit)

    assert prune(spool, 30 * DAY_S, dry_run=True, now=NOW, trail=trail).studies == [uid]
    done = prune(spool, 30 * DAY_S, now=NOW, trail=trail)
    trail.close()
    assert done.studies == [uid] and done.other == [other.name]
    lines = audit.read_bytes().splitlines()
    assert [problems(line) for line in lines] == [[], []]
    deleted = {}
    for line in lines:
        root = ET.fromstring(line)
        event = root.find("EventIdentification")
        assert event is not None and event.get("EventActionCode") == "D"
        assert event.find("EventID").get("csd-code") == "110105"  # type: ignore[union-attr]
        objects = {o.find("ParticipantObjectIDTypeCode").get("csd-code"): o  # type: ignore[union-attr]
                   for o in root.iter("ParticipantObjectIdentification")}
        assert set(objects) == {"110180", "2"}
        study_object = objects["110180"]
        assert (study_object.get("ParticipantObjectTypeCode"), study_object.get("ParticipantObjectTypeCodeRole")) \
            == ("2", "3")
        assert objects["2"].get("ParticipantObjectID") == "PID-TEST-0001"
        assert str(study[0].PatientName) not in line.decode()  # the patient ID only, as every audit event
        reporter = root.find("ActiveParticipant")
        assert reporter is not None and reporter.get("UserID", "").startswith("mammocad-worker[")
        deleted[study_object.get("ParticipantObjectID")] = [
            (c.get("UID"), c.get("NumberOfInstances")) for c in study_object.iter("SOPClass")]
    assert deleted == {uid: [(str(study[0].SOPClassUID), "4")],
                       str(aside.StudyInstanceUID): [(str(aside.SOPClassUID), "1")]}


_SWEEPER = """
import sys, time
from pathlib import Path
from mammocad.config import load_settings
from mammocad.spool.broker import make_celery
from mammocad.worker import cli
from mammocad.worker.tasks import register_tasks

settings = load_settings(sys.argv[1])
app = make_celery(settings)
register_tasks(app, settings)
cli.PRUNE_INTERVAL_S = 0.0  # the first pass prunes
cli.start_sweeper(app, settings)
folder = Path(sys.argv[2])
tmp = folder.parents[1] / "tmp"

def pruned():  # renamed away at once, deleted once its record is queued
    return not folder.exists() and not any(tmp.iterdir())

deadline = time.monotonic() + 60
while not pruned() and time.monotonic() < deadline:
    time.sleep(0.05)
app.mammocad_audit.close()
sys.exit(0 if pruned() else 3)
"""


def test_the_results_workers_hourly_prune_is_audited(tmp_path: Path) -> None:
    """The results worker's sweeper prunes with the worker's own audit trail (the process that
    deletes is the one that reports it); it deleted studies with no record."""
    spool = tmp_path / "spool"
    study, folder = _delivered_study(spool)
    audit = tmp_path / "audit.log"
    config = tmp_path / "mammocad.toml"
    config.write_text(f'[node]\nspool_dir = "{spool}"\nretention_days = 30\n\n[audit]\nfile = "{audit}"\n\n'
                      '[broker]\nurl = "redis://127.0.0.1:1/0"\n')  # not used: the outbox is empty
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
    done = subprocess.run([sys.executable, "-c", _SWEEPER, str(config), str(folder)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line for line in audit.read_bytes().splitlines() if b'csd-code="110105"' in line]
    assert len(lines) == 1 and str(study[0].StudyInstanceUID).encode() in lines[0]
    assert b'UserID="mammocad-worker[' in lines[0]


def test_the_prune_command_is_audited_and_an_unauditable_admin_deletes_nothing(tmp_path: Path) -> None:
    """`mammocad spool prune` deleted studies with no audit record (the hourly prune had one)."""
    from tests.audit.schema import problems
    from tests.audit.unwritable import mammocad_as_admin, owned_by_the_service, refused_in_one_line

    spool = tmp_path / "spool"
    study, folder = _delivered_study(spool)
    uid = str(study[0].StudyInstanceUID)
    audit = tmp_path / "log" / "audit.log"
    config = tmp_path / "mammocad.toml"
    config.write_text(f'[node]\nspool_dir = "{spool}"\nretention_days = 30\n[audit]\nfile = "{audit}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}

    owned_by_the_service(audit)
    refused = refused_in_one_line(mammocad_as_admin(config, "spool", "prune"), audit)
    assert "nothing was removed" in refused and folder.is_dir()

    audit.unlink()
    exe = [sys.executable, "-m", "mammocad", "--config", str(config), "spool", "prune"]
    out = subprocess.run(exe, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0 and "removed 1 studies" in out.stdout, out.stderr
    assert not folder.exists()
    (line,) = audit.read_bytes().splitlines()
    assert problems(line) == [] and b"110105" in line and uid.encode() in line and b"mammocad-prune" in line


def test_records_of_pruned_studies_expire_unless_their_study_is_back(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """``pruned/<study>.json`` has a bounded life (node.pruned_record_days), as every file
    derived from a study; it used to be kept forever."""
    from mammocad.spool.layout import atomic_write_json
    from mammocad.spool.records.pruned import PrunedRecord

    spool = Spool(tmp_path / "spool").create()
    for uid in ("1.1", "1.2", "1.3"):
        _study(spool.root, uid, reported=2)
    assert prune(spool.root, 30 * DAY_S, now=NOW).studies == ["1.1", "1.2", "1.3"]
    year = time.time() + 366 * DAY_S
    atomic_write_json(spool.pruned_path("1.3"), PrunedRecord(("1.3.0",), 1, year - 10 * DAY_S).to_json())
    _study(spool.root, "1.2", images=1, age=year)  # the study came back: its record numbers its reports
    spool.pruned_path("1.4").write_text("not json")  # unreadable: its file's age counts
    os.utime(spool.pruned_path("1.4"), (NOW, NOW))
    keep_s = 365 * DAY_S

    assert prune(spool.root, 30 * DAY_S, now=year).records == []  # 0: kept, as before
    with caplog.at_level(logging.INFO, logger="mammocad"):
        dry = prune(spool.root, 30 * DAY_S, now=year, pruned_record_s=keep_s, dry_run=True)
    assert dry.records == ["1.1", "1.4"] and spool.pruned("1.1") is not None
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mammocad"):
        done = prune(spool.root, 30 * DAY_S, now=year, pruned_record_s=keep_s)
    assert done.records == ["1.1", "1.4"]
    assert sorted(p.name for p in spool.pruned_dir.iterdir()) == ["1.2.json", "1.3.json"]
    assert spool.pruned("1.1") is None  # an image of study 1.1 is a new study to the node now
    lines = [r for r in caplog.records if r.getMessage() == "pruned_record_expired"]
    assert [(r.study, r.images, r.reports) for r in lines] == [("1.1", 2, 1), ("1.4", None, None)]  # type: ignore[attr-defined]


def test_config_check_refuses_a_negative_pruned_record_age(tmp_path: Path) -> None:
    config = tmp_path / "mammocad.toml"
    config.write_text(f'[node]\nspool_dir = "{tmp_path / "spool"}"\npruned_record_days = -1\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
    out = subprocess.run([sys.executable, "-m", "mammocad", "--config", str(config), "config", "check"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode != 0 and "pruned_record_days" in out.stderr + out.stdout, out.stderr


def test_the_spool_layout_documents_every_path_retention_leaves(tmp_path: Path) -> None:
    """docs/ARCHITECTURE.md's spool table, the reference an admin reads to know what may be
    removed by hand, did not name prune.lock nor the folders a pass leaves in tmp/ (patient
    images, settled by the next pass). Each path is built from the code's own names."""
    from mammocad.spool.retention import DELETING_PREFIX, MOVED_PREFIX

    spool = Spool(tmp_path / "spool")
    table = (Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md").read_text() \
        .split("## Spool layout", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`"): line for line in table.splitlines() if line.startswith("| `")}
    wanted = [spool.prune_lock.relative_to(spool.root).as_posix(),
              spool.pruned_path("1.2").relative_to(spool.root).as_posix().replace("1.2", "<StudyUID>"),
              f"tmp/{MOVED_PREFIX}<StudyUID>-<random>/", f"tmp/{DELETING_PREFIX}<StudyUID>-<random>/"]
    assert [path for path in wanted if path not in rows] == []
    assert "node.pruned_record_days" in rows["pruned/<StudyUID>.json"]  # its expiry
    assert all("next pass" in rows[path] for path in wanted[2:])  # who removes what a killed pass left


def test_a_file_the_node_writes_during_a_merge_back_is_never_replaced_by_the_old_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Putting a folder back file by file looked whether each file was at its place, then
    renamed the old copy there: an image the node committed in between (the same instance sent
    again) was replaced by the old copy. The node's copy now wins, whenever it lands."""
    from mammocad.spool import retention_moves

    spool = Spool(tmp_path / "spool").create()
    folder = _study(spool.root, "1.1", reported=2)
    doomed = spool.tmp / ".pruned-1.1-0a1b2c3d"
    folder.rename(doomed)
    (folder / "images").mkdir(parents=True)  # the node re-created the folder: merged file by file
    (folder / "images" / "1.1.9.dcm").write_bytes(b"new study image")
    real_ensure_dir = retention_moves.ensure_dir

    def node_commits_meanwhile(path: Path) -> None:  # after the look, before the move
        real_ensure_dir(path)
        if path == folder / "images" and not (path / "1.1.0.dcm").exists():
            (path / "1.1.0.dcm").write_bytes(b"sent again")

    monkeypatch.setattr(retention_moves, "ensure_dir", node_commits_meanwhile)
    retention_moves.merge_back(doomed, folder)
    assert (folder / "images" / "1.1.0.dcm").read_bytes() == b"sent again"
    assert (folder / "images" / "1.1.1.dcm").read_bytes() == b"\0" * 1000  # the rest is back
    assert sorted(p.name for p in (folder / "reports").iterdir()) == ["key-1.1.json"] and not doomed.exists()


def test_a_study_that_cannot_be_put_back_does_not_stop_the_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """An image arrived after the checks, so study 1.1 goes back, and putting it back failed
    (an I/O error): the error stopped the pass, study 1.2 stayed and the command showed a
    traceback. Now the pass goes on, one line names the study and the cause, nothing of 1.1 is
    lost (the next pass puts it back), and the command exits 1 saying what to do."""
    from mammocad.cli import main

    spool = Spool(tmp_path / "spool").create()
    folder = _study(spool.root, "1.1", reported=2)
    _study(spool.root, "1.2", reported=2)
    config = tmp_path / "mammocad.toml"
    config.write_text(f'[node]\nspool_dir = "{spool.root}"\nretention_days = 30\n')
    real_rename = os.rename

    def disk_fails_putting_back(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src) == folder and Path(dst).parent == spool.tmp:  # the pass renames the study away
            (folder / "images" / "1.1.9.dcm").write_bytes(b"late")  # committed after its checks
        elif Path(dst) == folder:
            raise OSError(errno.EIO, "Input/output error", str(src))
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", disk_fails_putting_back)
    code = main(["--config", str(config), "spool", "prune"])
    monkeypatch.undo()
    out = capsys.readouterr()
    assert code == 1 and "removed 1 studies" in out.out and "Traceback" not in out.err
    assert not (spool.studies / "1.2").exists()
    assert "could not prune 1.1: OSError: [Errno 5] Input/output error" in out.err
    assert "nothing lost" in out.err and "run `mammocad spool prune` again" in out.err
    (logged,) = [parse(line) for line in out.err.splitlines() if "event=prune_folder_failed" in line]
    assert logged["study"] == "1.1" and "Input/output error" in logged["error"]
    assert logged["left"].startswith("tmp/.pruned-1.1-")

    done = prune(spool.root, 30 * DAY_S, now=NOW)  # the disk is fine again
    assert done.recovered == [("1.1", "put back")] and done.failed == {}
    assert (folder / "images" / "1.1.9.dcm").read_bytes() == b"late" and len(list(folder.rglob("*.json"))) == 3
