"""The record of a live worker (its presence file)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mammocad.spool.records import (
    RecordError,
    check_version,
    duration_field,
    int_field,
    load_json,
    text_field,
    time_field,
)

PRESENCE_VERSION = 1


@dataclass(frozen=True)
class PresenceRecord:
    """``workers/<worker>.json``: a live worker and the broker messages it holds.

    The file's modification time is the heartbeat (:mod:`mammocad.spool.presence`);
    ``held`` are the kombu delivery tags of the task messages the worker received, running
    or waiting for a countdown, so the node can tell a task held by a dead worker from one
    held by a live one. ``dropped``: tags of messages the worker took on a broker connection
    that has closed since (a broker restart, a network blip): Celery forgets the waiting ones
    then, yet Redis keeps them unacknowledged until the visibility timeout. ``lease_s`` is the
    worker's own setting (it beats every ``lease_s / 6``): a node configured with a shorter one
    must not call it dead between beats.
    """

    worker: str
    host: str
    pid: int
    started: float
    held: tuple[str, ...]
    lease_s: float = 0.0
    dropped: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"version": PRESENCE_VERSION, "worker": self.worker, "host": self.host, "pid": self.pid,
                "started": self.started, "held": list(self.held), "lease_s": self.lease_s,
                "dropped": list(self.dropped)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], what: str = "worker presence") -> PresenceRecord:
        """The record in ``data``; RecordError (naming ``what``, the file, and the field) when a
        field is of the wrong type. Nothing is converted: ``int()`` read ``true`` as pid 1 and
        ``"12"`` or 12.9 as pid 12, ``float()`` read an infinite ``lease_s``, which kept a dead
        worker alive for ever, ``str()`` read a ``null`` worker as one named "None". Readers skip a refused file (:func:`~mammocad.spool.presence.worker_states`).
        """
        check_version(data, PRESENCE_VERSION, what)
        held, dropped = data.get("held", []), data.get("dropped", [])
        for name, tags in (("held", held), ("dropped", dropped)):
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise RecordError(f"{what}: {name} must be a list of delivery tags")
        return cls(worker=text_field(data, "worker", what), host=text_field(data, "host", what, default=""),
                   pid=int_field(data, "pid", what, minimum=1, meaning="a process id (a positive integer)"),
                   started=time_field(data, "started", what), held=tuple(held),
                   lease_s=duration_field(data, "lease_s", what), dropped=tuple(dropped))

    @classmethod
    def read(cls, path: Path) -> PresenceRecord:
        return cls.from_json(load_json(path), path.name)
