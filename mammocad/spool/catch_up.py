"""Earlier reports' SC and GSPS that a late-image report still owes a destination.

A report for images that arrived after the study's first report builds its secondary
captures and GSPS for the new images only (``tasks._sent_per_image``): the earlier images'
objects went out with the earlier report, and building them again would put the same picture
at the PACS twice under new UIDs. That holds only for a destination that has them. One added
to the configuration since (it is reloaded without a restart), or one whose earlier item was
dead-lettered or dropped, would hold the new images' objects only. So each destination's
item of the late report also carries the earlier objects it has not confirmed: the very
files kept beside the earlier reports (``outputs/<key>/``), with the SOP Instance UID, series
and instance numbers every other destination got. A destination removed from the
configuration gets nothing: only configured ones get items.

What a destination holds is read from the spool. Each report names its item per destination
(``ReportRecord.destinations``) and what that item carried (``destination_objects``; a record
written before that field: all the report's own objects). The item's place says the rest:
still in ``outbox/``, its files are confirmed or on their way (not sent twice); in
``deadletter/``, only its ``delivered`` ones are confirmed; dropped by an admin, none; gone,
all (the outbox deletes an item only once every file was confirmed). A ``studies resend``
records its copy in the report too, and it counts the same way, confirmed included: as the
item of a destination the report did not name, else in ``ReportRecord.copies`` (so a
destination whose own item was dead-lettered or dropped holds what its copy carried). A
copy the record does not name (``<item>.s<n>``, from an older release or a failed record
write) counts while it is in the outbox or dead-lettered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from mammocad.config import Destination, OutputKind
from mammocad.logs import log_event, safe_error
from mammocad.spool.outbox import Outbox, OutboxItem
from mammocad.spool.records import RecordError
from mammocad.spool.records.report import ReportRecord, report_revision
from mammocad.spool.studies import StudyFiles

logger = logging.getLogger(__name__)

#: The per-image kinds a late report may leave to the earlier reports.
PER_IMAGE = (OutputKind.SECONDARY_CAPTURE, OutputKind.GSPS)


def owed_objects(files: StudyFiles, destinations: Sequence[Destination],
                 sent: Mapping[OutputKind, frozenset[str]]) -> dict[str, list[Path]]:
    """Per configured destination, the kept files of earlier SC/GSPS it must still get.

    ``sent``: per kind, the images whose object of that kind the late report did not build
    because an earlier report holds it (empty for a first report or a re-analysis: then
    nothing is owed, every object is new). Call under the study's finalize lock, before the
    late report's own items exist.
    """
    kinds = [k for k in PER_IMAGE if sent.get(k) and any(k in d.wanted_outputs for d in destinations)]
    if not kinds:
        return {}
    reports = lineage(files, frozenset().union(*sent.values()))
    current = current_objects(files, reports, {k: sent[k] for k in kinds})
    outbox = Outbox(files.spool)
    owed: dict[str, list[Path]] = {}
    for dest in destinations:
        wanted = [p for kind in kinds if kind in dest.wanted_outputs for p in current.get(kind, [])]
        if not wanted:
            continue
        held = _held(files, outbox, reports, dest.name)
        missing = [p for p in wanted if p.stem not in held]
        if missing:
            owed[dest.name] = missing
            log_event(logger, "late_report_catch_up", study=files.study_uid, dest=dest.name, objects=len(missing),
                      held=len(wanted) - len(missing))
    return owed


def lineage(files: StudyFiles, images: frozenset[str]) -> list[ReportRecord]:
    """The reports whose objects may still stand for ``images``: those over some of them,
    newest first, back to the newest amended report (an admin's re-analysis replaced every
    object before it, even one it did not rebuild because the image failed analysis again)."""
    out = []
    for report in reversed(files.reports()):
        if not set(report.sop_uids) <= images:
            continue
        out.append(report)
        if report_revision(report.report_key):
            break
    return out


def current_objects(files: StudyFiles, reports: list[ReportRecord],
                     sent: Mapping[OutputKind, frozenset[str]]) -> dict[OutputKind, list[Path]]:
    """Per kind, the newest kept object of each image in ``sent[kind]`` (``reports`` newest first).

    Newest, because a later report may have rebuilt an object an earlier one also holds (an
    amended report, or a banner that changed): only the newest stands for its image. An image
    with none (it failed analysis: no SC or GSPS shows it) is skipped. A report whose kept copy
    of that kind cannot be read ends the search for the kind: which images its objects showed
    is unknown, and an older report's object for them may be one it replaced.
    """
    found: dict[OutputKind, dict[str, Path]] = {}
    unreadable = 0
    for kind, images in sent.items():
        left = set(images)
        for report in reports:
            if not left:
                break
            folder = files.layout.outputs_dir(files.study_uid, report.report_key)
            shown = {obj.sop: _images_shown(folder / f"{obj.sop}.dcm") for obj in report.objects_of(kind)}
            lost = sum(v is None for v in shown.values())
            for sop, images_of in shown.items():
                for image in (images_of or set()) & left:
                    found.setdefault(kind, {})[image] = folder / f"{sop}.dcm"
                left -= images_of or set()
            if lost:
                unreadable += lost
                break
    if unreadable:
        log_event(logger, "late_report_catch_up_incomplete", logging.WARNING, study=files.study_uid,
                  unreadable=unreadable,
                  hint="an earlier report kept no readable copy of some SC/GSPS, so a destination that lacks "
                       "them cannot be sent them (by a late report or `studies resend`); `mammocad studies reanalyse` builds "
                       "all again")
    return {kind: [paths[i] for i in sorted(paths)] for kind, paths in found.items()}


def _images_shown(path: Path) -> set[str] | None:
    """The images an SC (Source Image Sequence) or GSPS (Referenced Series) shows; None: unreadable."""
    from pydicom import dcmread  # loads numpy: not at import

    try:
        ds = dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - a missing or damaged copy: reported by the caller
        log_event(logger, "kept_output_unreadable", logging.DEBUG, file=path.name, error=safe_error(exc))
        return None
    refs = list(ds.get("SourceImageSequence", []))
    refs += [img for se in ds.get("ReferencedSeriesSequence", []) for img in se.get("ReferencedImageSequence", [])]
    return {str(ref.ReferencedSOPInstanceUID) for ref in refs if "ReferencedSOPInstanceUID" in ref}


def _held(files: StudyFiles, outbox: Outbox, reports: Iterable[ReportRecord], dest: str) -> set[str]:
    """SOP Instance UIDs ``dest`` confirmed, or whose sending is under way, for this study."""
    held: set[str] = set()
    for report in reports:
        item_id = report.destinations.get(dest)
        if item_id is not None:
            carried = report.destination_objects.get(dest, tuple(report.outputs))
            held |= _item_holds(files, outbox, dest, item_id, carried)
        for copy_id, sops in report.copies.get(dest, {}).items():  # recorded `studies resend` copies
            held |= _item_holds(files, outbox, dest, copy_id, sops)
        for box, dead in ((outbox.root, False), (outbox.dead_root, True)):  # `studies resend` copies
            for folder in (box / dest).glob(f"{report.report_key}.s*"):
                item = _get(outbox, dest, folder.name, dead)
                if item is not None:
                    held |= set(item.delivered) if dead else {p.stem for p in item.files()}
    return held


def _item_holds(files: StudyFiles, outbox: Outbox, dest: str, item_id: str, carried: Iterable[str]) -> set[str]:
    """What one report's item for ``dest`` got there or is sending (see the module's docstring)."""
    if (outbox.root / dest / item_id).is_dir():
        item = _get(outbox, dest, item_id, dead=False)
        return {p.stem for p in item.files()} if item is not None else set()
    if (outbox.dead_root / dest / item_id).is_dir():
        dead = _get(outbox, dest, item_id, dead=True)
        return set(dead.delivered) if dead is not None else set()
    if (files.root / "dropped" / f"{dest}.{item_id}").exists():
        return set()
    return set(carried)


def _get(outbox: Outbox, dest: str, item_id: str, dead: bool) -> OutboxItem | None:
    """The item, or None when absent or unreadable: no worker delivers an unreadable item
    (``outbox_item_unreadable``), so its objects count as not held and are sent again."""
    try:
        return outbox.get(dest, item_id, dead=dead)
    except (RecordError, ValueError):
        return None
