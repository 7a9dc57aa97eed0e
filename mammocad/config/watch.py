"""Pick up edits of the configuration file in a running process, without a restart.

A stat per call is cheap enough for every association request or task. An invalid file
keeps the previous settings (and is logged), so a half-finished edit never takes a node
or worker down.

A reload that changes who may send images or where results go is audited (PS3.15 A.5.3.11
Security Alert, :func:`mammocad.audit.events.config_reloaded`, one message per changed section
with it before and after): the file may have been edited by hand, which no ``mammocad aet|dest``
record shows. Every process that reloads sees the change (the node, each worker process), so
the first to see it claims it in the spool and reports it, the others skip
(:mod:`mammocad.audit.claims`): one change, one record. Audit problems never fail the reload:
the trail drops and logs (``audit_dropped``) as it does for every service message.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mammocad.config.settings import ConfigError, Settings, load_settings
from mammocad.logs import log_event, safe_error

if TYPE_CHECKING:
    from mammocad.audit.trail import AuditTrail

logger = logging.getLogger("mammocad.config")

#: What a reload applies that the audit trail must show: who may send images (110129) and
#: where results go (110128). Values as plain data for the Before/After details.
AUDITED: dict[str, Callable[[Settings], Any]] = {
    "callers": lambda s: [c.model_dump(mode="json", exclude_none=True) for c in s.callers],
    "node.require_known_callers": lambda s: s.node.require_known_callers,
    "destinations": lambda s: [d.model_dump(mode="json", exclude_none=True) for d in s.destinations],
}


class ConfigWatcher:
    """Holds the latest valid settings read from ``path``; ``poll()`` re-reads on change."""

    def __init__(self, settings: Settings, path: str | os.PathLike[str] | None,
                 trail: AuditTrail | None = None) -> None:
        """``trail``: the process's audit trail; None makes one from ``settings`` at the first
        audited reload (a second sender in the process, only when something changed)."""
        self.settings = settings
        self.path = Path(path) if path else None
        self.trail = trail
        self._stamp = self._stat()
        self._lock = threading.Lock()

    def _stat(self) -> tuple[int, ...] | None:
        try:
            st = os.stat(self.path) if self.path else None
        except OSError:
            return None
        # inode and ctime too: an editor's atomic replace or two same-size edits within the
        # filesystem's mtime granularity must still count as a change.
        return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino) if st else None

    def poll(self) -> Settings | None:
        """New settings when the file changed and is valid, else None."""
        if self.path is None:
            return None
        with self._lock:
            stamp = self._stat()
            if stamp == self._stamp:
                return None
            self._stamp = stamp
            try:
                new = load_settings(self.path)
            except ConfigError as exc:
                log_event(logger, "config_invalid", logging.ERROR, path=str(self.path),
                          error=str(exc)[:500], action="keeping previous settings")
                return None
            old, self.settings = self.settings, new
            log_event(logger, "config_reloaded", path=str(self.path), callers=len(new.callers),
                      destinations=len(new.destinations))
            self._audit(old, new, stamp)
            return new

    def _audit(self, old: Settings, new: Settings, stamp: tuple[int, ...] | None) -> None:
        """One Security Alert per audited section that changed, from the first process that
        claims it; never raises.

        The claim's key is the file, the version of it on disk (``stamp``: the node and the
        workers of one box stat the same file), the section and its new value; not the value
        before, which differs for a process that skipped a version in between (it would
        report the same edit again). An edit undone and redone is a new version, a new key.
        """
        from mammocad.audit import AuditTrail, claims, events

        assert self.path is not None
        try:
            changed = [(section, view(old), view(new)) for section, view in AUDITED.items() if view(old) != view(new)]
            if not changed:
                return
            if self.trail is None:
                self.trail = AuditTrail.from_settings(old.audit, old.node.ae_title)
            if not self.trail.enabled:
                return  # nothing to report to: no claim either
            path = os.path.abspath(self.path)
            for section, before, after in changed:
                key = claims.claim_key("config_reloaded", path, stamp, section, after)
                if claims.claim(old.node.spool_dir, key, f"config_reloaded {path} {section}"):
                    self.trail.emit(events.config_reloaded(self.trail.identity, str(self.path), section, before,
                                                           after))
        except Exception as exc:  # noqa: BLE001 - the audit must never stop a reload
            if self.trail is not None:  # counted where the drop alert sees it
                self.trail.lost(safe_error(exc), audit_event="config_reloaded")
            else:  # the trail itself could not be made from the old settings
                log_event(logger, "audit_dropped", logging.WARNING, sink="queue", error=safe_error(exc),
                          audit_event="config_reloaded")

    def current(self) -> Settings:
        self.poll()
        return self.settings
