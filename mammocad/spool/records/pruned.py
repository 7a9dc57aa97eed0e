"""The record retention leaves of a study it removed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mammocad.spool.records import check_version, int_field, load_json, time_field, uid_list

PRUNED_VERSION = 1


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
        return cls(sop_uids=uid_list(data, "sop_uids", what),
                   reports=int_field(data, "reports", what, minimum=0, meaning="a count"),
                   pruned_at=time_field(data, "pruned_at", what))

    @classmethod
    def read(cls, path: Path) -> PrunedRecord:
        return cls.from_json(load_json(path), path.name)
