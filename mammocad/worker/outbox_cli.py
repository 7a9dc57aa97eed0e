"""``mammocad outbox list|retry|drop``: the admin's view of results waiting for (or given up by) a destination.

Reads and changes the spool's ``outbox/`` and ``deadletter/`` folders (:mod:`mammocad.spool.outbox`)
under each item's lock, the one a delivery attempt holds, and audits what an admin gives up or
queues again. ``retry`` queues the delivery task when ``broker.url`` is set here; otherwise the
running results worker's sweeper sends the revived items.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mammocad.config import EXIT_INVALID_CONFIG, Settings, settings_for_command

if TYPE_CHECKING:  # imported where used: `mammocad --help` stays light (tests/test_cli_help.py)
    from mammocad.spool.outbox import Outbox, OutboxItem


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    o = subparsers.add_parser("outbox", help="list or retry results waiting for (or given up by) a destination")
    osub = o.add_subparsers(dest="outbox_command", metavar="COMMAND")
    osub.required = True
    ls = osub.add_parser("list", help="items waiting for delivery (or dead-lettered with --dead)")
    ls.add_argument("--dead", action="store_true", help="list the dead-letter folder instead")
    ls.set_defaults(handler=outbox_list)
    rt = osub.add_parser("retry", help="move dead-letter items back to the outbox and queue their delivery")
    rt.add_argument("item", nargs="?", help="item id, or DESTINATION/ITEM_ID")
    rt.add_argument("--all", action="store_true", help="every dead-letter item")
    rt.set_defaults(handler=outbox_retry)
    dr = osub.add_parser("drop", help="give up on items for good (audited): the study stops waiting for them",
                         description="Deletes outbox or dead-letter items without sending them, and writes an "
                                     "audit record (DICOM Instances Transferred, failed: given up). Use it for "
                                     "results a destination will never take; retention can then prune the study.")
    dr.add_argument("item", nargs="?", help="item id, or DESTINATION/ITEM_ID (see `mammocad outbox list`)")
    dr.add_argument("--dest", metavar="NAME", help="every item (waiting and dead) for this destination")
    dr.set_defaults(handler=outbox_drop)



#: How long ``outbox drop`` and ``outbox retry`` wait for an item's lock: held by a delivery
#: attempt, for at most one send (``delivery.network_timeout_s`` per batch) and its bookkeeping.
ADMIN_LOCK_WAIT_S = 5.0


def outbox_list(args: argparse.Namespace) -> int:
    from mammocad.spool.outbox import Outbox

    settings = settings_for_command(getattr(args, "config", None))
    if settings is None:
        return EXIT_INVALID_CONFIG
    unreadable: list[tuple[Path, str]] = []
    items = Outbox(settings.node.spool_dir).items(dead=args.dead, unreadable=unreadable)
    for folder, error in unreadable:  # never delivered, and retention keeps their studies
        print(f"mammocad outbox list: unreadable item {folder} ({error}); the worker skips it: correct its "
              f"item.json (docs/ARCHITECTURE.md, records), or check that the destination holds its objects and "
              f"remove the folder", file=sys.stderr)
    if not items:
        print(("dead-letter folder" if args.dead else "outbox") + (" has no readable item" if unreadable
                                                                   else " is empty"))
        return 1 if unreadable else 0
    now = time.time()
    print(f"{'DESTINATION':<16} {'ITEM':<36} {'STUDY UID':<64} {'ACCESSION':<16} {'AGE_S':>7} {'TRIES':>5} "
          f"{'NEXT_S':>7} {'FILES':>5}  LAST_ERROR")
    for i in items:
        nxt = "-" if args.dead else f"{max(0.0, i.next_attempt - now):.0f}"
        study, accession, _ = i.study()
        print(f"{i.destination:<16} {i.item_id:<36} {study or '?':<64} {accession[:16] or '-':<16} "
              f"{now - i.created:>7.0f} {i.attempts:>5} {nxt:>7} {len(i.pending_files()):>5}  {i.last_error or ''}")
    return 1 if unreadable else 0


def outbox_drop(args: argparse.Namespace) -> int:
    from mammocad.audit import events, oneshot
    from mammocad.spool.outbox import Outbox

    settings = settings_for_command(getattr(args, "config", None))
    if settings is None:
        return EXIT_INVALID_CONFIG
    if bool(args.item) == bool(args.dest):
        print("mammocad outbox drop: give one ITEM (or DESTINATION/ITEM) or --dest NAME", file=sys.stderr)
        return 2
    outbox = Outbox(settings.node.spool_dir)
    items = outbox.items() + outbox.items(dead=True)
    if args.dest:
        items = [i for i in items if i.destination == args.dest]
    else:
        dest, _, item_id = args.item.rpartition("/")
        items = [i for i in items if i.item_id == item_id and (not dest or i.destination == dest)]
    if not items:
        print(f"mammocad outbox drop: no item {args.item or 'for ' + args.dest!r}; see `mammocad outbox list` "
              "and `mammocad outbox list --dead`", file=sys.stderr)
        return 1
    try:
        oneshot.check(settings, "nothing was dropped")
    except oneshot.AuditUnavailable as exc:
        print(f"mammocad outbox drop: {exc}", file=sys.stderr)
        return 1
    for listed in items:
        with outbox.locked(listed, wait_s=ADMIN_LOCK_WAIT_S) as got:  # not while a delivery attempt is sending it
            # Read again under the lock: the attempt we waited for may have had files confirmed,
            # moved the item to the dead-letter folder (the lock is the folder's, it moved too)
            # or delivered it.
            item = (outbox.get(listed.destination, listed.item_id)
                    or outbox.get(listed.destination, listed.item_id, dead=True)) if got else None
            if item is None:
                why = "a delivery attempt holds it; try again" if not got else "it was delivered or dropped meanwhile"
                print(f"skipped {listed.destination}/{listed.item_id}: {why}", file=sys.stderr)
                continue
            study, _, _ = item.study()
            never = item.pending_files()
            try:  # audited before the files go: an item given up leaves a record or stays
                _audit_drop(settings, item, events.study_transfers(never))
            except oneshot.AuditUnavailable as exc:
                print(f"mammocad outbox drop: {exc}", file=sys.stderr)
                return 1
            outbox.drop(item, study)
        print(f"dropped {item.destination}/{item.item_id} (study {study or '?'}, {len(never)} "
              f"objects never confirmed)")
    return 0


def _peer(settings: Settings, destination: str) -> Any:
    from mammocad.audit import Peer

    try:
        dest = settings.destination(destination)
    except KeyError:  # removed from the configuration since
        return Peer(destination, "")
    return Peer(dest.ae_title, dest.host)


def _audit_drop(settings: Settings, item: Any, transfers: list[Any]) -> None:
    """DICOM Instances Transferred (serious failure), the admin as requestor: these results
    (the item's objects the destination never confirmed) will never reach it."""
    from mammocad.audit import events, oneshot

    def messages(me: Any) -> list[Any]:
        user = events.os_user()
        why = f"given up by {user.user_id} with `mammocad outbox drop`; last error: {item.last_error or 'none'}"
        return [events.instances_sent(me, _peer(settings, item.destination), transfers, error=why,
                                      requested_by=user)]

    oneshot.record(settings, "mammocad-outbox", messages)


def _audit_retry(settings: Settings, items: list[Any]) -> None:
    """Begin Transferring DICOM Instances, the admin as requestor: dead letters queued again."""
    from mammocad.audit import events, oneshot

    def messages(me: Any) -> list[Any]:
        user = events.os_user()
        return [events.transfer_requested(me, user, _peer(settings, item.destination),
                                          events.study_transfers(item.pending_files()),
                                          f"dead letter {item.item_id} queued again by {user.user_id} "
                                          f"with `mammocad outbox retry`; last error: {item.last_error or 'none'}")
                for item in items]

    oneshot.record(settings, "mammocad-outbox", messages)


def outbox_retry(args: argparse.Namespace) -> int:
    """Move dead letters back to the outbox, each under its lock (:func:`_retry_one`), and queue them."""
    from mammocad.audit import oneshot
    from mammocad.spool.outbox import Outbox

    settings = settings_for_command(getattr(args, "config", None))
    if settings is None:
        return EXIT_INVALID_CONFIG
    if bool(args.item) == bool(args.all):
        print("mammocad outbox retry: give one ITEM (or DESTINATION/ITEM) or --all", file=sys.stderr)
        return 2
    outbox = Outbox(settings.node.spool_dir)
    dead = outbox.items(dead=True)
    if args.item:
        dest, _, item_id = args.item.rpartition("/")
        dead = [i for i in dead if i.item_id == item_id and (not dest or i.destination == dest)]
        if not dead:
            print(f"mammocad outbox retry: no dead-letter item {args.item!r}; see `mammocad outbox list --dead`",
                  file=sys.stderr)
            return 1
    dead, skipped = _not_waiting(outbox, dead)
    try:
        if dead:
            oneshot.check(settings, "no dead letter was queued again")
    except oneshot.AuditUnavailable as exc:
        print(f"mammocad outbox retry: {exc}", file=sys.stderr)
        return 1
    app = _app_or_none(settings)
    requeued = 0
    for listed in dead:
        try:
            revived = _retry_one(settings, outbox, listed, app is None)
        except oneshot.AuditUnavailable as exc:
            print(f"mammocad outbox retry: {exc}", file=sys.stderr)
            return 1
        if revived is None:
            skipped += 1
            continue
        if app is not None:  # after the lock: the delivery task takes it
            from mammocad.worker.outbox_delivery import schedule_delivery

            schedule_delivery(app, str(settings.node.spool_dir), revived)
        requeued += 1
        print(f"requeued {revived.destination}/{revived.item_id} ({len(revived.pending_files())} files)")
    if app is None and requeued:
        print("no broker.url configured here: the running worker will send these within "
              f"{min(15.0, max(1.0, settings.delivery.retry_initial_s)):.0f} s")
    return 1 if skipped else 0


def _retry_one(settings: Settings, outbox: Outbox, listed: OutboxItem, unscheduled: bool) -> OutboxItem | None:
    """Audit and revive one dead letter under its lock; None (said on stderr) when it is skipped.

    The lock is the one a delivery attempt holds (``Outbox.locked``, on the item's folder, which
    moves with it): an attempt that has just dead-lettered the item still decides whether
    confirmed copies superseded it, then logs and audits it dead. Revived in that window, the
    item was logged and audited dead while it was back in the outbox (or the attempt's
    completion found its folder gone). Read again under the lock, as the attempt may have
    completed it meanwhile. Audited before it goes back: a running worker sends it at once.
    With ``unscheduled`` (no broker here) its token is emptied, so the worker's sweeper sends it.
    """
    with outbox.locked(listed, wait_s=ADMIN_LOCK_WAIT_S) as got:
        item = outbox.get(listed.destination, listed.item_id, dead=True) if got else None
        if item is None or outbox.get(listed.destination, listed.item_id) is not None:
            why = ("a delivery attempt holds it; try again" if not got and listed.path.is_dir() else
                   "an item with this id waits in the outbox (put back by another `outbox retry`?); see "
                   "`mammocad outbox list`" if outbox.get(listed.destination, listed.item_id) is not None else
                   "it left the dead letters meanwhile (dropped, or completed as superseded by a confirmed "
                   "`studies resend` copy)")
            print(f"skipped {listed.destination}/{listed.item_id}: {why}", file=sys.stderr)
            return None
        _audit_retry(settings, [item])
        revived = outbox.revive(item.destination, item.item_id)
        if unscheduled:  # an empty token tells the running worker's sweeper to send it now
            revived.token = ""
            outbox.save(revived)
    return revived


def _not_waiting(outbox: Any, dead: list[Any]) -> tuple[list[Any], int]:
    """The dead letters that can go back, and how many were left because an item with the same
    id waits in the outbox (said on stderr).

    That outbox copy is the live one: a delivery chain owns it (its token), and the dead
    copy is an older state of the same report (the same objects, fewer or more of them
    confirmed). Replacing either could lose objects never confirmed; queueing both would
    send the report twice. So the dead letter stays as it is, for the admin to drop or
    retry once the live copy is delivered.
    """
    retry, skipped = [], 0
    for item in dead:
        waiting = outbox.get(item.destination, item.item_id)
        if waiting is None:
            retry.append(item)
            continue
        skipped += 1
        sent = {p.stem for p in waiting.files()}
        extra = [p for p in item.pending_files() if p.stem not in sent]
        more = (f"; the dead letter holds {len(extra)} objects the outbox item does not, `mammocad outbox retry "
                f"{item.destination}/{item.item_id}` sends them once that item is delivered") if extra else (
                f"; once it is delivered, `mammocad outbox drop {item.destination}/{item.item_id}` removes "
                "the dead letter")
        print(f"skipped {item.destination}/{item.item_id}: an item with this id is waiting in the outbox "
              f"({len(waiting.pending_files())} objects to send, {waiting.attempts} attempts): it is the live "
              f"copy and the worker delivers it; the dead letter was left as it is, not queued, so the report "
              f"is not sent twice{more}", file=sys.stderr)
    return retry, skipped


def _app_or_none(settings: Settings):  # type: ignore[no-untyped-def]
    if not settings.broker.url:
        return None
    from mammocad.spool.broker import make_celery

    return make_celery(settings)

