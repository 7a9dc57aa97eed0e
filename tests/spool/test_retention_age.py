"""Retention ages a study by the times its records hold, not by its files' mtimes.

A backup restore, an rsync without -t or a `touch` sets a study's files to now (an old study
looked new and stayed for another retention period) or back-dates them (a study finished
yesterday looked old and was deleted). The node's completion, each report and an admin's
re-analysis request record when they happened; only a study whose records hold no time is
aged by mtime, counted in one line a pass. So is a study with a record dated beyond the pass's
clock and a few minutes' tolerance: believing it kept patient data until that time came.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from mammocad.spool.layout import Spool, atomic_write_json
from mammocad.spool.records.analysis import CompletionRecord, ReanalysisRecord
from mammocad.spool.records.pruned import PrunedRecord
from mammocad.spool.records.report import ReportRecord
from mammocad.spool.retention import DAY_S, prune
from mammocad.spool.retention_age import FUTURE_TOLERANCE_S, study_age

NOW = time.time()
OLD = NOW - 40 * DAY_S


def _finished_study(spool: Spool, uid: str, *, recorded: float | None, files_at: float) -> Path:
    """A delivered study of two images (complete, reported, no outbox item) whose records say
    it was finished at ``recorded`` (None: records without their times, as an older release
    wrote them), its files' mtimes set to ``files_at``."""
    folder = spool.study_dir(uid)
    sops = [f"{uid}.{i}" for i in range(2)]
    (folder / "images").mkdir(parents=True)
    (folder / "reports").mkdir()
    for sop in sops:
        (folder / "images" / f"{sop}.dcm").write_bytes(b"\0" * 100)
    report = ReportRecord(report_key=f"key-{uid}", sop_uids=tuple(sops), model_name="m", model_version="1",
                          created=recorded or 0.0, sequence=1).to_json()
    complete = CompletionRecord(sop_uids=tuple(sops), reason="four_views", declared_at=recorded or 0.0).to_json()
    if recorded is None:
        del report["created"], complete["declared_at"]
    (folder / "reports" / f"key-{uid}.json").write_text(json.dumps(report))
    (folder / "complete.json").write_text(json.dumps(complete))
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (files_at, files_at))
    return folder


def test_age_counts_from_the_records_not_from_the_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / "spool").create()
    _finished_study(spool, "1.1", recorded=OLD, files_at=NOW)               # restored / touched: still old
    _finished_study(spool, "1.2", recorded=NOW - DAY_S, files_at=OLD)       # back-dated: finished yesterday
    _finished_study(spool, "1.3", recorded=None, files_at=OLD)              # no time recorded: mtime, old
    _finished_study(spool, "1.4", recorded=None, files_at=NOW)              # no time recorded: mtime, new
    half = _finished_study(spool, "1.5", recorded=OLD, files_at=NOW)        # one record without its time
    (half / "complete.json").write_text("{not json")
    os.utime(half / "complete.json", (NOW, NOW))

    with caplog.at_level(logging.INFO, logger="mammocad"):
        done = prune(spool.root, 30 * DAY_S, now=NOW)
    assert done.studies == ["1.1", "1.3"]
    assert sorted(p.name for p in spool.studies.iterdir()) == ["1.2", "1.4", "1.5"]
    assert done.aged_by_mtime == ["1.3", "1.4", "1.5"] and done.kept == {}
    (line,) = [r for r in caplog.records if r.getMessage() == "prune_age_from_mtime"]
    assert line.studies == 3 and line.other == 0  # type: ignore[attr-defined]


def test_a_study_without_records_is_aged_by_its_files(tmp_path: Path) -> None:
    """Not finalised yet (images only): kept whatever its age, listed as kept once its files are old."""
    spool = Spool(tmp_path / "spool").create()
    folder = spool.study_dir("1.9")
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "1.9.1.dcm").write_bytes(b"image")
    for path in (folder, folder / "images", folder / "images" / "1.9.1.dcm"):
        os.utime(path, (OLD, OLD))
    assert study_age(folder, OLD, now=NOW).by_mtime and study_age(folder, OLD, now=NOW).when == OLD
    done = prune(spool.root, 30 * DAY_S, now=NOW)
    assert done.kept == {"1.9": "never finalised (no report)"} and done.aged_by_mtime == ["1.9"]
    assert prune(spool.root, 30 * DAY_S, now=OLD + DAY_S).kept == {}  # young by its files


