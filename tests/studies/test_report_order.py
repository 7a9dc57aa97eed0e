"""Which of a study's reports is the newest, on a real spool on disk.

The newest report drives `studies resend`, a late report's catch-up, `studies show` and an
amended report's predecessor. It used to be the file with the latest mtime (or the latest
``created``, the wall clock's): a backup restore, an rsync without -t, `touch` or a clock
step made an older report the newest. Records now carry their place (``sequence``), given
when first written; records from before it keep the mtime order, before every numbered one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mammocad.spool.catch_up import lineage
from mammocad.spool.records.report import ReportRecord
from mammocad.spool.studies import StudyFiles, latest_report
from mammocad.studies.status import study_status

STUDY = "1.2.826.0.1.3680043.8.498.1"
A, B, C = (f"1.2.826.0.1.3680043.8.498.1{n}" for n in (1, 2, 3))


def _record(key: str, images: list[str], created: float) -> ReportRecord:
    return ReportRecord(report_key=key, sop_uids=tuple(images), model_name="m", model_version="1",
                        destinations={"pacs": key}, created=created)


def _set_mtime(files: StudyFiles, key: str, when: float) -> None:
    os.utime(files.report(key), (when, when))


def _keys(files: StudyFiles) -> list[str]:
    return [r.report_key for r in files.reports()]


def test_the_report_written_last_stays_the_newest_whatever_the_file_dates_and_clock(tmp_path: Path) -> None:
    """r2 (late image C) was written after r1, but the clock had stepped back (its ``created``
    is earlier) and a restore gave r1's file the later mtime."""
    files = StudyFiles(tmp_path / "spool", STUDY)
    files.write_report(_record("r1", [A, B], created=2000.0))
    files.write_report(_record("r2", [A, B, C], created=1000.0))
    _set_mtime(files, "r1", 3000.0)
    _set_mtime(files, "r2", 1000.0)
    assert [r.sequence for r in files.reports()] == [1, 2]
    assert _keys(files) == ["r1", "r2"]
    newest = latest_report(files)
    assert newest is not None and newest.report_key == "r2"
    assert [r.report_key for r in lineage(files, frozenset({A, B, C}))] == ["r2", "r1"]
    status = study_status(tmp_path / "spool", STUDY)
    assert (status.report, status.report_images) == ("r2", 3)


def test_a_rewritten_record_keeps_its_place(tmp_path: Path) -> None:
    """`studies resend` names a copy in the newest record; rewriting an older one (or the same)
    does not move it: its mtime is new, its number is not."""
    files = StudyFiles(tmp_path / "spool", STUDY)
    files.write_report(_record("r1", [A, B], created=1.0))
    files.write_report(_record("r2", [A, B, C], created=2.0))
    files.write_report(ReportRecord.read(files.report("r1")).with_item("archive", "r1.s1", ["1.2.9"]))
    files.write_report(_record("r1", [A, B], created=1.0))  # a caller that built it anew: same place
    assert _keys(files) == ["r1", "r2"]
    assert [r.sequence for r in files.reports()] == [1, 2]


def _legacy(files: StudyFiles, key: str, images: list[str], mtime: float) -> None:
    """A record as releases before ``sequence`` wrote it."""
    data = _record(key, images, created=0.0).to_json()
    del data["sequence"]
    path = files.report(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    _set_mtime(files, key, mtime)


def test_records_from_before_the_number_keep_the_mtime_order_and_come_first(tmp_path: Path) -> None:
    files = StudyFiles(tmp_path / "spool", STUDY)
    _legacy(files, "old2", [A, B], mtime=2000.0)
    _legacy(files, "old1", [A], mtime=1000.0)
    assert _keys(files) == ["old1", "old2"]
    files.write_report(_record("new", [A, B, C], created=3.0))
    _set_mtime(files, "new", 10.0)  # the new record's file dated before both
    assert _keys(files) == ["old1", "old2", "new"]
    assert ReportRecord.read(files.report("new")).sequence == 1

    # Rewriting an old record keeps its only order: its mtime.
    files.write_report(ReportRecord.read(files.report("old1")).with_item("archive", "old1.s1", []))
    assert files.report("old1").stat().st_mtime == 1000.0
    assert _keys(files) == ["old1", "old2", "new"]
