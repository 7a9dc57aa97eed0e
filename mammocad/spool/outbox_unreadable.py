"""The outbox's report of items whose ``item.json`` cannot be read (``outbox_item_unreadable``).

The results worker's sweeper lists the outbox every pass (up to every 15 s), so one broken
``item.json`` flooded the log; now a line comes when an item's error first appears or changes,
or when it breaks again after being read (:class:`~mammocad.logs.ErrorMemo`, one per process,
as :mod:`mammocad.spool.presence`'s).
"""

from __future__ import annotations

import logging
from pathlib import Path

from mammocad.logs import ErrorMemo, log_event

#: The outbox's own logger: the event has always come from ``mammocad.spool.outbox``, and log
#: filters select it by that name.
logger = logging.getLogger("mammocad.spool.outbox")

#: Item folder -> the error last logged for it.
_reported: ErrorMemo[Path] = ErrorMemo()


def report_listing(base: Path, destination: str | None, bad: dict[Path, str]) -> None:
    """Log each item of ``bad`` (folder -> error) whose error is not the one last logged for it.

    ``base`` (``outbox/`` or ``deadletter/``) and ``destination`` (None: all) say which items the
    caller listed. The memo forgets the items of that listing that were read or are gone, so an
    item that breaks again, or a new one in a removed one's place, is logged; another listing
    (the dead letters, one destination) leaves the rest alone.
    """
    def listed(folder: Path) -> bool:
        return folder.parent.parent == base and destination in (None, folder.parent.name)

    for folder, error in _reported.settle(listed, bad).items():
        log_event(logger, "outbox_item_unreadable", logging.ERROR, item=str(folder), error=error)


def describe(exc: Exception) -> str:
    """The ``error`` of an item's line: every reader gives the same text for one fault, so the
    memo matches the deliver task's report with the sweeper's."""
    return str(exc)[:300]


def report_item(folder: Path, error: str) -> None:
    """Log one item a caller could not read outside a listing (the ``deliver`` task), unless
    ``error`` is the one last logged for it in this process, by a listing or another task.

    A pool process runs no listing, so its memo forgets here the items whose folders are gone
    (and :func:`forget` those read since): else it would grow with every item that ever broke.
    """
    if _reported.note(folder, error, forget=lambda other: not other.is_dir()):
        log_event(logger, "outbox_item_unreadable", logging.ERROR, item=str(folder), error=error)


def forget(folder: Path) -> None:
    """``folder``'s ``item.json`` was read: if it breaks again, even with the same error, log it."""
    _reported.forget(folder)
