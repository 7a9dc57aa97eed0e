"""Celery's terminal notices as log lines of the documented format.

Celery's worker program writes a few notices straight to the terminal with
``celery.apps.worker.safe_say``, a raw ``os.write`` of ``"\\n" + text + "\\n"`` that bypasses
logging: "worker: Warm shutdown (MainProcess)" when SIGTERM arrives (every systemd stop), the
Ctrl+C hints, the SIGHUP restart notice, and the SIGUSR1 thread dump. Those lines, and the
blank line before each, broke the one-event-per-line format (docs/ADMIN.md). :func:`route`
points that one function of the worker program at logging instead: a notice becomes
``event=log msg="worker: Warm shutdown (MainProcess)"`` like Celery's other lines, a thread
dump one ``event=celery_thread_dump`` line with the stacks only (Celery's dump also prints each
frame's local variables, which may hold data set values: patient data must not reach the log).
Celery calls it from signal handlers, which Python runs in the main thread between
bytecodes, where logging's re-entrant lock is safe.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback

from mammocad.logs import log_event

logger = logging.getLogger(__name__)
_celery_logger = logging.getLogger("celery.apps.worker")


def say(msg: object, f: object = None) -> None:
    """Stand-in for ``celery.apps.worker.safe_say(msg, f)``; ``f`` (the terminal) is ignored."""
    text = str(msg).strip()
    if "LOCAL VARIABLES" in text:  # celery.utils.debug.cry(): the SIGUSR1 dump
        log_event(logger, "celery_thread_dump", logging.WARNING, stacks=thread_stacks())
    elif text:
        _celery_logger.info("%s", text)


def thread_stacks() -> str:
    """Where every thread is (name, then its frames), without local variables."""
    names = {t.ident: t.name for t in threading.enumerate()}
    return "\n".join(f"{names[ident]}:\n" + "".join(traceback.format_stack(frame))
                     for ident, frame in sys._current_frames().items() if ident in names)


def route() -> None:
    """Send Celery's terminal notices through logging (once, before the worker starts)."""
    from celery.apps import worker

    if not callable(getattr(worker, "safe_say", None)):  # a Celery that prints some other way
        log_event(logger, "celery_notices_not_routed", logging.WARNING,
                  reason="celery.apps.worker.safe_say not found")
        return
    worker.safe_say = say
