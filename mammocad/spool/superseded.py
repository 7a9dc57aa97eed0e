"""Whether confirmed ``studies resend`` copies already carried what an outbox item still holds.

A copy ``<item>.s<n>`` that the destination confirms retires the dead letters before it in its
lineage (:meth:`Outbox.complete`), but not an item still in the outbox then: the destination's
own item, or an earlier copy, still retrying. When that one reached its deadline it went to
``deadletter/`` although the destination had confirmed every object it held (same UIDs, same
kept files), and retention kept the study for it until an admin ran ``outbox drop``. The
delivery attempt asks :func:`superseding_copies` before it dead-letters an item, and completes
one the copies settled instead.

What a copy confirmed is read from the study's report records, where ``studies resend`` names
it once it is in the outbox (``ReportRecord.copies``; ``destinations`` and
``destination_objects`` for a destination the report did not name), and from the copy's place,
as the late report's catch-up reads it (:mod:`mammocad.spool.catch_up`): gone from the outbox
and not dropped, every object it carried; still in the outbox or dead-lettered, only its
``delivered``; dropped or unreadable, none. A copy no record names counts for nothing: the item
is dead-lettered as before, which loses nothing (``outbox drop`` settles it).

:func:`retire_superseded_dead_letters` asks the same of every dead letter: those written
before this module existed (their copies confirmed while nothing retired them), and any a
confirmation could not retire at once (a crash, a lock held too long).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mammocad.spool.outbox import Outbox, OutboxItem, lineage_before
from mammocad.spool.records import RecordError
from mammocad.spool.studies import StudyFiles


def superseding_copies(outbox: Outbox, item: OutboxItem) -> list[str]:
    """The recorded copies after ``item`` in its lineage whose confirmed objects hold every
    object ``item`` has pending; empty when some pending object no confirmed copy carried
    (or the item's study or records cannot be read): then the item is owed to the destination.
    """
    pending = {p.stem for p in item.pending_files()}
    if not pending:
        return []
    try:
        files = StudyFiles(outbox.spool, item.study()[0])
    except ValueError:  # no readable file names its study: nothing can vouch for it
        return []
    confirmed: set[str] = set()
    used: list[str] = []
    for copy_id, carried in _recorded_copies(files, item.destination):
        if item.item_id not in lineage_before(copy_id):
            continue
        got = _confirmed(outbox, files, item.destination, copy_id, carried) & pending
        if got:
            confirmed |= got
            used.append(copy_id)
    return used if pending <= confirmed else []


def retire_superseded_dead_letters(outbox: Outbox) -> int:
    """Retire every dead letter that confirmed copies after it already carried
    (:func:`superseding_copies`), with the line a copy's confirmation writes
    (``deadletter_superseded``, ``via=sweep``); returns how many went.

    Run by the results worker's outbox sweep (``outbox_delivery.requeue_due``): without it a
    dead letter whose copy was confirmed before its retirement existed, or while it could not
    be retired, stayed until an admin ran ``outbox drop``, and retention kept the study.
    Nothing is audited: the copies' transfers were.
    """
    retired = 0
    for item in outbox.items(dead=True):
        copies = superseding_copies(outbox, item)
        if copies and outbox.retire_dead(item.destination, item.item_id, ",".join(copies),
                                         {p.stem for p in item.pending_files()}, via="sweep"):
            retired += 1
    return retired


def _recorded_copies(files: StudyFiles, destination: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(copy id, SOP Instance UIDs it carried) for each item the study's reports name for
    ``destination``: its copies, and its item (a resend copy for a destination the report did
    not name is recorded as its item). Unreadable reports are skipped (:meth:`Spool.reports`)."""
    for report in files.reports():
        yield from report.copies.get(destination, {}).items()
        named = report.destinations.get(destination)
        if named is not None:
            yield named, report.destination_objects.get(destination, tuple(report.outputs))


def _confirmed(outbox: Outbox, files: StudyFiles, destination: str, copy_id: str,
               carried: tuple[str, ...]) -> set[str]:
    """The SOP Instance UIDs ``destination`` confirmed of one recorded copy.

    The outbox is looked at again after the dead letters: ``outbox retry`` moves an item from
    the dead letters back into the outbox in one rename, and looking once at each would see it
    in neither, so as gone (confirmed). A folder whose ``item.json`` cannot be read counts for
    nothing. The drop marker is read last, as ``Outbox.drop`` writes it before the item goes.
    """
    boxes: list[tuple[Path, bool]] = [(outbox.root, False), (outbox.dead_root, True), (outbox.root, False)]
    for box, dead in boxes:
        if (box / destination / copy_id).is_dir():
            try:
                found = outbox.get(destination, copy_id, dead=dead)
            except (RecordError, ValueError):
                return set()
            return set(found.delivered) if found is not None else set()
    if (files.root / "dropped" / f"{destination}.{copy_id}").exists():
        return set()
    return set(carried)
