"""How old a study is, for retention: the times its records hold, not its files' mtimes.

A security officer reads ``node.retention_days`` as "kept this long after the study was received
and finished". File mtimes do not say that: a backup restore, an ``rsync`` without ``-t`` or a
``touch`` sets them to now (old studies look new and stay), a restore that keeps them and a
clock corrected forwards make new studies look old. The spool's records carry the times
themselves, written once by whoever did the step:

- ``complete.json`` ``declared_at``: the node declared the study complete (all its images received;
  declared again, later, when a late image arrives);
- each ``reports/<key>.json`` ``created``: the results worker finished a report (a late image
  makes another; the newest covers every image the study holds, or retention keeps it anyway);
- ``reanalysis.json`` ``requested_at``: an admin asked for the study to be analysed again.

The study's age counts from the newest of these. A record without its time (written by a
release before the field, or unreadable) cannot say it is old, so the study's files decide as
before: its age is the newest of the recorded times and the newest mtime of anything in the
folder. A folder with no record at all (a study not finalised yet, which retention keeps
anyway; a set-aside ``other/`` folder, whose objects are never analysed) is aged by mtime.
:class:`StudyAge` says which was used, so a pass can count them (``prune_age_from_mtime``).

The audit trail holds receive times too, but it may be off, rotated or on another host, and a
report's ``created`` already comes after every image it covers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mammocad.spool.records import RecordError
from mammocad.spool.records.analysis import CompletionRecord, ReanalysisRecord
from mammocad.spool.records.report import ReportRecord


@dataclass(frozen=True)
class StudyAge:
    """When a study folder last had something happen to it (seconds since the epoch).

    ``by_mtime``: some record of it holds no time, or it has none: ``when`` includes the
    newest mtime of its files, which a restore or ``touch`` moves.
    """

    when: float
    by_mtime: bool


def recorded_times(folder: Path) -> tuple[list[float], bool]:
    """(the times the study's records hold, whether a record present holds none).

    ``folder``: a study folder, in ``studies/`` or renamed into ``tmp/``. A record that is
    absent is not missing a time: ``complete.json`` and ``reanalysis.json`` are optional.
    """
    times: list[float] = []
    untimed = False
    records: list[tuple[Path, Callable[[Path], float]]] = [
        (folder / "complete.json", lambda p: CompletionRecord.read(p).declared_at),
        (folder / "reanalysis.json", lambda p: ReanalysisRecord.read(p).requested_at),
        *((p, lambda p: ReportRecord.read(p).created) for p in sorted((folder / "reports").glob("*.json")))]
    for path, read in records:
        try:
            when = read(path)
        except FileNotFoundError:
            continue
        except (OSError, RecordError):
            when = 0.0
        if when > 0:
            times.append(when)
        else:
            untimed = True
    return times, untimed


def study_age(folder: Path, newest_mtime: float) -> StudyAge:
    """The study's age by its records (module docstring); ``newest_mtime``: the newest mtime
    of the folder and anything in it, used only where the records cannot say."""
    times, untimed = recorded_times(folder)
    if times and not untimed:
        return StudyAge(max(times), by_mtime=False)
    return StudyAge(max([*times, newest_mtime]), by_mtime=True)
