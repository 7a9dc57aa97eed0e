"""Typed, versioned records of the spool: what one side writes and the other reads.

Each record is a JSON file with a ``version`` field. Writers always write the current
version; readers accept the current one and every earlier one this code has written
(files written before versions existed count as version 0 and have the same fields), so
a spool from an older release keeps working after an upgrade. A file of a *newer*
version than the reader knows is refused with :class:`RecordError` rather than misread.

| file | record | written by |
| --- | --- | --- |
| ``studies/<study>/results/<sop>.json`` | :func:`image_result_json` / :func:`read_image_result` | GPU worker |
| ``studies/<study>/complete.json`` | :class:`CompletionRecord` | node |
| ``studies/<study>/reports/<key>.json`` | :class:`ReportRecord` | results worker |
| ``studies/<study>/outputs/<key>/kept.json`` | :class:`KeptOutputs` | results worker |
| ``studies/<study>/reanalysis.json`` | :class:`ReanalysisRecord` | ``mammocad studies reanalyse`` |
| ``pruned/<study>.json`` | :class:`PrunedRecord` | retention (``spool prune``, the results worker) |
| ``outbox/<dest>/<item>/item.json`` | :class:`~mammocad.spool.outbox.OutboxItem` | results worker |
| ``workers/<worker>.json`` | :class:`PresenceRecord` | every worker (its main process) |
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mammocad.config.settings import OutputKind
from mammocad.model.results import ImageResult

IMAGE_RESULT_VERSION = 1
COMPLETION_VERSION = 1
REPORT_VERSION = 1
OUTBOX_ITEM_VERSION = 1
PRESENCE_VERSION = 1
KEPT_OUTPUTS_VERSION = 1
REANALYSIS_VERSION = 1
PRUNED_VERSION = 1


class RecordError(ValueError):
    """A spool record that cannot be read: not JSON, wrong shape, or from a newer release."""


def load_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; FileNotFoundError passes, anything else is RecordError."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise RecordError(f"{path.name}: unreadable record: {exc}") from exc
    if not isinstance(data, dict):
        raise RecordError(f"{path.name}: expected a JSON object, got {type(data).__name__}")
    return data


def check_version(data: Mapping[str, Any], current: int, what: str) -> int:
    """The record's version (0 when absent); RecordError when newer than ``current``."""
    version = data.get("version", 0)
    if not isinstance(version, int) or version < 0:
        raise RecordError(f"{what}: bad version {version!r}")
    if version > current:
        raise RecordError(f"{what}: version {version} is newer than this release reads ({current}); "
                          "upgrade every node and worker that shares the spool")
    return version


# --------------------------------------------------------------------------- image result


def image_result_json(result: ImageResult) -> dict[str, Any]:
    """``results/<sop>.json``: the model's :class:`ImageResult` plus the record version."""
    return {"version": IMAGE_RESULT_VERSION, **result.to_dict()}


def image_result_from_json(data: Mapping[str, Any], what: str = "image result") -> ImageResult:
    check_version(data, IMAGE_RESULT_VERSION, what)
    try:
        return ImageResult.from_dict({k: v for k, v in data.items() if k != "version"})
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"{what}: {type(exc).__name__}: {exc}") from exc


def read_image_result(path: Path) -> ImageResult:
    return image_result_from_json(load_json(path), path.name)


# --------------------------------------------------------------------------- completion


