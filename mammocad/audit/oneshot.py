"""Audit records from short-lived admin commands (``mammocad aet|dest|studies|outbox ...``).

A command emits its message and waits for the sender to write it before the process ends,
so an edit is never left unaudited because the program exited first.

An admin action takes effect only with its audit record: the record must be in the audit
file (when ``[audit] file`` is set; else taken by the syslog collector). The file belongs to
the services' user (``/var/log/mammocad``, mode 0750, file 0640, deploy/systemd): an admin
running a command as themselves can read it but not append to it, and a trail its own
subjects could rewrite is no audit trail, so it is not made group-writable. Such a command
is refused instead (:class:`AuditUnavailable`), telling the admin to run it as the file's
owner through ``sudo -u``; the record then names the admin as ``sudo by USER``
(:func:`mammocad.audit.events.os_user`). Before this, the record was dropped with one
``audit_dropped`` line and the action went ahead unaudited.
"""

from __future__ import annotations

import os
import pwd
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomlkit

from mammocad.audit import codes, events
from mammocad.audit.events import Identity
from mammocad.audit.messages import AuditMessage
from mammocad.audit.trail import AuditTrail
from mammocad.config.settings import Settings


class AuditUnavailable(ValueError):
    """The admin action's audit record cannot be written; the message says how to run it."""


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (containers)
        return str(uid)


def _owner(path: Path) -> str:
    """Who owns the audit file (or the nearest folder above it that exists)."""
    for candidate in (path, *path.parents):
        try:
            return _name(candidate.stat().st_uid)
        except OSError:
            continue
    return "mammocad"


def _as_owner(owner: str) -> str:
    """This command line run as ``owner`` (sudo drops $MAMMOCAD_CONFIG: it is passed on)."""
    args = sys.argv[1:]
    config = os.environ.get("MAMMOCAD_CONFIG", "")
    if config and not any(a == "--config" or a.startswith("--config=") for a in args):
        args = ["--config", config, *args]
    return shlex.join(["sudo", "-u", owner, "mammocad", *args])


def _unwritable(file: Path | None, collector: str, why: str, done: str) -> AuditUnavailable:
    """The error for a record that did not reach its durable sink (``file``, else the
    collector): what, and what to do."""
    if file is None:
        where = collector
        return AuditUnavailable(f"the audit collector {where} did not take the record ({why}), so {done}. "
                                "Check the collector (`mammocad config check` names it), then run the command "
                                "again.")
    me, owner = _name(os.geteuid()), _owner(file)
    fix = ("fix the audit file's folder (full disk, read-only mount, owner and mode: deploy/README.md, "
           "\"Audit trail\")")
    if owner != me:
        fix = (f"admin actions are audited, and the audit file belongs to the services' user: run the command "
               f"as that user, `{_as_owner(owner)}` (the record names you as the sudo caller), or {fix}")
    return AuditUnavailable(f"cannot write the audit trail {file} as user {me} ({why}), so {done}: {fix}.")


def check(settings: Settings, done: str = "nothing was done") -> None:
    """Raise :class:`AuditUnavailable` when this process cannot append to the audit file.

    Call it before an admin action takes effect, so that an action that could not be
    audited is not taken; ``done`` completes the message ("cannot write ..., so DONE"). Opening the file the way the sender does is the only true test:
    mode bits do not say what ACLs, read-only mounts or a full disk allow.
    """
    if not settings.audit.file:
        return
    path = Path(settings.audit.file)
    try:
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)  # the audit folder: 0750 whatever the umask
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    except OSError as exc:
        raise _unwritable(path, "", exc.strerror or str(exc), done) from exc
    os.close(fd)


def _emit_all(trail: AuditTrail, messages: list[AuditMessage], done: str) -> None:
    """Write ``messages`` and wait; raise when the durable sink did not take them all."""
    for message in messages:
        trail.emit(message)
    trail.close()
    sink = "file" if trail.file is not None else "syslog"
    if trail.written[sink] < len(messages):
        raise _unwritable(trail.file, trail.syslog.address if trail.syslog is not None else "",
                          f"{len(messages) - trail.written[sink]} of {len(messages)} audit message(s) not "
                          f"taken; the audit_dropped line above says why", done)


def config_section(path: Path, section: str) -> list[Any]:
    """The ``[[section]]`` entries of the file as plain data (``[]`` when absent or unreadable)."""
    try:
        data = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
    except (OSError, ValueError, tomlkit.exceptions.TOMLKitError):
        return []
    value = data.get(section, [])
    return value if isinstance(value, list) else []


def record_config_change(settings: Settings | None, path: Path, section: str, before: list[Any],
                         after: list[Any], error: str = "") -> None:
    """Audit one edit (or refused edit) of ``[[section]]``; nothing when auditing is off."""
    if settings is None:
        return
    trail = AuditTrail.from_settings(settings.audit, settings.node.ae_title, program="mammocad-config")
    if not trail.enabled:
        return
    me = trail.identity
    outcome = codes.OUTCOME_MINOR if error else codes.OUTCOME_SUCCESS
    # The edit is already in the file (the caller's check() passed, then the write failed):
    # the error says so rather than claim nothing happened.
    _emit_all(trail, [events.config_changed(me, str(path), section, ["mammocad", *sys.argv[1:]], before, after,
                                            outcome=outcome, error=error)],
              f"the {'refused ' if error else ''}edit of [[{section}]] in {path} is NOT in the audit trail (tell "
              "your security officer)")


def record(settings: Settings, program: str, build: Callable[[Identity], list[AuditMessage]]) -> None:
    """Audit an admin's action with the messages ``build`` makes for this program's identity,
    written before returning; nothing (and ``build`` is not called) when auditing is off.

    Raises :class:`AuditUnavailable` when the messages could not be written: call it before
    the action takes effect, and let the error stop the action.
    """
    trail = AuditTrail.from_settings(settings.audit, settings.node.ae_title, program=program)
    if not trail.enabled:
        return
    messages = build(trail.identity)
    if messages:
        done = "this command's audit record is not written"
        check(settings, done)  # the errno of the open names the cause better than a dropped message
        _emit_all(trail, messages, done)
