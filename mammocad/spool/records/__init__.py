"""Typed, versioned records of the spool: what one side writes and the other reads.

Each record is a JSON file with a ``version`` field. Writers always write the current
version; readers accept the current one and every earlier one this code has written
(files written before versions existed count as version 0 and have the same fields), so
a spool from an older release keeps working after an upgrade. A file of a *newer*
version than the reader knows is refused with :class:`RecordError` rather than misread.

This package holds those rules (:class:`RecordError`, :func:`load_json`, :func:`check_version`),
the field readers records share (:func:`uid_list`, :func:`time_field`, :func:`duration_field`,
:func:`int_field`, :func:`text_field`) and, one module per job, the records:

| file | record | module | written by |
| --- | --- | --- | --- |
| ``studies/<study>/results/<sop>.json`` | :func:`~.analysis.image_result_json` / :func:`~.analysis.read_image_result` | :mod:`.analysis` | GPU worker |
| ``studies/<study>/complete.json`` | :class:`~.analysis.CompletionRecord` | :mod:`.analysis` | node |
| ``studies/<study>/reanalysis.json`` | :class:`~.analysis.ReanalysisRecord` | :mod:`.analysis` | ``mammocad studies reanalyse`` |
| ``studies/<study>/reports/<key>.json`` | :class:`~.report.ReportRecord` | :mod:`.report` | results worker |
| ``studies/<study>/outputs/<key>/kept.json`` | :class:`~.report.KeptOutputs` | :mod:`.report` | results worker |
| ``pruned/<study>.json`` | :class:`~.pruned.PrunedRecord` | :mod:`.pruned` | retention (``spool prune``, the results worker) |
| ``outbox/<dest>/<item>/item.json`` | :class:`~mammocad.spool.outbox.OutboxItem` | :mod:`mammocad.spool.outbox` | results worker |
| ``workers/<worker>.json`` | :class:`~.presence.PresenceRecord` | :mod:`.presence` | every worker (its main process) |
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class RecordError(ValueError):
    """A spool record that cannot be read: not JSON, wrong shape, or from a newer release."""


def load_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; FileNotFoundError passes, anything else is RecordError."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise RecordError(f"{path.name}: unreadable record: {exc}") from exc
    if not isinstance(data, dict):
        raise RecordError(f"{path.name}: expected a JSON object, got {type(data).__name__}")
    return data


def check_version(data: Mapping[str, Any], current: int, what: str) -> int:
    """The record's version (0 when absent); RecordError when newer than ``current``."""
    version = data.get("version", 0)
    if not isinstance(version, int) or version < 0:
        raise RecordError(f"{what}: bad version {version!r}")
    if version > current:
        raise RecordError(f"{what}: version {version} is newer than this release reads ({current}); "
                          "upgrade every node and worker that shares the spool")
    return version


def uid_list(data: Mapping[str, Any], key: str, what: str) -> tuple[str, ...]:
    """``data[key]`` as sorted UIDs; RecordError unless it is a JSON list of strings.

    Sorted because records compare and merge these as sets of images: the order they were
    written in means nothing.
    """
    uids = data.get(key)
    if not isinstance(uids, list) or not all(isinstance(u, str) for u in uids):
        raise RecordError(f"{what}: {key} must be a list of UIDs")
    return tuple(sorted(uids))


def time_field(data: Mapping[str, Any], key: str, what: str) -> float:
    """``data[key]``, a time in seconds since the epoch (``time.time()``), 0.0 when absent;
    RecordError unless it is a finite JSON number. The one reader of every record's times.

    Absent reads as "long ago": a file written before its field existed. Anything else that is
    no number is refused, not converted: ``float()`` took ``true`` as 1970 plus one second and
    ``"12"`` as a time, and NaN or infinity never compares as older or newer, so retention and
    the report order would silently misjudge the record. Times are never written as strings
    (an ISO date, naive or aware, is refused like any other string).
    """
    value = data.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordError(f"{what}: {key} must be a time in seconds since the epoch (a JSON number), "
                          f"got {value!r}")
    return float(value)


def duration_field(data: Mapping[str, Any], key: str, what: str) -> float:
    """``data[key]``, a length of time in seconds (a setting such as a lease), 0.0 when absent;
    RecordError unless it is a finite JSON number of at least 0.

    Absent reads as 0.0, "not said": a reader then uses its own setting. Like :func:`time_field`,
    nothing is converted: ``float()`` took ``true`` as one second and ``"5"`` as five, and an
    infinite or NaN lease would keep a dead worker alive for ever (``silent <= inf``) or compare
    as nothing at all; a negative length means nothing either.
    """
    value = data.get(key, 0.0)
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value < 0):
        raise RecordError(f"{what}: {key} must be a length of time in seconds (a JSON number, 0 or more), "
                          f"got {value!r}")
    return float(value)


def int_field(data: Mapping[str, Any], key: str, what: str, *, minimum: int, meaning: str) -> int:
    """``data[key]``, an integer of at least ``minimum``; RecordError otherwise, saying it
    must be ``meaning`` ("a count", "a positive integer"). No default: a missing one is an error.
    JSON ``true`` is no integer, though Python's bool is one: it read as 1."""
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RecordError(f"{what}: {key} must be {meaning}, got {value!r}")
    return value


def text_field(data: Mapping[str, Any], key: str, what: str, *, default: str | None = None) -> str:
    """``data[key]``, a JSON string; ``default`` when absent (None: required, and not empty).

    ``str()`` took anything: ``null`` read as the name ``"None"``, ``12`` as ``"12"``. A record
    whose name is no string was not written by this code, so it is refused, not renamed.
    """
    value = data.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        raise RecordError(f"{what}: {key} must be {'a non-empty' if default is None else 'a'} string, got {value!r}")
    return value
