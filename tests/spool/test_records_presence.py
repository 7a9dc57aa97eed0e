"""A worker's presence file: every malformed pid, lease_s or name is refused, naming the file and field."""

from __future__ import annotations

import json
import logging
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


_PID = "a process id (a positive integer)"
_LEASE = "a length of time in seconds (a JSON number, 0 or more)"
#: (field, a malformed value, what the error says it must be). ``int()`` read ``"12"`` and 12.9 as
#: pid 12 and ``true`` as pid 1; ``float()`` read ``"5"`` as 5 s and let an infinite lease keep a
#: dead worker alive; ``str()`` read a ``null`` worker as one named "None" (its queue "None").
_MALFORMED = [
    *[("pid", v, _PID) for v in ("12", True, False, 12.9, 12.0, 0, -3, None, [12])],
    *[("lease_s", v, _LEASE) for v in ("5", True, False, float("nan"), float("inf"), float("-inf"), -1.0, None, [5])],
    *[("worker", v, "a non-empty string") for v in (None, 12, "", ["gpu-1@box"])],
    *[("host", v, "a string") for v in (None, 7)],
]


@pytest.mark.parametrize(("key", "value", "words"), _MALFORMED, ids=repr)
def test_a_malformed_field_is_refused_naming_the_file(tmp_path: Path, key: str, value: object, words: str) -> None:
    path = _write(Spool(tmp_path), GOOD.worker, {**GOOD.to_json(), key: value})
    with pytest.raises(RecordError) as caught:
        PresenceRecord.read(path)
    assert str(caught.value) == f"results-12@box.json: {key} must be {words}, got {value!r}"


@pytest.mark.parametrize(("key", "words"), [("pid", _PID), ("worker", "a non-empty string")])
def test_a_missing_pid_or_worker_is_refused(key: str, words: str) -> None:
    """Every release has written both: a file without one was not written by a worker."""
    with pytest.raises(RecordError) as caught:
        PresenceRecord.from_json({k: v for k, v in GOOD.to_json().items() if k != key})
    assert str(caught.value) == f"worker presence: {key} must be {words}, got None"


@pytest.mark.parametrize(("value", "read"), [(30, 30.0), (0, 0.0), (2.5, 2.5)])
def test_a_lease_reads_as_written_and_absent_fields_as_not_said(value: float, read: float) -> None:
    assert PresenceRecord.from_json({**GOOD.to_json(), "lease_s": value}).lease_s == read
    absent = PresenceRecord.from_json({k: v for k, v in GOOD.to_json().items() if k not in ("lease_s", "host")})
    assert (absent.lease_s, absent.host) == (0.0, "")  # the node's own lease applies


def test_the_node_skips_a_refused_presence_and_lists_the_others(tmp_path: Path) -> None:
    """A malformed file is one worker the node cannot see, not a crash of every listing."""
    spool = Spool(tmp_path)
    good = _write(spool, GOOD.worker, GOOD.to_json())
    _write(spool, "gpu-7@box", {**GOOD.to_json(), "worker": "gpu-7@box", "pid": True})
    _write(spool, "gpu-8@box", {**GOOD.to_json(), "worker": "gpu-8@box", "lease_s": float("inf")})
    states = worker_states(spool, lease_s=30.0)
    assert [(s.path, s.record) for s in states] == [(good, GOOD)]


def test_a_refused_presence_is_logged_once_until_its_error_changes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Left out silently, a refused file made `mammocad workers` say "no live worker" with no
    hint; logged on every read, the reconciler and each metrics scrape would flood the log."""
    from mammocad.spool.presence import unreadable

    spool = Spool(tmp_path)
    bad = _write(spool, "gpu-7@box", {**GOOD.to_json(), "worker": "gpu-7@box", "pid": True})
    with caplog.at_level(logging.WARNING, logger="mammocad.spool.presence"):
        for _ in range(3):
            assert worker_states(spool, lease_s=30.0) == []
        _write(spool, "gpu-7@box", {**GOOD.to_json(), "worker": "gpu-7@box", "lease_s": -1})
        worker_states(spool, lease_s=30.0)
    said = [(r.getMessage(), vars(r)["file"]) for r in caplog.records]
    assert said == [("presence_unreadable", str(bad))] * 2  # the first read, then the new error
    assert "pid must be a process id" in vars(caplog.records[0])["error"]
    assert list(unreadable(spool)) == [bad]
    _write(spool, "gpu-7@box", {**GOOD.to_json(), "worker": "gpu-7@box"})  # its worker rewrote it
    assert [s.record.worker for s in worker_states(spool, lease_s=30.0)] == ["gpu-7@box"]
    assert unreadable(spool) == {}


def test_a_removed_presence_is_forgotten_so_the_same_error_later_is_logged_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The memo forgot a file only once it was read: one removed (its worker gone, or an admin)
    stayed in it, so the same fault in a later file of that name went unlogged, and the memo grew
    with every worker name ever refused. A listing now forgets the files it no longer finds."""
    from mammocad.spool import presence

    spool = Spool(tmp_path)
    refused = {**GOOD.to_json(), "worker": "gpu-7@box", "pid": True}
    bad = _write(spool, "gpu-7@box", refused)
    with caplog.at_level(logging.WARNING, logger="mammocad.spool.presence"):
        assert worker_states(spool, lease_s=30.0) == []
        bad.unlink()
        assert worker_states(spool, lease_s=30.0) == []
        assert bad not in presence._reported  # the memo holds only files that are there
        _write(spool, "gpu-7@box", refused)  # a later worker of that name, the same fault
        worker_states(spool, lease_s=30.0)
        bad.unlink()
        spool.workers.rmdir()  # no folder at all: nothing of it is kept either
        assert worker_states(spool, lease_s=30.0) == []
        assert bad not in presence._reported
    said = [(r.getMessage(), vars(r)["file"]) for r in caplog.records]
    assert said == [("presence_unreadable", str(bad))] * 2