@dataclass(frozen=True)
class CompletionRecord:
    """``complete.json``: the node declared the study complete for exactly these images.

    ``reason``: "four_views" (L/R × CC/MLO arrived) or "timeout" (``study_timeout_s`` of
    silence). A later image makes the node declare again with the larger set.
    """

    sop_uids: tuple[str, ...]
    reason: str
    declared_at: float

    def to_json(self) -> dict[str, Any]:
        return {"version": COMPLETION_VERSION, "sop_uids": sorted(self.sop_uids), "reason": self.reason,
                "declared_at": self.declared_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], what: str = "complete.json") -> CompletionRecord:
        check_version(data, COMPLETION_VERSION, what)
        sops = data.get("sop_uids")
        if not isinstance(sops, list) or not all(isinstance(s, str) for s in sops):
            raise RecordError(f"{what}: sop_uids must be a list of UIDs")
        try:
            declared = float(data.get("declared_at", 0.0))
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{what}: declared_at: {exc}") from exc
        return cls(sop_uids=tuple(sorted(sops)), reason=str(data.get("reason", "")), declared_at=declared)

    @classmethod
    def read(cls, path: Path) -> CompletionRecord:
        return cls.from_json(load_json(path), path.name)


@dataclass(frozen=True)
class ReanalysisRecord:
    """``reanalysis.json``: an admin asked for these images to be analysed again and reported
    as amended report ``revision``; owed until a report of that revision (or a later one) exists.

    Written before the old image results are deleted, so whatever queues the study's
    finalize afterwards (the reanalyse command, the last analysis, the node's reconciler
    after a broker loss) makes the amended report, not the skipped original.
    """

    revision: int
    sop_uids: tuple[str, ...]
    requested_at: float

    def to_json(self) -> dict[str, Any]:
        return {"version": REANALYSIS_VERSION, "revision": self.revision, "sop_uids": sorted(self.sop_uids),
                "requested_at": self.requested_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], what: str = "reanalysis.json") -> ReanalysisRecord:
        check_version(data, REANALYSIS_VERSION, what)
        sops, revision = data.get("sop_uids"), data.get("revision")
        if not isinstance(sops, list) or not all(isinstance(s, str) for s in sops):
            raise RecordError(f"{what}: sop_uids must be a list of UIDs")
        if not isinstance(revision, int) or revision < 1:
            raise RecordError(f"{what}: revision must be a positive integer, got {revision!r}")
        try:
            requested = float(data.get("requested_at", 0.0))
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{what}: requested_at: {exc}") from exc
        return cls(revision=revision, sop_uids=tuple(sorted(sops)), requested_at=requested)

    @classmethod
    def read(cls, path: Path) -> ReanalysisRecord:
        return cls.from_json(load_json(path), path.name)


@dataclass(frozen=True)
class PrunedRecord:
    """``pruned/<study>.json``: what retention removed of a delivered study, UIDs and counts only.

    Retention deletes the study's folder (images, results, reports); without this record an
    image of the study arriving later was a new study: the images already reported were
    analysed and reported again, and the new report repeated the pruned one's series numbers.
    ``sop_uids``: every image the pruned reports covered; ``reports``: how many there were.
    """

    sop_uids: tuple[str, ...]
    reports: int
    pruned_at: float

    def merged(self, other: PrunedRecord | None) -> PrunedRecord:
        """This record added to ``other`` (a study pruned again after more images came)."""
        if other is None:
            return self
        return PrunedRecord(tuple(sorted(set(self.sop_uids) | set(other.sop_uids))),
                            self.reports + other.reports, max(self.pruned_at, other.pruned_at))

    def to_json(self) -> dict[str, Any]:
        return {"version": PRUNED_VERSION, "sop_uids": sorted(self.sop_uids), "reports": self.reports,
                "pruned_at": self.pruned_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], what: str = "pruned study") -> PrunedRecord:
        check_version(data, PRUNED_VERSION, what)
        sops, reports = data.get("sop_uids"), data.get("reports")
        if not isinstance(sops, list) or not all(isinstance(s, str) for s in sops):
            raise RecordError(f"{what}: sop_uids must be a list of UIDs")
        if not isinstance(reports, int) or reports < 0:
            raise RecordError(f"{what}: reports must be a count, got {reports!r}")
        try:
            pruned_at = float(data.get("pruned_at", 0.0))
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{what}: pruned_at: {exc}") from exc
        return cls(sop_uids=tuple(sorted(sops)), reports=reports, pruned_at=pruned_at)

    @classmethod
    def read(cls, path: Path) -> PrunedRecord:
        return cls.from_json(load_json(path), path.name)


