"""Structured logging: one event per line, key=value (or JSON), no patient data at info.

Call sites log an event name plus fields: ``log_event(logger, "store", sop=uid, status=0)``.
Patient names and IDs must never be passed as fields at INFO or above; UIDs are fine.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Hashable, Mapping
from functools import lru_cache
from types import TracebackType
from typing import Any, Generic, TypeVar

_EVENT_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


#: Fields whose values may carry text from a received data set (exception messages, a peer's
#: error comment, pydicom's reason for refusing a value: "Invalid value for VR DA: '19501301'",
#: which the results' ``source_attribute_repaired`` logs at INFO). ``data`` is Celery's: its
#: task lines carry the raised exception and traceback there, unformatted. Not ``why``: it holds
#: only the product's own words (the reconciler's "held by a dead worker: results-4711@gpu1"),
#: and redacting it blanked the worker's name, which the admin needs (tests/faults).
REDACTED_FIELDS = frozenset({"error", "comment", "detail", "data", "reason"})
_BYTES_RE = re.compile(r"""b(['"])(?:\\.|(?!\1).)*\1""")
_QUOTED_RE = re.compile(r"""(['"])((?:\\.|(?!\1).)*)\1""")
_PN_RE = re.compile(r"\S*\^\S*")
#: A UID as it appears in messages: an OID, whose first arc is 0, 1 or 2 (ISO/IEC 8824), so a
#: birth date (19500101), a numeric patient ID or accession number is not one.
_UID = r"[012](?:\.[0-9]+)+"
_SAFE_QUOTED_RE = re.compile(rf"^(?:|{_UID}|[a-z][a-z0-9]*(?:_[a-z0-9]+)+|[A-Z][A-Za-z0-9]{{0,63}}|\.[a-z0-9]{{1,8}})$")
#: Unquoted words that carry digits; those with many are identifiers or dates unless they are
#: one of the identifiers of our own (UIDs, addresses, status codes, task ids, report keys).
_WORD_RE = re.compile(r"[A-Za-z0-9_.+-]+")
_SAFE_WORD_RE = re.compile(
    rf"^(?:{_UID}|[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}}|0x[0-9A-Fa-f]+|[0-9]{{1,5}}"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?=[0-9]*[a-f])[0-9a-f]{32}(?:\.[rs][0-9]+)*)$")
MAX_REDACTED = 300


@lru_cache(maxsize=4096)
def _is_keyword(text: str) -> bool:
    from pydicom.datadict import tag_for_keyword

    return tag_for_keyword(text) is not None


def _safe_quoted(text: str) -> bool:
    if not _SAFE_QUOTED_RE.match(text):
        return False
    return not text[:1].isupper() or _is_keyword(text)


def _safe_word(word: str) -> bool:
    return sum(c.isdigit() for c in word) < 4 or _SAFE_WORD_RE.match(word.rstrip(".")) is not None


def redact(text: object) -> str:
    """``text`` with anything that may be patient data replaced by ``<redacted>``.

    Exception messages from pydicom, pynetdicom, highdicom and Python itself quote the
    offending value ('DOE^JANE', b'\\x08\\x00...'); a received data set can put any
    bytes there (a UID whose length field swallows the patient module), and a PACS's error
    comment is free text that may name the patient ("Patient ID 00123456 exists with
    birth date 1950-01-01"). Kept: quoted UIDs, DICOM keywords, snake_case identifiers and
    file suffixes; unquoted words with fewer than 4 digits, UIDs, IPv4 addresses, ports and
    other numbers of at most 5 digits, hex codes (0xA700), task ids and report keys.
    Dropped: every other quoted value (a quoted 19500101 is a birth date, not a UID), byte
    literal, ``^``-joined word (a PN), unquoted word with more digits (a patient ID,
    accession number or date) and non-ASCII character. A name without a caret and without
    quotes cannot be told from prose: messages that may hold one are the caller's to keep
    out. One line, at most ``MAX_REDACTED`` characters.
    """
    out = _BYTES_RE.sub("b'<redacted>'", str(text))
    out = _QUOTED_RE.sub(lambda m: m.group(0) if _safe_quoted(m.group(2)) else "'<redacted>'", out)
    out = _PN_RE.sub("<redacted>", out)
    out = _WORD_RE.sub(lambda m: m.group(0) if _safe_word(m.group(0)) else "<redacted>", out)
    out = "".join(c if " " <= c <= "~" else "?" for c in out.replace("\n", " "))
    return out[:MAX_REDACTED]


def safe_error(exc: BaseException) -> str:
    """``TypeName: message`` of an exception, redacted for the logs (see :func:`redact`)."""
    return redact(f"{type(exc).__name__}: {exc}")


def safe_traceback(exc_info: tuple[type[BaseException], BaseException, TracebackType | None]) -> str:
    """Where an exception came from (file, line, function) and its redacted message.

    The standard traceback quotes source lines and every chained message; the frames are
    what a developer needs, and messages may hold data set values.
    """
    _, exc, tb = exc_info
    lines = ["Traceback (frames only; messages redacted):"]
    lines += [f'  File "{f.filename}", line {f.lineno}, in {f.name}' for f in traceback.extract_tb(tb)]
    lines.append(safe_error(exc))
    return "\n".join(lines)


class KeyValueFormatter(logging.Formatter):
    """``2026-11-25T03:10:29Z INFO mammocad.node event=store sop=1.2.3 status=0x0000``.

    Lines from other libraries (Celery, kombu, pynetdicom, highdicom, Python warnings) get
    the same shape: ``event=log`` (or ``event=warning``) with their text as ``msg="..."``,
    so every line parses as key=value. A traceback stays on the line as ``exc="..."``.
    """

    def __init__(self, json_lines: bool = False) -> None:
        super().__init__()
        self.json_lines = json_lines

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        return safe_traceback(ei) if ei and ei[1] is not None else ""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: (redact(v) if k in REDACTED_FIELDS else v)
                  for k, v in record.__dict__.items() if k not in _RESERVED}
        text = record.getMessage()
        if not record.name.startswith("mammocad"):  # third-party text may quote received values
            text = redact(text)
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        event, message = text, None
        if not _is_event(record.name, text):
            event, message = ("warning" if record.name == "py.warnings" else "log"), text
        if self.json_lines:
            payload = {"ts": ts, "level": record.levelname, "logger": record.name, "msg": event, **fields}
            if message is not None:
                payload["msg"], payload["text"] = event, message
            if record.exc_info:
                payload["exc"] = self.formatException(record.exc_info)
            return json.dumps(payload, default=str)
        parts = [ts, record.levelname, record.name, f"event={_quote(event)}"]
        if message is not None:
            parts.append(f"msg={_quote(message.strip())}")
        parts += [f"{k}={_quote(v)}" for k, v in fields.items()]
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def _is_event(logger_name: str, message: str) -> bool:
    """An event name (``store``, ``delivery_retry``: what ``log_event`` writes), not free text
    (a library's sentence, a warning)."""
    return logger_name != "py.warnings" and _EVENT_RE.match(message) is not None


