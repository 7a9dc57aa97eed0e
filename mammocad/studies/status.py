"""One line per study: received, analysed, reported, and where each destination stands.

A destination's state for a study comes from the study's newest report (which outbox item
it got) and where that item is now: still in ``outbox/`` → pending, in ``deadletter/`` →
dead, dropped by an admin → dropped, gone → delivered (the outbox deletes an item only
after the destination confirmed every file). Re-sent copies (``studies resend``) count too:
a confirmed one the report records supersedes a dropped item before it, and a dead-lettered
one whose pending objects it carried.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mammocad.spool.layout import Spool
from mammocad.spool.leases import lease_age, lease_path
from mammocad.spool.outbox import Outbox, OutboxItem
from mammocad.spool.records.report import ReportRecord, report_revision
from mammocad.spool.studies import StudyFiles

STATES = ("failed", "pending", "delivered")
#: Worst first: a study shows its worst destination.
_ORDER = {"dead": 0, "pending": 1, "dropped": 2, "delivered": 3}


@dataclass
class StudyStatus:
    study_uid: str
    accession: str = ""
    received: float | None = None
    images: int = 0
    analysed: int = 0
    failed_images: int = 0
    report: str = ""
    revision: int | None = None
    reports: int = 0
    destinations: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: The node's completion reason ("four_views", "timeout"); "" while it waits for images.
    declared: str = ""
    #: Images without a result whose analysis lease is fresh: running on a live worker now.
    analysing: int = 0
    #: The revision of an admin's re-analysis still owed its amended report (``studies
    #: reanalyse``); None when none is. Its old results are gone, so without this the study
    #: looked delivered with fewer images analysed.
    reanalysis: int | None = None
    #: The revision of the admin's re-analysis the newest report answered (None: it answered
    #: none), and how many of its images arrived after the request (reported with it).
    answered: int | None = None
    late_images: int = 0
    #: Of the newest report: its images, those it calls "CAD failed", and the output kinds it
    #: could not build (with why). A destination that asked only for those kinds got nothing.
    report_images: int = 0
    report_failed_images: int = 0
    failed_outputs: dict[str, str] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        """What is wrong with the newest report although it was delivered, with what to do."""
        out = []
        if self.failed_outputs:
            kinds = "; ".join(f"{kind} ({why})" for kind, why in sorted(self.failed_outputs.items()))
            out.append(f"outputs not built: {kinds}; a destination that asked only for these got nothing. "
                       "Fix the cause (worker log, event=output_failed), then `mammocad studies reanalyse`")
        if self.report_images and self.report_failed_images == self.report_images:
            out.append(f"no image could be analysed: the report says \"CAD failed\" for all {self.report_images}. "
                       "Fix the cause (worker log, event=analysis_failed or decode_refused), then "
                       "`mammocad studies reanalyse`")
        return out

    @property
    def answered_how(self) -> str:
        """How the newest report answered an admin's re-analysis, in words; "" when it did not."""
        if self.answered is None:
            return ""
        late = (f", with {self.late_images} image(s) that arrived after the request (one amended report "
                "for all)" if self.late_images else "")
        return f"answers the re-analysis (revision {self.answered}) asked for with `mammocad studies reanalyse`{late}"

    @property
    def waiting_for(self) -> str:
        """What a study waits for now, in words: its report, or an amended one an admin asked
        for; "" when neither is owed."""
        if self.reanalysis is not None:
            return (f"the amended report (revision {self.reanalysis}) that `mammocad studies reanalyse` asked for: "
                    f"{self.analysed} of {self.images} image(s) analysed again, {self.analysing} running "
                    "(see `mammocad workers`)")
        if self.report:
            return ""
        if not self.declared:
            return ("the rest of the study: the node declares it when both breasts' CC and MLO are in, "
                    "or after node.study_timeout_s without a new image")
        queued = self.images - self.analysed - self.analysing
        if queued > 0 or self.analysing:
            return f"analysis: {self.analysing} image(s) running, {queued} queued or re-queued (see `mammocad workers`)"
        return "the results worker to build and send the report (see `mammocad workers`)"

    @property
    def state(self) -> str:
        """failed (a destination dead-lettered, or the delivered report has :attr:`problems`),
        pending (not reported, a re-analysis owed, or not yet delivered), delivered.

        A report whose every image failed analysis, or with an output kind missing, is not
        "delivered": an admin filtering on ``--state failed`` must find it.
        """
        if "dead" in self.destinations.values():
            return "failed"
        if not self.report or self.reanalysis is not None or "pending" in self.destinations.values():
            return "pending"
        return "failed" if self.problems else "delivered"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "state": self.state, "waiting_for": self.waiting_for,
                "answered_how": self.answered_how, "problems": self.problems}


