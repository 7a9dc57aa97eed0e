"""One delivery attempt of an outbox item, and the task chains that schedule attempts.

An attempt sends the item's pending files, then delivers it (all accepted), schedules the
next try with backoff, or dead-letters it at the deadline (unless confirmed ``studies resend``
copies carried all it holds: then it is completed, ``superseded``). Every item has one live chain of
``deliver`` tasks (``tasks.deliver``), named by its ``token``: :func:`requeue_due` replaces
the token when it restarts an overdue item, and tasks of an older chain then drop out.
``attempt`` must run under the item's lock (``Outbox.locked``).
"""

from __future__ import annotations

import logging
import time
import uuid

from celery import Celery

from mammocad.audit import AuditTrail
from mammocad.config import Destination, Settings
from mammocad.logs import log_event
from mammocad.spool.outbox import Outbox, OutboxItem
from mammocad.spool.superseded import superseding_copies
from mammocad.spool.tasks import TASK_DELIVER, deliver_args
from mammocad.worker import observer
from mammocad.worker.delivery import DeliveryError, store_files

logger = logging.getLogger(__name__)

#: Appended to the error of an item given up before its deadline (docs/CONFORMANCE.md 4.2.4).
PERMANENT_HINT = ("not retried: the destination refuses it permanently (a SOP class or transfer syntax it does not "
                  "accept, a data set error status, or a permanent association rejection); change the PACS's "
                  "configuration or the destination's `outputs`, then `mammocad outbox retry`, or `mammocad outbox drop`")


def schedule_delivery(app: Celery, spool_dir: str, item: OutboxItem, countdown: float = 0.0) -> None:
    """Queue one delivery attempt of ``item``'s chain (countdown kept below the visibility timeout)."""
    vis = float(app.conf.broker_transport_options.get("visibility_timeout", 3600))
    app.send_task(TASK_DELIVER, args=deliver_args(spool_dir, item.destination, item.item_id),
                  kwargs={"token": item.token}, countdown=max(0.0, min(countdown, vis / 2)))


def attempt(settings: Settings, outbox: Outbox, item: OutboxItem, trail: AuditTrail | None = None
             ) -> tuple[str, float | None]:
    """Send the pending files; return the outcome and, on failure, the seconds until the next try.

    An item is dead-lettered at the deadline, or at once when everything still pending was
    refused for good (:attr:`FileStatus.permanent`, :attr:`DeliveryError.permanent`):
    retrying those for ``delivery.deadline_s`` only delays the ERROR an admin must act on.
    The objects the peer stored stay in ``delivered`` and are never sent again.
    """
    error, refused_for_good = None, False
    dest: Destination | None = None
    try:
        dest = settings.destination(item.destination)
    except KeyError:
        return _removed_destination(outbox, item, trail)
    try:
        with observer.stage("send"):
            statuses = store_files(dest, item.pending_files(), calling_ae=settings.node.ae_title,
                                   timeout_s=settings.delivery.network_timeout_s, associations=dest.associations)
    except DeliveryError as exc:
        statuses, error, refused_for_good = [], str(exc), exc.permanent
    except Exception as exc:
        statuses, error = [], f"{type(exc).__name__}: {exc}"
    accepted = [s for s in statuses if s.ok and s.sop_uid not in item.delivered]
    item.delivered += [s.sop_uid for s in accepted]
    # Read before the item's files go. Audited per attempt: what was stored left this node.
    accepted_studies = observer.item_studies([s.path for s in accepted])
    if not item.pending_files():
        studies = observer.item_studies(item.files())
        outbox.complete(item)
        log_event(logger, "delivered", dest=item.destination, item=item.item_id, files=len(item.delivered),
                  attempts=item.attempts + 1, seconds=round(time.time() - item.created, 2))
        observer.delivered(trail, dest, item.destination, accepted_studies,
                           observer.last_received(outbox.spool, [s.study_uid for s in studies], item.item_id))
        return "delivered", None
    observer.accepted_by(trail, dest, item.destination, accepted_studies)
    item.attempts += 1
    failed = [s for s in statuses if not s.ok]
    refused_for_good = refused_for_good or (bool(failed) and all(s.permanent for s in failed))
    # ``error`` goes to the logs; the item's error adds the peer's free-text comment for the admin.
    error = error or next((s.error for s in failed), None) or "unknown error"
    error = f"{error}; {PERMANENT_HINT}" if refused_for_good else error
    comment = next((s.comment for s in failed if s.comment), "")
    item.last_error = f"{error} (peer's comment: {comment})" if comment else error
    t = time.time()
    d = settings.delivery
    if refused_for_good or t - item.created >= d.deadline_s:
        outbox.save(item)
        outbox.dead_letter(item)  # before asking for copies: see Outbox.complete
        if _superseded(outbox, item, error):
            return "superseded", None
        observer.dead(trail, dest, item.destination, observer.item_studies(item.pending_files()),
                      item.last_error or "")
        log_event(logger, "dead_letter", level=logging.ERROR, dest=item.destination, item=item.item_id,
                  attempts=item.attempts, permanent=refused_for_good, error=error,
                  dead_items=len(outbox.items(dead=True, destination=item.destination)))
        return "dead", None
    delay = min(d.retry_max_s, d.retry_initial_s * 2 ** (item.attempts - 1))
    delay = max(0.0, min(delay, item.created + d.deadline_s - t))  # one last try at the deadline
    item.next_attempt = t + delay
    outbox.save(item)
    observer.retried(item.destination)
    log_event(logger, "delivery_retry", level=logging.WARNING, dest=item.destination, item=item.item_id,
              attempts=item.attempts, retry_in=round(delay, 1), error=error)
    return "retry", delay