def _quote(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n'):
        return json.dumps(text)
    return text


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event; ``fields`` become key=value pairs."""
    logger.log(level, event, extra=fields)


_K = TypeVar("_K", bound=Hashable)


class ErrorMemo(Generic[_K]):
    """Which error was last logged for each thing (a file, a folder) a periodic reader cannot read.

    A reader that runs every few seconds (the sweeper, the reconciler, a metrics scrape) logged
    one broken file on every pass. With a memo it logs when a thing's error first appears or
    changes: :meth:`settle` gives what is new, after forgetting the things of the caller's
    listing that were read or are gone, so a thing that breaks again is logged again and the
    memo holds no more than the last listing's failures. A log de-duplication memo, one per
    process: nothing decides by it.
    """

    def __init__(self) -> None:
        self._last: dict[_K, str] = {}
        self._lock = threading.Lock()

    def settle(self, listed: Callable[[_K], bool], bad: Mapping[_K, str]) -> dict[_K, str]:
        """``bad`` (thing -> error) is what one listing could not read, ``listed`` says which
        remembered things that listing covered: those not in ``bad`` are forgotten. Returns the
        things of ``bad`` whose error is not the one last logged (the caller logs them)."""
        with self._lock:
            for key in [k for k in self._last if listed(k) and k not in bad]:
                del self._last[key]
            new = {key: error for key, error in bad.items() if self._last.get(key) != error}
            self._last.update(new)
        return new

    def note(self, key: _K, error: str, *, forget: Callable[[_K], bool] | None = None) -> bool:
        """One thing read outside a listing: True when ``error`` is not the one last logged for
        it. ``forget``: other remembered things to drop meanwhile (gone ones)."""
        with self._lock:
            for other in [k for k in self._last if k != key and forget is not None and forget(k)]:
                del self._last[other]
            new = self._last.get(key) != error
            self._last[key] = error
        return new

    def forget(self, key: _K) -> None:
        """``key`` was read: if it breaks again, even with the same error, it is logged again."""
        with self._lock:
            self._last.pop(key, None)

    def current(self, keep: Callable[[_K], bool]) -> dict[_K, str]:
        """The remembered things ``keep`` selects, with their errors."""
        with self._lock:
            return {key: error for key, error in self._last.items() if keep(key)}

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._last


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler on ``sys.stderr`` as it is at configuration, which moves to ``sys.stderr``
    as it is now only when its own stream has been closed since.

    Why: a command run in-process under a test's captured stderr (closed when that test ends)
    left the root logger writing into a closed stream, and every later line, a Celery worker
    thread's included, failed with "I/O operation on closed file". It does not follow
    ``sys.stderr`` otherwise: a Celery worker points ``sys.stderr`` at a logger, and writing
    there would log the line again.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self.stream, "closed", False):
            self.stream = sys.stderr
        super().emit(record)


class _ReportedByUs(logging.Filter):
    """Drops pynetdicom's ERROR lines for a timeout the product reports in its own line.

    A C-STORE or C-ECHO the peer never answers is delivery's ``no C-STORE response from ...
    within N s (delivery.network_timeout_s)`` (and ``dest echo``'s failure); pynetdicom added
    "DIMSE timeout reached ..." and, from our requesting association's thread, "Network timeout
    reached", two more ERROR lines for one event. Only these go: on the node's side (an
    acceptor's thread) "Network timeout reached" is the only line an idle caller gets, and
    every other pynetdicom error (a handler that raised, a bad PDU) has no line of ours.
    """

    _SCU_ONLY = ("DIMSE timeout reached while waiting for message response",
                 "Connection closed while waiting for DIMSE message")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text in self._SCU_ONLY:  # only a request we sent waits for a response
            return False
        return not (text == "Network timeout reached" and (record.threadName or "").startswith("RequestorThread@"))


_REPORTED_BY_US = _ReportedByUs()


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    """Install the structured formatter on the root logger (idempotent)."""
    root = logging.getLogger()
    handler = StderrHandler()
    handler.setFormatter(KeyValueFormatter(json_lines=json_lines))
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # highdicom/pydicom warnings become key=value lines too
    # pynetdicom is chatty at INFO and logs patient data in some debug paths: keep it quiet.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    association = logging.getLogger("pynetdicom.association")  # a filter does not see child loggers
    if _REPORTED_BY_US not in association.filters:
        association.addFilter(_REPORTED_BY_US)
    logging.getLogger("celery").setLevel(max(logging.INFO, root.level))
