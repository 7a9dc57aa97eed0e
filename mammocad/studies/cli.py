"""``mammocad studies list|show|resend|reanalyse``: see and act on studies.

Exit status: 0 success, 1 the action failed (unknown study, nothing to send, no broker),
2 bad command line (a STUDY_UID that is not a UID) or configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from mammocad.config import EXIT_INVALID_CONFIG, settings_for_command
from mammocad.studies.status import STATES, StudyStatus


def _study_uid(text: str) -> str:
    """argparse type of STUDY_UID: a malformed one is a bad command line (exit 2), not an unknown study."""
    from mammocad.spool.layout import InvalidUIDError, validate_uid  # on use: `mammocad --help` stays light

    try:
        return validate_uid(text, "STUDY_UID")
    except InvalidUIDError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; give the Study Instance UID as `mammocad studies list` "
                                         "prints it") from None


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "studies", help="list studies with their analysis and delivery per destination; resend or re-analyse one",
        description="What happened to each study in the spool, and the actions an admin can take on one.")
    sub = p.add_subparsers(dest="studies_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="one line per study: received, images, analysed, report, destinations")
    ls.add_argument("--state", choices=STATES, help="only studies in this state (failed: a destination "
                    "dead-lettered, or the report has no analysed image or lacks an output kind; pending: not "
                    "reported or not yet delivered; delivered: every destination)")
    ls.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    ls.set_defaults(handler=studies_list)
    show = sub.add_parser("show", help="everything known about one study")
    show.add_argument("uid", metavar="STUDY_UID", type=_study_uid)
    show.add_argument("--json", action="store_true", help="JSON instead of text")
    show.set_defaults(handler=studies_show)
    rs = sub.add_parser("resend", help="deliver the study's last report again (the same objects, same UIDs)")
    rs.add_argument("uid", metavar="STUDY_UID", type=_study_uid)
    rs.add_argument("--dest", action="append", metavar="NAME",
                    help="only this destination (repeatable; default: every configured destination)")
    rs.set_defaults(handler=studies_resend)
    ra = sub.add_parser("reanalyse", aliases=["reanalyze"],
                        help="analyse the study again and send the result as an amended report "
                             "(new UIDs; cites the previous report as predecessor)")
    ra.add_argument("uid", metavar="STUDY_UID", type=_study_uid)
    ra.set_defaults(handler=studies_reanalyse)



def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def _dests(status: StudyStatus) -> str:
    return ", ".join(f"{d}={s}" for d, s in status.destinations.items()) or "-"


def studies_list(args: argparse.Namespace) -> int:
    from mammocad.studies.status import all_statuses

    settings = settings_for_command(getattr(args, "config", None))
    if settings is None:
        return EXIT_INVALID_CONFIG
    statuses = all_statuses(settings.node.spool_dir, args.state, lease_s=settings.worker.lease_s)
    if args.json:
        for s in statuses:
            print(json.dumps(s.to_json()))
        return 0
    if not statuses:
        print(f"no studies{' in state ' + args.state if args.state else ''} in {settings.node.spool_dir}")
        return 0
    print(f"{'STUDY UID':<64}  {'ACCESSION':<16}  {'RECEIVED':<19}  {'IMAGES':>6}  {'ANALYSED':>8}  "
          f"{'REPORT':>6}  {'STATE':<9}  DESTINATIONS")
    for s in statuses:
        report = f"v{s.revision}" if s.revision is not None else "-"
        print(f"{s.study_uid:<64}  {s.accession[:16]:<16}  {_when(s.received):<19}  {s.images:>6}  "
              f"{s.analysed:>8}  {report:>6}  {s.state:<9}  {_dests(s)}")
    return 0


def studies_show(args: argparse.Namespace) -> int:
    from mammocad.studies.status import study_status, unknown_study

    settings = settings_for_command(getattr(args, "config", None))
    if settings is None:
        return EXIT_INVALID_CONFIG
    try:
        status = study_status(settings.node.spool_dir, args.uid, lease_s=settings.worker.lease_s)
    except ValueError as exc:
        print(f"mammocad studies show: {exc}", file=sys.stderr)
        return 1
    if not status.images and not status.reports:
        print(f"mammocad studies show: {unknown_study(args.uid, settings.node.spool_dir)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status.to_json(), indent=1))
        return 0
    print(f"study      {status.study_uid}")
    print(f"accession  {status.accession or '-'}")
    print(f"received   {_when(status.received)} (last image)")
    print(f"images     {status.images} received, {status.analysed} analysed"
          + (f", {status.failed_images} failed analysis" if status.failed_images else ""))
    print(f"report     {status.report or 'none yet'}"
          + (f" (version {status.revision}; {status.reports} report(s) in all)" if status.report else ""))
    if status.answered_how:
        print(f"           {status.answered_how}")
    print(f"state      {status.state}")
    for problem in status.problems:
        print(f"problem    {problem}")
    if status.waiting_for:
        print(f"waiting    for {status.waiting_for}")
    for dest, state in status.destinations.items():
        error = status.errors.get(dest)
        print(f"  {dest:<16} {state}" + (f"  last error: {error}" if error else ""))
    return 0


def studies_resend(args: argparse.Namespace) -> int:
    from mammocad.studies.actions import ActionError, resend

    settings = settings_for_command(getattr(args, "config", None))
    if settings is None:
        return EXIT_INVALID_CONFIG
    try:
        items = resend(settings, args.uid, args.dest)
    except (ActionError, KeyError, ValueError) as exc:
        why = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # KeyError's str() quotes it
        print(f"mammocad studies resend: {why}", file=sys.stderr)
        return 1
    if not items:
        print("nothing queued: no destination takes any of this report's output kinds")
        return 1
    for item in items:
        print(f"queued {item.destination}/{item.item_id} ({len(item.files())} objects)")
    return 0


def studies_reanalyse(args: argparse.Namespace) -> int:
    from mammocad.studies.actions import ActionError, reanalyse

    settings = settings_for_command(getattr(args, "config", None))
    if settings is None:
        return EXIT_INVALID_CONFIG
    from mammocad.logs import configure_logging

    configure_logging(settings.log_level, settings.log_json)  # event=reanalyse_refused and friends
    try:
        done = reanalyse(settings, args.uid)
    except (ActionError, ValueError) as exc:
        print(f"mammocad studies reanalyse: {exc}", file=sys.stderr)
        return 1
    if done.resumed:
        print(f"a re-analysis of {args.uid} (amended report version {done.revision}) was already under way: "
              f"nothing deleted, queued again what it lacks ({done.analyses} image(s) to analyse, and the "
              "amended report); follow it with `mammocad studies show`")
        return 0
    print(f"queued a new analysis of {args.uid}: it will be sent as amended report version {done.revision} "
          "(follow it with `mammocad studies show`)")
    return 0
