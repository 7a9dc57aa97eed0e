"""The audit trail's Prometheus counter, counted so that a failing metric changes nothing else.

The trail once counted each line inside its write's ``except OSError``: a metric's
FileNotFoundError (the multiprocess folder gone) turned records already in the file into
drops, skipped the fsync and ``written`` (an admin command then refused, its record missing),
and out of a syslog send it ended the batch. :func:`count` goes through
:func:`mammocad.metrics.safe.update`, which never raises.
"""

from __future__ import annotations

from mammocad.metrics import safe

METRIC = "mammocad_audit_messages"


def count(sink: str, outcome: str, n: int = 1) -> None:
    """Add ``n`` to ``mammocad_audit_messages{sink, outcome}``; a failure is logged, never raised."""

    def apply() -> None:
        from mammocad.metrics.definitions import AUDIT_MESSAGES  # imported late: see metrics/multiprocess.py

        AUDIT_MESSAGES.labels(sink, outcome).inc(n)

    safe.update(METRIC, apply)
