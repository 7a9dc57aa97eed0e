"""Structured logging: one event per line, key=value (or JSON), no patient data at info.

Call sites log an event name plus fields: ``log_event(logger, "store", sop=uid, status=0)``.
Patient names and IDs must never be passed as fields at INFO or above; UIDs are fine.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """``2026-11-25T03:10:29Z INFO mammocad.node event=store sop=1.2.3 status=0x0000``."""

    def __init__(self, json_lines: bool = False) -> None:
        super().__init__()
        self.json_lines = json_lines

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in record.__dict__.items() if k not in _RESERVED}
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        if self.json_lines:
            payload = {"ts": ts, "level": record.levelname, "logger": record.name,
                       "msg": record.getMessage(), **fields}
            if record.exc_info:
                payload["exc"] = self.formatException(record.exc_info)
            return json.dumps(payload, default=str)
        parts = [ts, record.levelname, record.name, f"event={_quote(record.getMessage())}"]
        parts += [f"{k}={_quote(v)}" for k, v in fields.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _quote(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n'):
        return json.dumps(text)
    return text


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event; ``fields`` become key=value pairs."""
    logger.log(level, event, extra=fields)


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    """Install the structured formatter on the root logger (idempotent)."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter(json_lines=json_lines))
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pynetdicom is chatty at INFO and logs patient data in some debug paths: keep it quiet.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    logging.getLogger("celery").setLevel(max(logging.INFO, root.level))