def report_revision(key: str) -> int:
    """The revision encoded in a report key (0 for a first report)."""
    _, sep, rev = key.rpartition(".r")
    return int(rev) if sep and rev.isdigit() else 0


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class OutputObject:
    """One DICOM object a report produced; ``kind`` None only in records that predate kinds."""

    study: str
    series: str
    sop: str
    sop_class: str
    kind: OutputKind | None

    def to_json(self) -> dict[str, Any]:
        return {"study": self.study, "series": self.series, "sop": self.sop, "sop_class": self.sop_class,
                "kind": self.kind.value if self.kind is not None else ""}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutputObject:
        raw = str(data.get("kind") or "")
        kind = OutputKind(raw) if raw in {k.value for k in OutputKind} else None
        return cls(study=str(data.get("study", "")), series=str(data.get("series", "")),
                   sop=str(data.get("sop", "")), sop_class=str(data.get("sop_class", "")), kind=kind)


@dataclass(frozen=True)
class ReportRecord:
    """``reports/<report_key>.json``: the study was finalised for these images by this model.

    Its existence is the done marker of ``finalize_study``. ``destinations`` maps each
    destination name to its outbox item id (retention keeps the study while one is left);
    ``failed_images`` are the images the report calls "CAD failed".
    """

    report_key: str
    sop_uids: tuple[str, ...]
    model_name: str
    model_version: str
    objects: tuple[OutputObject, ...] = ()
    destinations: Mapping[str, str] = field(default_factory=dict)
    failed_images: tuple[str, ...] = ()
    #: Output kinds that could not be built, with why (the rest was delivered).
    failed_outputs: Mapping[str, str] = field(default_factory=dict)
    created: float = 0.0
    #: The admin's re-analysis request this report answered (``reanalysis.json`` as it was),
    #: else None. Its images may be fewer than the report's: images that arrived while it was
    #: pending are reported with it, in one amended report (``studies show`` says so).
    reanalysis: ReanalysisRecord | None = None
    #: Per destination, the SOP Instance UIDs its outbox item carried: the report's objects of
    #: the kinds it wants, plus earlier reports' SC/GSPS a late report sent it because it had
    #: not confirmed them (the results worker's ``catch_up``). Absent from records written before
    #: it was kept: such an item is read as having carried every one of the report's objects.
    destination_objects: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Its place among the study's reports: N for the N-th record written (1 = the first),
    #: given once, when the record is first written (:meth:`StudyFiles.write_report`), and
    #: kept when it is rewritten. 0 in records written before it was kept: those come before
    #: every numbered one, in file mtime order (:func:`report_order`). Neither ``created`` (the
    #: wall clock, which steps) nor an mtime (a restore, an rsync without -t, ``touch``) says
    #: which report is the newest once the spool has been copied or the clock corrected.
    sequence: int = 0
    #: Per destination the report names, the copies ``studies resend`` queued for it
    #: (``<item>.s<n>``) and the SOP Instance UIDs each carried. The outbox deletes a confirmed
    #: copy; this says the destination then holds its objects even though its own item was
    #: dead-lettered or dropped. Absent in records written before it was kept.
    copies: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)

    @property
    def outputs(self) -> list[str]:
        """SOP Instance UIDs of the objects produced."""
        return [o.sop for o in self.objects]

    def objects_of(self, kind: OutputKind) -> list[OutputObject]:
        return [o for o in self.objects if o.kind is kind]

    def with_item(self, destination: str, item_id: str, sops: Iterable[str]) -> ReportRecord:
        """This record naming ``item_id`` as ``destination``'s item, which carried ``sops``.

        What ``studies resend`` records for a destination the report did not name: the outbox
        deletes a confirmed item, and without the record nothing would say the destination got
        these objects (a late report's catch-up sent them again, ``studies show`` omitted it).
        """
        return replace(self, destinations={**self.destinations, destination: item_id},
                       destination_objects={**self.destination_objects, destination: tuple(sops)})

    def with_copy(self, destination: str, copy_id: str, sops: Iterable[str]) -> ReportRecord:
        """This record naming ``copy_id`` as a copy ``studies resend`` queued for ``destination``
        (one the report names), which carried ``sops``: see :attr:`copies`."""
        mine = {**self.copies.get(destination, {}), copy_id: tuple(sops)}
        return replace(self, copies={**self.copies, destination: mine})

    def to_json(self) -> dict[str, Any]:
        return {"version": REPORT_VERSION, "report_key": self.report_key, "sop_uids": sorted(self.sop_uids),
                "model_name": self.model_name, "model_version": self.model_version, "outputs": self.outputs,
                "objects": [o.to_json() for o in self.objects], "destinations": dict(self.destinations),
                "failed_images": list(self.failed_images), "failed_outputs": dict(self.failed_outputs),
                "created": self.created,
                "reanalysis": self.reanalysis.to_json() if self.reanalysis is not None else None,
                "destination_objects": {d: list(sops) for d, sops in self.destination_objects.items()},
                "sequence": self.sequence,
                "copies": {d: {i: list(sops) for i, sops in c.items()} for d, c in self.copies.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], report_key: str, what: str = "report") -> ReportRecord:
        """``report_key``: the file's stem (version 0 records did not store it)."""
        check_version(data, REPORT_VERSION, what)
        sops, objects, dests = data.get("sop_uids"), data.get("objects") or [], data.get("destinations") or {}
        if not isinstance(sops, list) or not isinstance(objects, list) or not isinstance(dests, dict):
            raise RecordError(f"{what}: sop_uids and objects must be lists, destinations an object")
        request = data.get("reanalysis")  # absent before it was recorded: answered none
        if request is not None and not isinstance(request, dict):
            raise RecordError(f"{what}: reanalysis must be an object or null")
        carried = data.get("destination_objects") or {}  # absent before it was recorded
        if not isinstance(carried, dict) or not all(isinstance(v, list) for v in carried.values()):
            raise RecordError(f"{what}: destination_objects must map each destination to a list of UIDs")
        copies = data.get("copies") or {}  # absent before it was recorded
        if not isinstance(copies, dict) or not all(
                isinstance(c, dict) and all(isinstance(v, list) for v in c.values()) for c in copies.values()):
            raise RecordError(f"{what}: copies must map each destination to its copies' lists of UIDs")
        sequence = data.get("sequence", 0)  # absent before it was recorded: ordered by mtime
        if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
            raise RecordError(f"{what}: sequence must be a non-negative integer, got {sequence!r}")
        try:
            return cls(report_key=str(data.get("report_key") or report_key), sop_uids=tuple(sorted(map(str, sops))),
                       model_name=str(data.get("model_name", "")), model_version=str(data.get("model_version", "")),
                       objects=tuple(OutputObject.from_json(o) for o in objects if isinstance(o, dict)),
                       destinations={str(k): str(v) for k, v in dests.items()},
                       failed_images=tuple(map(str, data.get("failed_images") or [])),
                       failed_outputs={str(k): str(v) for k, v in (data.get("failed_outputs") or {}).items()},
                       created=float(data.get("created", 0.0)),
                       reanalysis=ReanalysisRecord.from_json(request, f"{what}: reanalysis") if request else None,
                       destination_objects={str(d): tuple(map(str, sops)) for d, sops in carried.items()},
                       sequence=sequence,
                       copies={str(d): {str(i): tuple(map(str, sops)) for i, sops in c.items()}
                               for d, c in copies.items()})
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{what}: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def read(cls, path: Path) -> ReportRecord:
        return cls.from_json(load_json(path), path.stem, path.name)


