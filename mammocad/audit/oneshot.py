"""Audit records from short-lived admin commands (``mammocad aet|dest|studies|outbox ...``).

A command emits its message and waits for the sender to write it before the process ends,
so an edit is never left unaudited because the program exited first.
"""

from __future__ import annotations

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
    trail.emit(events.config_changed(me, str(path), section, ["mammocad", *sys.argv[1:]], before, after,
                                     outcome=outcome, error=error))
    trail.close()


def record(settings: Settings, program: str, build: Callable[[Identity], list[AuditMessage]]) -> None:
    """Audit an admin's action with the messages ``build`` makes for this program's identity,
    written before returning; nothing (and ``build`` is not called) when auditing is off."""
    trail = AuditTrail.from_settings(settings.audit, settings.node.ae_title, program=program)
    if not trail.enabled:
        return
    for message in build(trail.identity):
        trail.emit(message)
    trail.close()