def _removed_destination(outbox: Outbox, item: OutboxItem, trail: AuditTrail | None = None
                         ) -> tuple[str, None]:
    """The destination is no longer configured: retrying cannot help, dead-letter now.

    ``mammocad outbox retry`` brings it back once the destination is added again;
    ``mammocad outbox drop`` gives it up (and lets retention prune the study).
    """
    item.last_error = (f"destination {item.destination!r} is not in the configuration (removed?): "
                       "not retried; `mammocad outbox retry` after adding it back, or `mammocad outbox drop`")
    outbox.save(item)
    outbox.dead_letter(item)  # before asking for copies: see Outbox.complete
    if _superseded(outbox, item, item.last_error):
        return "superseded", None
    observer.dead(trail, None, item.destination, observer.item_studies(item.pending_files()), item.last_error)
    log_event(logger, "dead_letter", level=logging.ERROR, dest=item.destination, item=item.item_id,
              attempts=item.attempts, error=item.last_error)
    return "dead", None


def _superseded(outbox: Outbox, item: OutboxItem, error: str) -> bool:
    """Complete instead of dead-lettering ``item`` when confirmed ``studies resend`` copies of
    its lineage carried every object it has pending (:func:`superseding_copies`).

    The copy was confirmed while this item was still in the outbox, so its confirmation could
    not retire it (:meth:`Outbox.complete` retires dead letters only); dead-lettered now, it
    sat in ``deadletter/`` with nothing the destination lacks until an admin ran ``outbox
    drop``, and retention kept the study. Nothing is audited: the copy's transfer was.
    ``item`` is already in ``deadletter/`` (under its lock), so a copy confirmed after this
    looked finds it there and retires it.
    """
    copies = superseding_copies(outbox, item)
    if not copies:
        return False
    pending = len(item.pending_files())
    outbox.complete(item)
    observer.superseded(item.destination)
    log_event(logger, "delivery_superseded", dest=item.destination, item=item.item_id, copies=",".join(copies),
              objects=pending, attempts=item.attempts, error=error,
              why="confirmed studies resend copies carried every object it had pending: completed, not dead-lettered")
    return True


#: How often the results worker's sweeper (``worker/cli.py``) retires the dead letters confirmed
#: copies carried (:func:`~mammocad.spool.superseded.retire_superseded_dead_letters`), first at the
#: worker's start: it reads each dead letter's headers and its study's records, too much for every
#: 15 s pass of :func:`requeue_due`, and a copy's confirmation retires the dead letters it
#: superseded at once, so the sweep only catches what that could not.
DEAD_SWEEP_INTERVAL_S = 600.0


def requeue_due(app: Celery, spool_dir: str, grace_s: float) -> int:
    """Start a new delivery chain for every item overdue by more than ``grace_s``.

    Recovers items whose scheduled task was lost (broker restarted without its data, a
    crash between writing the outbox and queueing). Returns how many were requeued.
    """
    outbox = Outbox(spool_dir)
    n = 0
    for item in outbox.items():
        if item.token and time.time() < item.next_attempt + grace_s:
            continue  # an empty token means nobody scheduled it (e.g. `outbox retry` without a broker)
        with outbox.locked(item) as got:
            fresh = outbox.get(item.destination, item.item_id) if got else None
            if fresh is not None:
                fresh.token = uuid.uuid4().hex
                outbox.save(fresh)
        if fresh is not None:
            schedule_delivery(app, spool_dir, fresh)
            n += 1
    if n:
        log_event(logger, "outbox_requeued", items=n, grace=grace_s)
    return n



def revive(app: Celery, spool_dir: str, destination: str, item_id: str) -> OutboxItem:
    """Move a dead-letter item back to the outbox and queue its delivery now."""
    item = Outbox(spool_dir).revive(destination, item_id)
    schedule_delivery(app, spool_dir, item)
    return item