def report_order(report: ReportRecord, mtime: float) -> tuple[int, float, str]:
    """Sort key of a study's reports, oldest first; ``mtime``: its file's modification time.

    Numbered records (``sequence`` > 0) by their number. Records from before the number was
    kept (0) come first (every numbered one was written after them) and among themselves by
    ``mtime``, the only order they have. The key breaks what ties are left.
    """
    return (report.sequence, mtime if not report.sequence else 0.0, report.report_key)


# --------------------------------------------------------------------------- kept outputs


@dataclass(frozen=True)
class KeptOutputs:
    """``outputs/<report_key>/kept.json``: the objects one build of a report produced.

    Written with the objects, in one folder renamed into place, before any outbox item:
    its existence says the report's objects are fixed. A finalize that runs again (after
    a crash or a failure between the outbox items and the report record) sends these
    objects instead of building new ones, whose content-derived UIDs would differ.
    ``objects`` maps each SOP Instance UID to its kind; ``failed_outputs`` and
    ``failed_images`` are what the build reported, for the report record.
    """

    objects: Mapping[str, OutputKind]
    failed_outputs: Mapping[str, str] = field(default_factory=dict)
    failed_images: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"version": KEPT_OUTPUTS_VERSION, "objects": {sop: k.value for sop, k in self.objects.items()},
                "failed_outputs": dict(self.failed_outputs), "failed_images": list(self.failed_images)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], what: str = "kept.json") -> KeptOutputs:
        check_version(data, KEPT_OUTPUTS_VERSION, what)
        objects, failed = data.get("objects"), data.get("failed_outputs") or {}
        if not isinstance(objects, dict) or not isinstance(failed, dict):
            raise RecordError(f"{what}: objects and failed_outputs must be JSON objects")
        try:
            return cls(objects={str(sop): OutputKind(str(kind)) for sop, kind in objects.items()},
                       failed_outputs={str(k): str(v) for k, v in failed.items()},
                       failed_images=tuple(map(str, data.get("failed_images") or [])))
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{what}: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def read(cls, path: Path) -> KeptOutputs:
        return cls.from_json(load_json(path), path.name)


