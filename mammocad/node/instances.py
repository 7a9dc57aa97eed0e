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
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from mammocad.logs import log_event
from mammocad.spool.layout import Spool, is_uid

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
        with self._lock:
            self._held = held
        log_event(logger, "instances_indexed", instances=len(held))
        return len(held)

    def _on_disk(self, study_uid: str, sop_uid: str) -> bool:
        return (self.spool.image_path(study_uid, sop_uid).exists()
                or self.spool.other_path(study_uid, sop_uid).exists())

    @contextmanager
    def claim(self, sop_uid: str, study_uid: str) -> Iterator[str | None]:
        """Yield None when ``study_uid`` may keep ``sop_uid`` (held for it while the caller
        writes; forgotten again if nothing reached the disk), else the study that holds it.

        An entry whose file is gone is stale (the study was pruned) and is replaced.
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
