"""A worker's presence file: every malformed pid or lease_s is refused, naming the file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mammocad.spool.layout import Spool
from mammocad.spool.presence import worker_states
from mammocad.spool.records import RecordError
from mammocad.spool.records.presence import PresenceRecord

GOOD = PresenceRecord(worker="results-12@box", host="box", pid=12, started=1.5, held=("t1",), lease_s=30.0)


def _write(spool: Spool, worker: str, data: dict[str, object]) -> Path:
    path = spool.presence_path(worker)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, allow_nan=True))
    return path


@pytest.mark.parametrize("value", ["12", True, False, 12.9, 12.0, 0, -3, None, [12]], ids=repr)
def test_a_malformed_pid_is_refused_naming_the_file(tmp_path: Path, value: object) -> None:
    """``int()`` read ``"12"`` and 12.9 as pid 12 and JSON ``true`` as pid 1."""
    path = _write(Spool(tmp_path), GOOD.worker, {**GOOD.to_json(), "pid": value})
    with pytest.raises(RecordError) as caught:
        PresenceRecord.read(path)
    assert str(caught.value) == f"results-12@box.json: pid must be a process id (a positive integer), got {value!r}"


def test_a_missing_pid_is_refused() -> None:
    """Every release has written the pid: a file without one was not written by a worker."""
    with pytest.raises(RecordError, match="worker presence: pid must be"):
        PresenceRecord.from_json({k: v for k, v in GOOD.to_json().items() if k != "pid"})


@pytest.mark.parametrize("value", ["5", True, False, float("nan"), float("inf"), float("-inf"), -1.0, None, [5]],
                         ids=repr)
def test_a_malformed_lease_is_refused_naming_the_file(tmp_path: Path, value: object) -> None:
    """``float()`` read ``"5"`` as 5 s, ``true`` as 1 s, and an infinite lease kept a dead worker alive."""
    path = _write(Spool(tmp_path), GOOD.worker, {**GOOD.to_json(), "lease_s": value})
    with pytest.raises(RecordError) as caught:
        PresenceRecord.read(path)
    assert str(caught.value) == ("results-12@box.json: lease_s must be a length of time in seconds "
                                 f"(a JSON number, 0 or more), got {value!r}")


@pytest.mark.parametrize(("value", "read"), [(30, 30.0), (0, 0.0), (2.5, 2.5)])
def test_a_lease_reads_as_written_or_absent(value: float, read: float) -> None:
    assert PresenceRecord.from_json({**GOOD.to_json(), "lease_s": value}).lease_s == read
    absent = PresenceRecord.from_json({k: v for k, v in GOOD.to_json().items() if k != "lease_s"})
    assert absent.lease_s == 0.0  # not said: the node's own lease applies


def test_the_node_skips_a_refused_presence_and_lists_the_others(tmp_path: Path) -> None:
    """A malformed file is one worker the node cannot see, not a crash of every listing."""
    spool = Spool(tmp_path)
    good = _write(spool, GOOD.worker, GOOD.to_json())
    _write(spool, "gpu-7@box", {**GOOD.to_json(), "worker": "gpu-7@box", "pid": True})
    _write(spool, "gpu-8@box", {**GOOD.to_json(), "worker": "gpu-8@box", "lease_s": float("inf")})
    states = worker_states(spool, lease_s=30.0)
    assert [(s.path, s.record) for s in states] == [(good, GOOD)]