# --------------------------------------------------------------------------- worker presence


@dataclass(frozen=True)
class PresenceRecord:
    """``workers/<worker>.json``: a live worker and the broker messages it holds.

    The file's modification time is the heartbeat (:mod:`mammocad.spool.presence`);
    ``held`` are the kombu delivery tags of the task messages the worker received, running
    or waiting for a countdown, so the node can tell a task held by a dead worker from one
    held by a live one. ``dropped``: tags of messages the worker took on a broker connection
    that has closed since (a broker restart, a network blip): Celery forgets the waiting ones
    then, yet Redis keeps them unacknowledged until the visibility timeout. ``lease_s`` is the
    worker's own setting (it beats every ``lease_s / 6``): a node configured with a shorter one
    must not call it dead between beats.
    """

    worker: str
    host: str
    pid: int
    started: float
    held: tuple[str, ...]
    lease_s: float = 0.0
    dropped: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"version": PRESENCE_VERSION, "worker": self.worker, "host": self.host, "pid": self.pid,
                "started": self.started, "held": list(self.held), "lease_s": self.lease_s,
                "dropped": list(self.dropped)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], what: str = "worker presence") -> PresenceRecord:
        check_version(data, PRESENCE_VERSION, what)
        held, dropped = data.get("held", []), data.get("dropped", [])
        for name, tags in (("held", held), ("dropped", dropped)):
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise RecordError(f"{what}: {name} must be a list of delivery tags")
        try:
            return cls(worker=str(data["worker"]), host=str(data.get("host", "")), pid=int(data.get("pid", 0)),
                       started=float(data.get("started", 0.0)), held=tuple(held),
                       lease_s=float(data.get("lease_s", 0.0)), dropped=tuple(dropped))
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"{what}: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def read(cls, path: Path) -> PresenceRecord:
        return cls.from_json(load_json(path), path.name)
