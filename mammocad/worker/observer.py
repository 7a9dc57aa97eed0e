"""What the workers report: stage durations, model time, detector errors, delivery
outcomes, the latency from last image received to results accepted, and audit messages.

Called from the Celery tasks, after the work they report is done (a result written, an outbox
item completed or dead-lettered): every function swallows its own errors and logs each on one
line, so a metric or audit problem never fails an analysis or a delivery, nor stops the rest of
what the function reports. A metric that fails (its multiprocess folder gone, a full disk) logs
``metric_failed`` and the audit message is still sent; an audit message that cannot be made
logs ``audit_failed`` at ERROR, since the trail then lacks a record (the trail itself never
raises: it counts and logs what its sinks drop).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mammocad.audit import AuditMessage, AuditTrail, Peer, StudyTransfer, events
from mammocad.config import Destination, Settings
from mammocad.logs import log_event, safe_error
from mammocad.metrics import definitions as m
from mammocad.metrics import safe
from mammocad.spool.layout import Spool

logger = logging.getLogger(__name__)


def _metric(name: str, update: Callable[[], object]) -> None:
    """Apply ``update`` to the metric ``name``; a failure is a rate-limited ``metric_failed`` line, never raised."""
    safe.update(name, update)


def _audit(trail: AuditTrail | None, what: str, destination: str, message: Callable[[], AuditMessage]) -> None:
    """Emit the audit message ``message()`` makes; one that cannot be made is an ERROR line, not an exception.

    Loud, not silent: the audit trail then lacks a record an auditor expects (``what``, to ``destination``).
    """
    if trail is None:
        return
    try:
        trail.emit(message())
    except Exception as exc:  # noqa: BLE001 - the delivery is done; its bookkeeping must go on
        log_event(logger, "audit_failed", logging.ERROR, audit=what, dest=destination, error=safe_error(exc))


def make_trail(settings: Settings) -> AuditTrail:
    return AuditTrail.from_settings(settings.audit, settings.node.ae_title, "mammocad-worker")


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time a pipeline stage (wait, analyse, build, send) into ``mammocad_stage_seconds``."""
    t0 = time.monotonic()
    try:
        yield
    finally:  # never raises: a failing metric must not replace the stage's outcome (a send's statuses)
        _metric("mammocad_stage_seconds", lambda: m.STAGE_SECONDS.labels(name).observe(time.monotonic() - t0))


def image_waited(image: Path) -> None:
    """Stage ``wait``: from the image's arrival in the spool (its mtime) to analysis start."""
    try:
        waited = max(0.0, time.time() - image.stat().st_mtime)
    except OSError:  # gone already (pruned): nothing to time
        return
    _metric("mammocad_stage_seconds", lambda: m.STAGE_SECONDS.labels("wait").observe(waited))


def _error_reason(error: str) -> str:
    if error.startswith("cannot read"):
        return "unreadable"
    if "soft_time_limit" in error:
        return "time_limit"
    if "stopped the worker" in error:
        return "crashed"
    return "failed"


def analysed(result: Any) -> None:
    """Model seconds for an analysed image; a detector error (with its reason) otherwise."""
    if result.error:
        _metric("mammocad_images_analysed", lambda: m.IMAGES_ANALYSED.labels("error").inc())
        _metric("mammocad_detector_errors", lambda: m.DETECTOR_ERRORS.labels(_error_reason(str(result.error))).inc())
        return
    _metric("mammocad_images_analysed", lambda: m.IMAGES_ANALYSED.labels("ok").inc())
    _metric("mammocad_model_seconds_per_image",
            lambda: m.MODEL_SECONDS.labels(result.device or "unknown").observe(float(result.seconds)))


def item_studies(files: list[Path]) -> list[StudyTransfer]:
    """Per study: SOP classes and counts, patient ID and accession of result files (headers only)."""
    return events.study_transfers(files)


def last_received(spool_dir: str | Path, study_uids: list[str], report_key: str) -> float | None:
    """When the node received the last image of the report's studies: the newest image
    file's modification time (the node writes each image once, on receipt).

    The images the report was built from when the report is found; else every image of
    the study. None when none can be found (pruned, or not a study of this spool).
    """
    spool = Spool(spool_dir)
    newest: float | None = None
    for uid in study_uids:
        try:
            report = next((r for r in spool.reports(uid) if r.report_key == report_key), None)
            sops = list(report.sop_uids) if report is not None else spool.image_sops(uid)
            for sop in sops:
                image = spool.image_path(uid, sop)
                if image.exists():
                    mtime = image.stat().st_mtime
                    newest = mtime if newest is None else max(newest, mtime)
        except (OSError, ValueError):
            continue
    return newest


def delivered(trail: AuditTrail | None, dest: Destination | None, destination: str, accepted: list[StudyTransfer],
              last_received: float | None) -> None:
    """Every file of an item accepted by ``destination``: latency, delivery counter, and the
    audit message of the files this last attempt got accepted (:func:`accepted`)."""
    _metric("mammocad_delivery_attempts", lambda: m.DELIVERIES.labels(destination, "delivered").inc())
    if last_received is not None:
        latency = max(0.0, time.time() - last_received)
        _metric("mammocad_result_latency_seconds", lambda: m.RESULT_LATENCY.labels(destination).observe(latency))
    accepted_by(trail, dest, destination, accepted)


def accepted_by(trail: AuditTrail | None, dest: Destination | None, destination: str,
                studies: list[StudyTransfer]) -> None:
    """Audit the objects one attempt got accepted (DICOM Instances Transferred, success).

    Per attempt, not per item: when the destination takes some files of an item and refuses
    others, the ones it stored left this node, whatever becomes of the rest.
    """
    if studies and trail is not None:
        _audit(trail, "instances_sent", destination,
               lambda: events.instances_sent(trail.identity, _peer(dest, destination), studies))


def retried(destination: str) -> None:
    _metric("mammocad_delivery_attempts", lambda: m.DELIVERIES.labels(destination, "retry").inc())


def superseded(destination: str) -> None:
    """An item completed at its deadline because confirmed ``studies resend`` copies carried all it
    held: its own outcome, neither ``delivered`` (no attempt of its own delivered it) nor ``dead``
    (nothing for an admin to do), so the scrape tells them apart. Not audited: the copies' transfers were."""
    _metric("mammocad_delivery_attempts", lambda: m.DELIVERIES.labels(destination, "superseded").inc())


def dead(trail: AuditTrail | None, dest: Destination | None, destination: str, studies: list[StudyTransfer],
         error: str) -> None:
    """An item dead-lettered: counted, and its objects never confirmed audited as a failed transfer."""
    _metric("mammocad_delivery_attempts", lambda: m.DELIVERIES.labels(destination, "dead").inc())
    if trail is not None:
        _audit(trail, "instances_sent_failed", destination,
               lambda: events.instances_sent(trail.identity, _peer(dest, destination), studies,
                                             error=error or "not confirmed"))


def _peer(dest: Destination | None, destination: str) -> Peer:
    return Peer(dest.ae_title, dest.host) if dest is not None else Peer(destination, "")
