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

A recorded time later than the pruning host's clock allows (``now`` + :data:`FUTURE_TOLERANCE_S`)
is not believed: it was written under a clock that was wrong (a results host a year ahead, a host
whose clock was stepped back since), and believing it kept the study, patient images included,
until that time came, however far ahead. Such a record counts as one without its time (the
files' mtimes decide, as above) and :attr:`StudyAge.future` names it, so the pass can say so.
The same holds for the files: where their mtimes decide, one beyond that limit (written by the
same wrong clock, when one host wrote both) is not believed either; the newest of the others
is. A study with no time that can be believed at all has no age (``when`` is infinite): it is
kept, and the pass says why, rather than deleted on a guess or kept silently until then.

The audit trail holds receive times too, but it may be off, rotated or on another host, and a
report's ``created`` already comes after every image it covers.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from mammocad.logs import log_event
from mammocad.spool.records import RecordError
from mammocad.spool.records.analysis import CompletionRecord, ReanalysisRecord
from mammocad.spool.records.report import ReportRecord

#: How far past the pruning host's clock a recorded time may lie and still be believed (seconds).
#: The hosts of one install (node, results worker, GPU worker) are NTP-synchronised, which keeps
#: them within milliseconds; a host that lost its time source drifts a few seconds a day, and a VM
#: resumed from suspend may be a few minutes off until it resyncs. Ten minutes is well above that,
#: so a sound record is never doubted, and negligible against a retention period of days: a record
#: believed at the edge keeps its study ten minutes longer at most. A time further ahead comes from
#: a clock that was wrong (hours: a host set to local time as if it were UTC; a year: a bad RTC).
FUTURE_TOLERANCE_S = 600.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FutureRecord:
    """A record whose time lies beyond the pruning host's ``now`` + :data:`FUTURE_TOLERANCE_S`."""

    #: The record file, relative to the study folder (``reports/<key>.json``): no patient data.
    name: str
    #: The time it holds (seconds since the epoch), not believed.
    when: float


@dataclass(frozen=True)
class StudyAge:
    """When a study folder last had something happen to it (seconds since the epoch).

    ``by_mtime``: some record of it holds no time we believe (none, unreadable, or in the
    future), or it has none: ``when`` includes the newest believed mtime of its files, which a
    restore or ``touch`` moves. ``future``: the records whose time was not believed because it
    lies beyond ``now`` + :data:`FUTURE_TOLERANCE_S` (each also makes ``by_mtime`` true).
    ``files_ahead``: how many of its entries (the folder, its files and folders) had an mtime
    beyond that limit, not believed, where the mtimes counted. ``when`` is ``math.inf`` when
    nothing of the study holds a time that can be believed (:attr:`unknown`).
    """

    when: float
    by_mtime: bool
    future: tuple[FutureRecord, ...] = ()
    files_ahead: int = 0

    @property
    def unknown(self) -> bool:
        """No record and no file of the study holds a time that can be believed."""
        return math.isinf(self.when)


class RecordedTimes(NamedTuple):
    """What a study's records say of its age (see :func:`recorded_times`)."""

    #: The times believed: each record's, when it holds one no later than the limit.
    times: list[float]
    #: Whether a record present holds no time, or one that cannot be read.
    untimed: bool
    #: The records whose time lies beyond the limit.
    future: list[FutureRecord]


def recorded_times(folder: Path, limit: float) -> RecordedTimes:
    """The times the study's records hold, split by whether they can be believed.

    ``folder``: a study folder, in ``studies/`` or renamed into ``tmp/``. A record that is
    absent is not missing a time: ``complete.json`` and ``reanalysis.json`` are optional.
    ``limit``: the latest time believed (``now`` + :data:`FUTURE_TOLERANCE_S`).
    """
    times: list[float] = []
    future: list[FutureRecord] = []
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
        if when > limit:
            future.append(FutureRecord(path.relative_to(folder).as_posix(), when))
        elif when > 0:
            times.append(when)
        else:
            untimed = True
    return RecordedTimes(times, untimed, future)


def study_age(folder: Path, newest_mtime: float, *, now: float) -> StudyAge:
    """The study's age by its records (module docstring) as the pruning host sees it at ``now``;
    ``newest_mtime``: the newest mtime of the folder and anything in it, used only where the
    records cannot say (a record without its time, or with one beyond ``now`` +
    :data:`FUTURE_TOLERANCE_S`)."""
    limit = now + FUTURE_TOLERANCE_S
    times, untimed, future = recorded_times(folder, limit)
    if times and not untimed and not future:
        return StudyAge(max(times), by_mtime=False)
    if newest_mtime <= limit:
        return StudyAge(max([*times, newest_mtime]), by_mtime=True, future=tuple(future))
    believed, ahead = believed_mtime(folder, limit)
    times += [believed] if believed is not None else []
    return StudyAge(max(times, default=math.inf), by_mtime=True, future=tuple(future), files_ahead=ahead)


def believed_mtime(folder: Path, limit: float) -> tuple[float | None, int]:
    """(the newest mtime no later than ``limit`` of ``folder`` and anything in it, None when
    there is none; how many entries have one later). Walked only when the newest is later: the
    pass's own walk (:func:`~mammocad.spool.retention_moves.age_and_size`) gives the newest alone."""
    believed: float | None = None
    ahead = 0
    for path in [folder, *(Path(root) / name for root, dirs, files in os.walk(folder) for name in dirs + files)]:
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:  # removed meanwhile (the node replaces, a worker cleans up)
            continue
        if mtime > limit:
            ahead += 1
        elif believed is None or mtime > believed:
            believed = mtime
    return believed, ahead


def log_future_dated(uid: str, age: StudyAge, newest_mtime: float, *, now: float, dry_run: bool) -> None:
    """Say that study ``uid`` holds times the pass at ``now`` did not believe (``age.future``,
    ``age.files_ahead``): one WARNING line per study, each pass while they are there, since a
    clock was wrong when they were written and an admin must look at the clocks. Names the study
    UID and the record files only (no patient data)."""
    ahead_days = round((max([newest_mtime, *(r.when for r in age.future)]) - now) / 86400.0, 3)
    hint = ("these times were written under a clock ahead of this host's: the study is aged by its files' "
            "mtimes instead; check that every host of the install keeps time by NTP (timedatectl, chronyc tracking)")
    if age.unknown:
        hint = ("nothing of the study holds a time that can be believed, so retention keeps it: once every host "
                "keeps time by NTP (timedatectl), `touch` the study's folder and its files to age it from now")
    log_event(logger, "prune_record_in_future", logging.WARNING, study=uid,
              records=",".join(r.name for r in age.future), files_ahead=age.files_ahead, ahead_days=ahead_days,
              tolerance_s=FUTURE_TOLERANCE_S, kept=age.unknown, dry_run=dry_run, hint=hint)
