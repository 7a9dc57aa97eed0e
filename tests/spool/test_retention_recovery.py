"""Retention passes in real processes: one pass at a time (the spool's prune lock), and what a
killed pass left in ``tmp/`` finished or put back by the next one."""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mammocad.audit import AuditTrail, Identity
from mammocad.spool.layout import Spool, atomic_write_json
from mammocad.spool.records.pruned import PrunedRecord
from mammocad.spool.retention import DAY_S, prune
from tests import processes
from tests.audit.schema import problems
from tests.spool.prune_script import child_env, prune_held_at
from tests.spool.test_retention import NOW, OLD, _delivered_study, _old_set_aside, _study

_RUNNING_PASS = """
import sys
from mammocad.spool import retention

measure = retention._age_and_size

def stop_here(folder):  # a pass at work on its first study, until the test kills it
    print("pruning", flush=True)
    sys.stdin.read()
    return measure(folder)

retention._age_and_size = stop_here
retention.prune(sys.argv[1], 30 * retention.DAY_S)
"""


@contextmanager
def running_pass(spool: Path) -> Iterator[subprocess.Popen[str]]:
    """A prune pass in another live process, stopped inside its first study until killed."""
    other = processes.spawn([sys.executable, "-c", _RUNNING_PASS, str(spool)], name="prune-pass", env=child_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "pruning"
        yield other
    finally:
        other.kill()
        other.wait(timeout=60)


def test_a_pass_skips_while_another_process_is_pruning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An admin's `spool prune` and the results worker's hourly pass ran at once: both put back,
    expired and audited the same folders. The second one now does nothing and says so."""
    spool = Spool(tmp_path / "spool").create()
    folder = _study(spool.root, "1.1", reported=2)
    config = tmp_path / "mammocad.toml"
    config.write_text(f'[node]\nspool_dir = "{spool.root}"\nretention_days = 30\n')
    with running_pass(spool.root) as other:
        with caplog.at_level(logging.INFO, logger="mammocad"):
            report = prune(spool.root, 30 * DAY_S, now=NOW)
            dry = prune(spool.root, 30 * DAY_S, now=NOW, dry_run=True)
        assert folder.is_dir() and report.studies == [] == dry.studies and report.skipped and dry.skipped
        assert [r.getMessage() for r in caplog.records] == ["prune_skipped", "prune_skipped"]
        out = subprocess.run([sys.executable, "-m", "mammocad", "--config", str(config), "spool", "prune"],
                             capture_output=True, text=True, env=child_env(), timeout=60)
        assert out.returncode == 0, out.stderr
        assert "another prune is running" in out.stdout and "nothing was done" in out.stdout and folder.is_dir()

        other.send_signal(signal.SIGKILL)  # killed midway: the kernel drops what it held
        other.wait(timeout=60)
        done = prune(spool.root, 30 * DAY_S, now=NOW)
    assert not done.skipped and done.studies == ["1.1"] and not folder.exists()


_KILLED_PASS = """
import os, shutil, signal, sys
from pathlib import Path
from mammocad.spool import retention

def die():
    os.kill(os.getpid(), signal.SIGKILL)

stage = sys.argv[2]
why_kept, remember = retention._why_kept, retention._remember
if stage == "renamed":  # the study renamed into tmp/, about to be checked again
    retention._why_kept = lambda spool, folder: die() if folder.parent.name == "tmp" else why_kept(spool, folder)
elif stage == "set-aside renamed":
    retention._arrived = lambda folder, cutoff: die()
elif stage == "recorded":  # pruned/<study>.json written, not audited yet
    retention._remember = lambda spool, uid: lambda moved: (remember(spool, uid)(moved), die())
elif stage == "deleting":  # audited, renamed for deletion, one file deleted
    shutil.rmtree = lambda path, **kw: (next(Path(path).rglob("*.dcm")).unlink(), die())
trail = None
if stage == "audited":  # the audit record written to the file, not yet renamed for deletion
    from mammocad.audit import AuditTrail, Identity

    trail = AuditTrail(Identity.make("MAMMOCAD", program="mammocad-worker"), file=sys.argv[3])
    emit = trail.emit
    trail.emit = lambda message: (emit(message), trail.close(), die())
retention.prune(sys.argv[1], 30 * retention.DAY_S, trail=trail)
sys.exit(3)  # the stage was never reached
"""


def _killed_pass(spool: Path, stage: str, *args: str) -> list[Path]:
    """Run a prune pass in another process, SIGKILL-ed at ``stage``; what it left in ``tmp/``."""
    done = subprocess.run([sys.executable, "-c", _KILLED_PASS, str(spool), stage, *args], capture_output=True,
                          text=True, env=child_env(), timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    return sorted(p for p in (spool / "tmp").iterdir() if p.is_dir())


def _trail(path: Path) -> AuditTrail:
    return AuditTrail(Identity.make("MAMMOCAD", program="mammocad-worker"), file=path)


def _deleted(audit: Path) -> list[tuple[str | None, list[tuple[str | None, str | None]]]]:
    """(study, [(SOP class, count)]) of each DICOM Study Deleted record in ``audit``."""
    out = []
    for line in audit.read_bytes().splitlines() if audit.exists() else []:
        assert problems(line) == []
        for obj in ET.fromstring(line).iter("ParticipantObjectIdentification"):
            if obj.get("ParticipantObjectTypeCodeRole") == "3":
                out.append((obj.get("ParticipantObjectID"),
                            [(c.get("UID"), c.get("NumberOfInstances")) for c in obj.iter("SOPClass")]))
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_pass_killed_after_writing_the_record_is_finished_and_audited_once(tmp_path: Path) -> None:
    """Killed between pruned/<study>.json and the delete: the images stayed in tmp/ for good (no
    pass looked there), and no Study Deleted record was ever written. The next pass deletes them
    and audits it; a pass killed while deleting after the audit is finished without a second."""
    spool = tmp_path / "spool"
    study, folder = _delivered_study(spool)
    uid = str(study[0].StudyInstanceUID)
    (left,) = _killed_pass(spool, "recorded")
    assert left.name.startswith(f".pruned-{uid}-") and not folder.exists() and Spool(spool).pruned(uid) is not None

    audit = tmp_path / "audit.log"
    trail = _trail(audit)
    done = prune(spool, 30 * DAY_S, now=NOW, trail=trail)
    again = prune(spool, 30 * DAY_S, now=NOW, trail=trail)
    trail.close()
    assert not any((spool / "tmp").iterdir()) and _deleted(audit) == [(uid, [(str(study[0].SOPClassUID), "4")])]
    assert done.recovered == [(uid, "deleted")] and again.recovered == []

    second, folder = _delivered_study(tmp_path / "spool2")
    (left,) = _killed_pass(folder.parents[1], "deleting")
    assert left.name.startswith(".prune-deleting-") and len(list(left.rglob("*.dcm"))) == 3
    trail = _trail(tmp_path / "audit2.log")
    done = prune(folder.parents[1], 30 * DAY_S, now=NOW, trail=trail)
    trail.close()
    assert not left.exists() and _deleted(tmp_path / "audit2.log") == []  # audited before the rename
    assert done.recovered == [(str(second[0].StudyInstanceUID), "deleted")]


def test_a_pass_killed_after_the_rename_puts_the_study_back(tmp_path: Path) -> None:
    """Killed after the rename, before the record: nothing says the study was ever checked, so it
    goes back, whole, though an older record of the study (pruned once before) exists; then
    pruned again by the usual rules."""
    spool = tmp_path / "spool"
    study, folder = _delivered_study(spool)
    uid = str(study[0].StudyInstanceUID)
    atomic_write_json(Spool(spool).pruned_path(uid), PrunedRecord(("1.2.3.4",), 1, OLD - DAY_S).to_json())
    before = _files(folder)
    (left,) = _killed_pass(spool, "renamed")
    assert not folder.exists() and _files(left) == before

    audit = tmp_path / "audit.log"
    trail = _trail(audit)
    done = prune(spool, 60 * DAY_S, now=NOW, trail=trail)  # back, and too young for 60 days
    assert _files(folder) == before and not any((spool / "tmp").iterdir()) and _deleted(audit) == []
    assert done.recovered == [(uid, "put back")] and done.studies == []
    assert prune(spool, 30 * DAY_S, now=NOW, trail=trail).studies == [uid]
    trail.close()
    assert [s for s, _ in _deleted(audit)] == [uid]


def test_a_pass_killed_after_the_record_while_images_arrived_keeps_the_new_ones(tmp_path: Path) -> None:
    """Killed after the record; meanwhile the node stored a new image of the study (a new
    folder). The record already counts the old reports, so the old folder goes (as the pass
    would have done) and the new image stays a study of its own, numbered after the record."""
    spool = tmp_path / "spool"
    study, folder = _delivered_study(spool)
    uid = str(study[0].StudyInstanceUID)
    _killed_pass(spool, "recorded")
    (folder / "images").mkdir(parents=True)
    (folder / "images" / f"{uid}.99.dcm").write_bytes(b"new")
    record = Spool(spool).pruned(uid)
    trail = _trail(tmp_path / "audit.log")
    done = prune(spool, 30 * DAY_S, now=NOW, trail=trail)
    trail.close()
    assert _files(folder) == {f"images/{uid}.99.dcm": b"new"} and not any((spool / "tmp").iterdir())
    assert Spool(spool).pruned(uid) == record and [s for s, _ in _deleted(tmp_path / "audit.log")] == [uid]
    assert done.recovered == [(uid, "deleted")]


def test_a_pass_killed_after_renaming_a_set_aside_folder_puts_it_back_in_other(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool").create()
    folder = _old_set_aside(spool, "9.1", b"aside")
    (left,) = _killed_pass(spool.root, "set-aside renamed")
    assert left.name.startswith(".pruned-9.1-") and not folder.exists()
    config = tmp_path / "mammocad.toml"
    config.write_text(f'[node]\nspool_dir = "{spool.root}"\nretention_days = 60\n')
    out = subprocess.run([sys.executable, "-m", "mammocad", "--config", str(config), "spool", "prune", "--dry-run"],
                         capture_output=True, text=True, env=child_env(), timeout=60)
    assert out.returncode == 0 and "would finish an interrupted prune of 9.1: would be put back" in out.stdout
    assert left.is_dir() and not folder.exists()  # a dry run changes nothing
    done = prune(spool.root, 60 * DAY_S, now=NOW)
    assert _files(folder) == {"9.1.1.dcm": b"aside"} and not (spool.studies / "9.1").exists()
    assert done.recovered == [("9.1", "put back")]


def test_what_a_pass_before_the_deleting_rename_left_half_deleted_is_finished(tmp_path: Path) -> None:
    """Before ``.prune-deleting-``, a pass killed while deleting left ``.pruned-<study>-*`` with
    some files gone (here its reports): its images are in the record, so it is finished, not
    put back as a study without reports that would be analysed and reported again."""
    spool = Spool(tmp_path / "spool").create()
    folder = _study(spool.root, "1.1", reported=2)
    atomic_write_json(spool.pruned_path("1.1"), PrunedRecord(("1.1.0", "1.1.1"), 1, OLD).to_json())
    shutil.rmtree(folder / "reports")
    left = spool.tmp / ".pruned-1.1-0a1b2c3d"
    folder.rename(left)
    done = prune(spool.root, 30 * DAY_S, now=NOW)
    assert not left.exists() and not folder.exists() and done.recovered == [("1.1", "deleted")]


def test_a_prune_command_stopped_midway_lists_what_it_removed(tmp_path: Path) -> None:
    """Ctrl-C while `spool prune` works on its second study: it exited 130 saying nothing, so the
    admin could not tell it had removed the first one. It now lists it, and says what to do."""
    spool = Spool(tmp_path / "spool").create()
    for uid in ("1.1", "1.2"):
        _study(spool.root, uid, reported=2)
    config = tmp_path / "mammocad.toml"
    config.write_text(f'[node]\nspool_dir = "{spool.root}"\nretention_days = 30\n')
    with prune_held_at(config, "1.2") as command:  # the admin presses Ctrl-C while the pass is there
        command.send_signal(signal.SIGINT)
        out, err = command.communicate(timeout=60)
    assert command.returncode == 130, err
    assert "removed before it stopped: 1 studies" in out and "removed study 1.1\n" in out and "1.2" not in out
    assert "run `mammocad spool prune` again" in err and "Traceback" not in err
    assert not (spool.studies / "1.1").exists() and (spool.studies / "1.2").is_dir()


def test_a_pass_killed_between_the_audit_record_and_the_delete_is_audited_once(tmp_path: Path) -> None:
    """Killed after the Study Deleted record reached the audit file, before the folder was
    renamed for deletion: the next pass finished the delete and audited it a second time (a
    set-aside folder was even put back, to be pruned and audited again). The record is now one
    per prune of one folder: the next pass finds it and deletes without a second."""
    study, folder = _delivered_study(tmp_path / "spool")
    audit = tmp_path / "audit.log"
    (left,) = _killed_pass(folder.parents[1], "audited", str(audit))
    assert left.name.startswith(".pruned-") and len(_deleted(audit)) == 1
    trail = _trail(audit)
    done = prune(folder.parents[1], 30 * DAY_S, now=NOW, trail=trail)
    trail.close()
    uid = str(study[0].StudyInstanceUID)
    assert _deleted(audit) == [(uid, [(str(study[0].SOPClassUID), "4")])] and not left.exists()
    assert done.recovered == [(uid, "deleted")] and not folder.exists()

    spool = Spool(tmp_path / "spool2").create()
    aside = _old_set_aside(spool, "9.1", b"aside")
    audit = tmp_path / "audit2.log"
    (left,) = _killed_pass(spool.root, "audited", str(audit))
    trail = _trail(audit)
    done = prune(spool.root, 30 * DAY_S, now=NOW, trail=trail)
    again = prune(spool.root, 30 * DAY_S, now=NOW, trail=trail)
    trail.close()
    assert [s for s, _ in _deleted(audit)] == ["9.1"] and not left.exists() and not aside.exists()
    assert done.recovered == [("9.1", "deleted")] and again.other == []


def test_a_record_lost_with_the_killed_pass_is_written_by_the_next(tmp_path: Path) -> None:
    """The trail writes asynchronously: a pass killed right after queueing its record may never
    have written it. The next pass looks for it in the audit file and writes it when absent."""
    study, folder = _delivered_study(tmp_path / "spool")
    (left,) = _killed_pass(folder.parents[1], "audited", str(tmp_path / "lost.log"))
    audit = tmp_path / "audit.log"  # another file: the killed pass's record is not in it
    trail = _trail(audit)
    done = prune(folder.parents[1], 30 * DAY_S, now=NOW, trail=trail)
    trail.close()
    assert [s for s, _ in _deleted(audit)] == [str(study[0].StudyInstanceUID)] and not left.exists()
    assert done.recovered == [(str(study[0].StudyInstanceUID), "deleted")]