class Index:
    """The outbox and dead-letter folders, read once for many studies."""

    def __init__(self, spool_dir: str | os.PathLike[str]) -> None:
        self.spool = Spool(spool_dir)
        outbox = Outbox(spool_dir)
        self.items: dict[tuple[str, str], tuple[str, OutboxItem]] = {}
        for dead in (False, True):
            for item in outbox.items(dead=dead):
                self.items[(item.destination, item.item_id)] = ("dead" if dead else "pending", item)

    def destination_state(self, study_uid: str, destination: str, item_id: str,
                          copies: Mapping[str, Collection[str]] | None = None) -> tuple[str, str]:
        """(state, last error) of one report's item for ``destination``, re-sends included.

        The item, then its copies by number (``<item>.s<n>``): ``copies``, those the report
        records with the SOP Instance UIDs each carried (``studies resend`` names them, so they
        count once confirmed), and any other still in the outbox or dead-lettered. A confirmed
        one supersedes those before it: a dropped item, and a dead-lettered one whose pending
        objects the confirmed copies carried (the outbox deletes such a one at the copy's
        confirmation; one left holds an object the destination never got, so it still shows
        dead). A copy dropped after it takes nothing away; of the rest the worst shows.
        """
        copies = copies or {}
        present = {i for d, i in self.items if d == destination and i.startswith(item_id + ".s")}
        ids = [item_id, *sorted(set(copies) | present, key=_copy_number)]
        states = [self._state(study_uid, destination, i) for i in ids]
        confirmed = [n for n, (state, _) in enumerate(states) if state == "delivered"]
        if confirmed:
            carried = {s for i, (state, _) in zip(ids, states, strict=True) if state == "delivered"
                       for s in copies.get(i, ())}
            before = [states[n] for n in range(confirmed[-1])
                      if states[n][0] == "dead" and not self._pending(destination, ids[n]) <= carried]
            states = before + [v for v in states[confirmed[-1]:] if v[0] != "dropped"]
        return min(states, key=lambda v: _ORDER[v[0]])

    def _pending(self, destination: str, item_id: str) -> set[str]:
        """The SOP Instance UIDs a listed item has not delivered (none for one not listed)."""
        found = self.items.get((destination, item_id))
        return {p.stem for p in found[1].pending_files()} if found is not None else set()

    def _state(self, study_uid: str, destination: str, item_id: str) -> tuple[str, str]:
        """Where one item or copy is: outbox, dead letters, dropped, else delivered."""
        found = self.items.get((destination, item_id))
        if found is not None:
            return found[0], found[1].last_error or ""
        dropped = self.spool.study_dir(study_uid) / "dropped" / f"{destination}.{item_id}"
        return ("dropped", "") if dropped.exists() else ("delivered", "")


def _copy_number(copy_id: str) -> int:
    """N of a copy ``<item>.s<N>`` (0 when the id has no such suffix)."""
    n = copy_id.rpartition(".s")[2]
    return int(n) if n.isdigit() else 0


def study_status(spool_dir: str | os.PathLike[str], study_uid: str, index: Index | None = None,
                 lease_s: float = 30.0) -> StudyStatus:
    """``lease_s``: the workers' ``worker.lease_s`` (a lease older than that is a dead worker's)."""
    index = index or Index(spool_dir)
    files = StudyFiles(spool_dir, study_uid)
    sops = files.layout.image_sops(files.study_uid)
    status = StudyStatus(study_uid=files.study_uid, images=len(sops))
    completion = files.complete()
    status.declared = (completion.reason or "declared") if completion is not None else ""
    images = [files.image(s) for s in sops]
    if images:
        status.received = max(_mtime(p) for p in images)
        status.accession = _accession(images[0])
    now = time.time()
    for sop in sops:
        path = files.result(sop)
        if not path.exists():
            age = lease_age(lease_path(files.layout, files.study_uid, sop), now)
            status.analysing += int(age is not None and age <= lease_s)
        else:
            status.analysed += 1
            try:
                status.failed_images += int(bool(files.read_result(sop).error))
            except Exception:  # unreadable result: counted as analysed, shown by `studies show`
                continue
    pending = files.layout.pending_reanalysis(files.study_uid)
    status.reanalysis = pending.revision if pending is not None else None
    reports = files.reports()
    status.reports = len(reports)
    if reports:
        latest: ReportRecord = reports[-1]  # written last (Spool.reports), whatever the clock said
        status.report, status.revision = latest.report_key, report_revision(latest.report_key)
        status.report_images, status.report_failed_images = len(latest.sop_uids), len(latest.failed_images)
        status.failed_outputs = dict(latest.failed_outputs)
        if latest.reanalysis is not None:
            status.answered = latest.reanalysis.revision
            status.late_images = len(set(latest.sop_uids) - set(latest.reanalysis.sop_uids))
        # ``studies resend`` may have sent it to a destination the report did not name (added
        # since): while that copy waits or is dead-lettered, the destination counts too.
        resent = {d: latest.report_key for d, i in index.items if d not in latest.destinations
                  and i.startswith(latest.report_key + ".s")}
        for dest, item_id in sorted({**latest.destinations, **resent}.items()):
            state, error = index.destination_state(files.study_uid, dest, item_id, latest.copies.get(dest, {}))
            status.destinations[dest] = state
            if error:
                status.errors[dest] = error
    return status


def unknown_study(uid: str, spool_dir: object) -> str:
    """What to say of a study the spool does not hold (never received here, or pruned)."""
    return (f"no study {uid} in {spool_dir}: this node never received it, or retention removed it once every "
            "destination had confirmed its results (node.retention_days). `mammocad studies list` lists the "
            "studies kept; to report it again, send the study from the PACS again")


def all_statuses(spool_dir: str | os.PathLike[str], state: str | None = None,
                 lease_s: float = 30.0) -> list[StudyStatus]:
    """Every study in the spool, newest first; ``state`` keeps only failed/pending/delivered."""
    index = Index(spool_dir)
    out = [study_status(spool_dir, uid, index, lease_s) for uid in index.spool.study_uids()]
    out = [s for s in out if state is None or s.state == state]
    return sorted(out, key=lambda s: s.received or 0.0, reverse=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _accession(path: Path) -> str:
    # Here, not at the top: pydicom loads numpy and Pillow, and `mammocad --help` (which
    # imports this module for the --state choices) must not (tests/test_cli_help.py).
    from pydicom import dcmread

    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["AccessionNumber"])
    except Exception:
        return ""
    return str(ds.get("AccessionNumber", "") or "")