def test_the_newest_record_decides(tmp_path: Path) -> None:
    """A late report (or a re-analysis asked for) renews the study, whatever the files say."""
    spool = Spool(tmp_path / "spool").create()
    folder = _finished_study(spool, "1.6", recorded=OLD, files_at=OLD)
    late = ReportRecord(report_key="key-late", sop_uids=("1.6.0", "1.6.1"), model_name="m", model_version="1",
                        created=NOW - DAY_S, sequence=2)
    (folder / "reports" / "key-late.json").write_text(json.dumps(late.to_json()))
    os.utime(folder / "reports" / "key-late.json", (OLD, OLD))
    assert study_age(folder, OLD, now=NOW) == study_age(folder, NOW, now=NOW)  # mtimes are not read
    assert study_age(folder, OLD, now=NOW).when == NOW - DAY_S and not study_age(folder, OLD, now=NOW).by_mtime
    assert prune(spool.root, 30 * DAY_S, now=NOW).studies == []
    assert prune(spool.root, 30 * DAY_S, now=NOW + 30 * DAY_S).studies == ["1.6"]


def test_a_reanalysis_asked_for_while_the_study_is_being_removed_keeps_it(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`mammocad studies reanalyse` wrote reanalysis.json after the pass had checked the study
    (old, delivered, no re-analysis owed) and before it renamed the folder away: the check after
    the rename looked only for images in no report, and the study went, the admin's request with
    it. A record written meanwhile is newer than the cutoff: the study goes back."""
    spool = Spool(tmp_path / "spool").create()
    folder = _finished_study(spool, "1.7", recorded=OLD, files_at=OLD)
    request = ReanalysisRecord(revision=1, sop_uids=("1.7.0", "1.7.1"), requested_at=NOW).to_json()
    real_rename = os.rename

    def admin_asks_meanwhile(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src) == folder and Path(dst).parent == spool.tmp:  # the pass renames the study away
            (folder / "reanalysis.json").write_text(json.dumps(request))
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", admin_asks_meanwhile)
    done = prune(spool.root, 30 * DAY_S, now=NOW)
    monkeypatch.undo()
    assert done.studies == [] and spool.pending_reanalysis("1.7") is not None
    assert spool.pruned("1.7") is None and not any(spool.tmp.iterdir())


def _late_report(folder: Path, created: float) -> None:
    """A second report of the study, written by a results host whose clock said ``created``; its
    file (and the reports folder) dated as the study's other files."""
    late = ReportRecord(report_key="key-late", sop_uids=(f"{folder.name}.0", f"{folder.name}.1"), model_name="m",
                        model_version="1", created=created, sequence=2)
    (folder / "reports" / "key-late.json").write_text(json.dumps(late.to_json()))
    files_at = folder.stat().st_mtime
    for path in (folder / "reports", folder / "reports" / "key-late.json"):
        os.utime(path, (files_at, files_at))


def test_a_record_dated_in_the_future_is_not_believed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A results host whose clock ran ahead (a year; a few minutes more than NTP allows) wrote a
    report's `created` in the future: the study was kept until then, its patient images a year
    past retention. A time within the tolerance is believed; one beyond it is not, and the
    study is aged by its files' mtimes, as for a record without its time, and named."""
    spool = Spool(tmp_path / "spool").create()
    _late_report(_finished_study(spool, "2.1", recorded=OLD, files_at=OLD), NOW + FUTURE_TOLERANCE_S)
    _late_report(_finished_study(spool, "2.2", recorded=OLD, files_at=OLD), NOW + FUTURE_TOLERANCE_S + 1)
    _late_report(_finished_study(spool, "2.3", recorded=OLD, files_at=OLD), NOW + 365 * DAY_S)
    _late_report(_finished_study(spool, "2.4", recorded=OLD, files_at=NOW - DAY_S), NOW + 365 * DAY_S)

    edge = study_age(spool.study_dir("2.1"), OLD, now=NOW)
    assert edge.when == NOW + FUTURE_TOLERANCE_S and not edge.by_mtime and edge.future == ()
    with caplog.at_level(logging.INFO, logger="mammocad"):
        done = prune(spool.root, 30 * DAY_S, now=NOW)
    assert done.studies == ["2.2", "2.3"]  # old by their files; kept before, until their report's time
    assert sorted(p.name for p in spool.studies.iterdir()) == ["2.1", "2.4"]  # believed; young by its files
    assert done.future_dated == {uid: ["reports/key-late.json"] for uid in ("2.2", "2.3", "2.4")}
    assert done.aged_by_mtime == ["2.2", "2.3", "2.4"] and done.kept == {}
    lines = {r.study: r for r in caplog.records if r.getMessage() == "prune_record_in_future"}  # type: ignore[attr-defined]
    assert sorted(lines) == ["2.2", "2.3", "2.4"] and all(r.levelno == logging.WARNING for r in lines.values())
    assert lines["2.3"].records == "reports/key-late.json" and lines["2.3"].ahead_days == 365  # type: ignore[attr-defined]
    (summary,) = [r for r in caplog.records if r.getMessage() == "spool_pruned"]
    assert summary.future_dated == 3  # type: ignore[attr-defined]


def _date_ahead(folder: Path, when: float, *names: str) -> None:
    """Files (or the folder itself, "") written by a clock that said ``when``."""
    for name in names:
        os.utime(folder / name, (when, when))


def test_files_dated_in_the_future_are_not_believed_either(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """Where the files' mtimes decide, a host whose clock was a year ahead (corrected since) dated
    the files it wrote too: the newest mtime kept the study that year all the same. An mtime
    beyond the tolerance does not count; a study with no time to believe at all is kept, saying
    why and what to do, no longer silently until then."""
    spool = Spool(tmp_path / "spool").create()
    ahead = NOW + 365 * DAY_S
    one = _finished_study(spool, "3.1", recorded=OLD, files_at=OLD)
    _late_report(one, ahead)
    _date_ahead(one, ahead, "reports", "reports/key-late.json")       # the images and completion: old
    every = _finished_study(spool, "3.2", recorded=ahead, files_at=ahead)  # records and files, all ahead
    _finished_study(spool, "3.3", recorded=None, files_at=NOW + FUTURE_TOLERANCE_S)      # believed: young
    _finished_study(spool, "3.4", recorded=None, files_at=NOW + FUTURE_TOLERANCE_S + 1)  # not believed

    with caplog.at_level(logging.INFO, logger="mammocad"):
        done = prune(spool.root, 30 * DAY_S, now=NOW)
    assert done.studies == ["3.1"]
    unknown = "no time of it can be believed: its records and files are all dated more than 10 minutes after this " \
              "host's clock"
    assert done.kept == {"3.2": unknown, "3.4": unknown}
    assert done.future_dated == {"3.1": ["reports/key-late.json"], "3.2": ["complete.json", f"reports/key-{every.name}.json"],
                                 "3.4": []}
    lines = {r.study: r for r in caplog.records if r.getMessage() == "prune_record_in_future"}  # type: ignore[attr-defined]
    assert sorted(lines) == ["3.1", "3.2", "3.4"]
    assert lines["3.1"].files_ahead == 2 and not lines["3.1"].kept  # type: ignore[attr-defined]
    assert lines["3.2"].files_ahead == 7 and lines["3.2"].kept and "touch" in lines["3.2"].hint  # type: ignore[attr-defined]


def test_a_pruned_record_dated_in_the_future_expires_by_its_file(tmp_path: Path) -> None:
    """``pruned/<study>.json`` written by a pass whose clock was a year ahead: its ``pruned_at``
    kept it a year past node.pruned_record_days. Within the tolerance it is believed."""
    spool = Spool(tmp_path / "spool").create()
    for uid, pruned_at in (("4.1", NOW + FUTURE_TOLERANCE_S), ("4.2", NOW + FUTURE_TOLERANCE_S + 1),
                           ("4.3", NOW + 365 * DAY_S)):
        atomic_write_json(spool.pruned_path(uid), PrunedRecord((f"{uid}.0",), 1, pruned_at).to_json(), spool.tmp)
        os.utime(spool.pruned_path(uid), (OLD, OLD))  # the file: written 40 days ago
    done = prune(spool.root, 30 * DAY_S, now=NOW, pruned_record_s=30 * DAY_S)
    assert done.records == ["4.2", "4.3"]
    assert spool.pruned("4.1") is not None and spool.pruned("4.3") is None


def test_spool_prune_names_a_study_dated_in_the_future(tmp_path: Path) -> None:
    """The admin running `spool prune` by hand sees which study carried a time it did not believe,
    and what to check, not only a count of studies "aged by their files' mtimes"."""
    import subprocess
    import sys

    spool = Spool(tmp_path / "spool").create()
    _late_report(_finished_study(spool, "2.5", recorded=OLD, files_at=NOW - DAY_S), time.time() + 365 * DAY_S)
    config = tmp_path / "mammocad.toml"
    config.write_text(f'[node]\nspool_dir = "{spool.root}"\nretention_days = 30\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
    out = subprocess.run([sys.executable, "-m", "mammocad", "--config", str(config), "spool", "prune", "--dry-run"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "dated in the future (not believed) 2.5: reports/key-late.json; check the hosts' clocks" in out.stdout
    assert "1 studies aged by their files' mtimes" in out.stdout and spool.study_dir("2.5").is_dir()
