"""The Celery tasks as a contract: names, queues and argument lists.

The node and the workers may run on different machines with different code loaded, so
what one side sends and the other registers is spelled out once, here, below both. Every
argument is JSON (paths as strings, UIDs, lists of UIDs); the builders below are the only
places that put argument lists together, so a change of signature is a change here.

| task | queue (``worker.*_queue``) | args | kwargs |
| --- | --- | --- | --- |
| ``mammocad.analyze_image`` | analysis | ``[spool_dir, study_uid, sop_uid]`` | — |
| ``mammocad.finalize_study`` | results | ``[spool_dir, study_uid, sorted sop_uids]`` | ``first_try`` (retries), ``revision`` (re-analysis) |
| ``mammocad.deliver`` | results | ``[spool_dir, destination, item_id]`` | ``token`` |
"""

from __future__ import annotations

import os
from collections.abc import Iterable

TASK_ANALYZE_IMAGE = "mammocad.analyze_image"
TASK_FINALIZE_STUDY = "mammocad.finalize_study"
TASK_DELIVER = "mammocad.deliver"

#: Which queue setting each task goes to: "analysis" → ``worker.analysis_queue`` (GPU
#: workers), "results" → ``worker.results_queue``.
TASK_QUEUES: dict[str, str] = {
    TASK_ANALYZE_IMAGE: "analysis",
    TASK_FINALIZE_STUDY: "results",
    TASK_DELIVER: "results",
}

PathLike = str | os.PathLike[str]


def analyze_image_args(spool_dir: PathLike, study_uid: str, sop_uid: str) -> list[str]:
    """Arguments of ``mammocad.analyze_image``: analyse one spooled image."""
    return [str(spool_dir), study_uid, sop_uid]


def finalize_study_args(spool_dir: PathLike, study_uid: str, sop_uids: Iterable[str]) -> list[object]:
    """Arguments of ``mammocad.finalize_study``: report on exactly these images (sorted)."""
    return [str(spool_dir), study_uid, sorted(sop_uids)]


def deliver_args(spool_dir: PathLike, destination: str, item_id: str) -> list[str]:
    """Arguments of ``mammocad.deliver``: one attempt at one outbox item (kwarg ``token``)."""
    return [str(spool_dir), destination, item_id]
