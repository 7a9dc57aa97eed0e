"""Pick up edits of the configuration file in a running process, without a restart.

A stat per call is cheap enough for every association request or task. An invalid file
keeps the previous settings (and is logged), so a half-finished edit never takes a node
or worker down.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from mammocad.config.settings import ConfigError, Settings, load_settings
from mammocad.logs import log_event

logger = logging.getLogger("mammocad.config")


class ConfigWatcher:
    """Holds the latest valid settings read from ``path``; ``poll()`` re-reads on change."""

    def __init__(self, settings: Settings, path: str | os.PathLike[str] | None) -> None:
        self.settings = settings
        self.path = Path(path) if path else None
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
            self.settings = new
            log_event(logger, "config_reloaded", path=str(self.path), callers=len(new.callers),
                      destinations=len(new.destinations))
            return new

    def current(self) -> Settings:
        self.poll()
        return self.settings
