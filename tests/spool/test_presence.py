"""The presence beacon in-process: what it lists, and a spool it cannot write to."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from mammocad.spool.layout import Spool
from mammocad.spool.presence import PresenceBeacon, holders
from mammocad.spool.records.presence import PresenceRecord


def test_a_beacon_lists_what_the_broker_still_holds_and_keeps_all_when_it_cannot_ask(tmp_path: Path) -> None:
    spool = Spool(tmp_path).create()
    broker_holds: set[str] | None = {"a", "b"}
    asked: list[list[str]] = []

    def still_held(tags: Sequence[str]) -> set[str]:
        asked.append(sorted(tags))
        if broker_holds is None:
            raise ConnectionError("redis is away")
        return broker_holds & set(tags)

    beacon = PresenceBeacon(spool, "results-1@box", lease_s=30, keep_s=1800, still_held=still_held)
    for tag in ("a", "b", "c"):
        beacon.received(tag)  # each written at once
    assert PresenceRecord.read(beacon.path).held == ("a", "b", "c")
    beacon.forget_acknowledged()
    beacon.write()
    assert PresenceRecord.read(beacon.path).held == ("a", "b") and asked == [["a", "b", "c"]]
    broker_holds = None
    beacon.forget_acknowledged()  # an error keeps every tag: a duplicate is cheaper than a wait
    assert beacon.held() == ("a", "b")
    assert set(holders(spool, 30)) == {"a", "b"}


def test_a_spool_the_beacon_cannot_write_is_logged_once_then_its_recovery(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path).create()
    spool.workers.write_text("not a folder")  # every write of workers/<name>.json fails
    beacon = PresenceBeacon(spool, "gpu-2@box", lease_s=30, keep_s=1800)
    with caplog.at_level(logging.INFO, logger="mammocad.spool.presence"):
        beacon.received("t1")
        beacon.write()
        spool.workers.unlink()
        beacon.write()
    events = [r.getMessage() for r in caplog.records]
    assert events == ["presence_write_failed", "presence_write_recovered"]
    failed = caplog.records[0]
    assert failed.levelno == logging.WARNING and "spool" in str(getattr(failed, "hint", ""))
    assert getattr(failed, "path", "") == str(beacon.path) and "Not a directory" in str(getattr(failed, "error", ""))
    assert PresenceRecord.read(beacon.path).held == ("t1",)


def test_a_message_taken_on_a_closed_connection_is_listed_as_dropped_until_taken_again(tmp_path: Path) -> None:
    spool = Spool(tmp_path).create()
    beacon = PresenceBeacon(spool, "results-1@box", lease_s=30, keep_s=1800)
    closed = {"first": False, "second": False}
    beacon.received("a", lambda: closed["first"])
    beacon.received("b")  # no channel known: listed as held
    assert beacon.listing() == (("a", "b"), ())
    closed["first"] = True  # the broker connection went away
    beacon.write()
    record = PresenceRecord.read(beacon.path)
    assert (record.held, record.dropped) == (("b",), ("a",))
    gone = holders(spool, 30)["a"]
    assert [(h.worker, h.alive, h.holding) for h in gone] == [("results-1@box", True, False)]
    beacon.received("a", lambda: closed["second"])  # kombu gave it back and the worker took it again
    assert beacon.listing() == (("a", "b"), ())


def test_a_clean_stop_removes_the_file_only_when_the_broker_keeps_nothing_the_worker_took(tmp_path: Path) -> None:
    spool = Spool(tmp_path).create()
    kept: set[str] = {"a"}
    beacon = PresenceBeacon(spool, "gpu-1@box", lease_s=30, keep_s=1800,
                            still_held=lambda tags: kept & set(tags)).start()
    beacon.received("a")
    beacon.stop()  # "a" could not be given back: the file stays, and goes silent
    assert PresenceRecord.read(beacon.path).held == ("a",)
    kept.clear()
    beacon.stop()
    assert not beacon.path.exists()
