"""When is a study complete? Four screening views, or a quiet spell.

Screening mammography is R/L × CC/MLO; an image's breast is the one the model analyses it as
(``dicom.header.breast_from_header``: Patient Orientation's when it names one). A study is
declared complete as soon as those four views are in, or after ``study_timeout_s`` without
a new image (extra views, missing views, film archives without view attributes). An image arriving after the
declaration reopens the study; it then completes again by timeout with the bigger set.
The tracker is pure bookkeeping: the dispatcher thread owns it and writes the files, and
tells it (``declared`` / ``declare_failed``) whether the write worked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

FOUR_VIEWS = frozenset({("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO")})


@dataclass
class _Study:
    views: dict[str, tuple[str, str]] = field(default_factory=dict)
    last_seen: float = 0.0
    completed_once: bool = False


@dataclass(frozen=True)
class Completion:
    study_uid: str
    sop_uids: list[str]
    reason: str  # "four_views" | "timeout"


class StudyTracker:
    """Open studies and their views, timed with the monotonic clock."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._now = time.monotonic
        self._open: dict[str, _Study] = {}

    def open_studies(self) -> list[str]:
        return sorted(self._open)

    def resume(self, study_uid: str, views: dict[str, tuple[str, str]], idle_s: float,
               completed_once: bool = False) -> None:
        """Track a study found on disk at start-up, ``idle_s`` after its newest image."""
        self._open[study_uid] = _Study(dict(views), self._now() - max(idle_s, 0.0), completed_once)

    def image_arrived(self, study_uid: str, sop_uid: str, laterality: str, view: str,
                      completed_sops: list[str] | None) -> Completion | None:
        """Record an image; return a completion when it makes the four views.

        ``completed_sops`` is the set of the study's last complete.json (None if never
        completed): an image in it changes nothing, any other image reopens the study.
        """
        study = self._open.get(study_uid)
        if study is None:
            if completed_sops is not None and sop_uid in completed_sops:
                return None
            study = _Study(completed_once=completed_sops is not None)
            for sop in completed_sops or []:
                study.views[sop] = ("", "")
            self._open[study_uid] = study
        study.views[sop_uid] = (laterality, view)
        study.last_seen = self._now()
        if not study.completed_once and FOUR_VIEWS <= set(study.views.values()):
            return self._complete(study_uid, "four_views")
        return None

    def due(self) -> list[Completion]:
        """Studies quiet for ``timeout_s``: complete them now.

        They stay open until :meth:`declared` says their completion is on disk; a
        completion that could not be written (:meth:`declare_failed`) is tried again
        after another ``timeout_s``, never dropped.
        """
        now = self._now()
        quiet = [uid for uid, s in self._open.items() if now - s.last_seen >= self.timeout_s]
        return [self._complete(uid, "timeout") for uid in quiet]

    def declared(self, completion: Completion) -> None:
        """The completion is durable: stop following the study (unless it grew meanwhile)."""
        study = self._open.get(completion.study_uid)
        if study is not None and sorted(study.views) == completion.sop_uids:
            del self._open[completion.study_uid]

    def declare_failed(self, completion: Completion) -> None:
        """Writing the completion failed: keep the study and try again after ``timeout_s``."""
        study = self._open.get(completion.study_uid)
        if study is not None:
            study.last_seen = self._now()

    def _complete(self, study_uid: str, reason: str) -> Completion:
        study = self._open[study_uid]
        return Completion(study_uid, sorted(study.views), reason)
