"""Records of a study's reports: what each report produced, where it went, and the kept objects
of one build."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mammocad.config.settings import OutputKind
from mammocad.spool.records import RecordError, check_version, load_json, time_field
from mammocad.spool.records.analysis import ReanalysisRecord

REPORT_VERSION = 1
KEPT_OUTPUTS_VERSION = 1


def report_revision(key: str) -> int:
    """The revision encoded in a report key (0 for a first report)."""
    _, sep, rev = key.rpartition(".r")
    return int(rev) if sep and rev.isdigit() else 0


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
        # Read outside the try below: a RecordError is a ValueError, which it would wrap again.
        created = time_field(data, "created", what)
        answered = ReanalysisRecord.from_json(request, f"{what}: reanalysis") if request else None
        try:
            return cls(report_key=str(data.get("report_key") or report_key), sop_uids=tuple(sorted(map(str, sops))),
                       model_name=str(data.get("model_name", "")), model_version=str(data.get("model_version", "")),
                       objects=tuple(OutputObject.from_json(o) for o in objects if isinstance(o, dict)),
                       destinations={str(k): str(v) for k, v in dests.items()},
                       failed_images=tuple(map(str, data.get("failed_images") or [])),
                       failed_outputs={str(k): str(v) for k, v in (data.get("failed_outputs") or {}).items()},
                       created=created,
                       reanalysis=answered,
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
