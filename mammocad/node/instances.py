"""Which study holds each SOP Instance UID the spool keeps: one instance, one study.

A SOP Instance UID names one image wherever it travels (PS3.3 C.12.1.1.1), yet the spool is
laid out per study: the same image sent again under another Study Instance UID (a study
merged or re-identified at the PACS, a modality that reuses UIDs) would be stored a second
time, analysed again and reported in two studies, possibly two patients'. The node refuses
such a conflicting duplicate (docs/CONFORMANCE.md); this index tells it which study holds an
instance without looking through every study folder.

The spool itself is the durable record: the index is built from its files when the node
starts, so it survives restarts, and an entry whose file is gone (retention removed the
study) no longer counts. One node serves a spool (the instance lock), so memory is enough.

"Gone" means gone from ``tmp/`` too: retention renames a study folder into ``tmp/`` before it
deletes it, and puts it back when an image of the study arrived meanwhile. An instance found
in neither place during that window was taken for pruned, and the same instance under another
study was accepted; the folder then came back, and both studies held it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from mammocad.logs import log_event
from mammocad.spool.layout import Spool, is_uid
from mammocad.spool.retention_moves import moved_away, moved_uid

logger = logging.getLogger("mammocad.node")


class InstanceIndex:
    """SOP Instance UID -> Study Instance UID of every object in ``studies/`` and ``other/``."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._held: dict[str, str] = {}
        self._writing: set[str] = set()  # claimed, not yet on disk: trusted without a look at the disk
        self._lock = threading.Lock()

    def load(self) -> int:
        """Index what the spool holds now (at start-up, before any association); return how many."""
        held: dict[str, str] = {}
        for folder in (self.spool.studies, self.spool.other):
            studies = sorted(p for p in folder.iterdir() if p.is_dir() and is_uid(p.name)) if folder.is_dir() else []
            for study in studies:
                files = (study / "images").glob("*.dcm") if folder == self.spool.studies else study.glob("*.dcm")
                for path in sorted(files):
                    if is_uid(path.stem):
                        held.setdefault(path.stem, study.name)
        # A folder retention is removing right now (a worker prunes while the node starts) may come back.
        for moved in sorted(self.spool.tmp.iterdir()) if self.spool.tmp.is_dir() else []:
            study_uid = moved_uid(moved)
            if study_uid is None:
                continue
            for path in sorted([*moved.glob("images/*.dcm"), *moved.glob("*.dcm")]):
                if is_uid(path.stem):
                    held.setdefault(path.stem, study_uid)
        with self._lock:
            self._held = held
        log_event(logger, "instances_indexed", instances=len(held))
        return len(held)

    def _on_disk(self, study_uid: str, sop_uid: str) -> bool:
        """True while the spool holds the instance for ``study_uid``, retention's window included.

        Retention (another process) renames the folder into ``tmp/`` and may rename it, or each
        file, back: looking in the study folder, then in ``tmp/``, then in the study folder again
        finds a file that moved either way between two looks.
        """
        def in_place() -> bool:
            return (self.spool.image_path(study_uid, sop_uid).exists()
                    or self.spool.other_path(study_uid, sop_uid).exists())

        name = f"{sop_uid}.dcm"
        return (in_place()
                or any((m / "images" / name).exists() or (m / name).exists() for m in moved_away(self.spool, study_uid))
                or in_place())

    @contextmanager
    def claim(self, sop_uid: str, study_uid: str) -> Iterator[str | None]:
        """Yield None when ``study_uid`` may keep ``sop_uid`` (held for it while the caller
        writes; forgotten again if nothing reached the disk), else the study that holds it.

        An entry whose file is gone is stale (the study was pruned) and is replaced; a file in a
        folder retention has renamed into ``tmp/`` is not gone yet (:meth:`_on_disk`).
        """
        with self._lock:
            holder = self._held.get(sop_uid)
            if holder is not None and holder != study_uid and (
                    sop_uid in self._writing or self._on_disk(holder, sop_uid)):
                conflict: str | None = holder
            else:
                conflict = None
                self._held[sop_uid] = study_uid
                self._writing.add(sop_uid)
        if conflict is not None:
            yield conflict
            return
        try:
            yield None
        finally:
            with self._lock:
                self._writing.discard(sop_uid)
                if self._held.get(sop_uid) == study_uid and not self._on_disk(study_uid, sop_uid):
                    del self._held[sop_uid]  # refused or not written: another study may have it
