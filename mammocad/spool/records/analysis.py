"""Records of a study's analysis: each image's result, the node's completion declaration,
an admin's re-analysis request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mammocad.model.results import ImageResult
from mammocad.spool.records import RecordError, check_version, int_field, load_json, time_field, uid_list

IMAGE_RESULT_VERSION = 1
COMPLETION_VERSION = 1
REANALYSIS_VERSION = 1


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
        return cls(sop_uids=uid_list(data, "sop_uids", what), reason=str(data.get("reason", "")),
                   declared_at=time_field(data, "declared_at", what))

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
        sops = uid_list(data, "sop_uids", what)  # checked before the revision, as it always was
        return cls(revision=int_field(data, "revision", what, minimum=1, meaning="a positive integer"),
                   sop_uids=sops, requested_at=time_field(data, "requested_at", what))

    @classmethod
    def read(cls, path: Path) -> ReanalysisRecord:
        return cls.from_json(load_json(path), path.name)
