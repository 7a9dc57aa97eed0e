"""A record emitted while ``close`` stops or gives up on a sender is sent, or counted.

Audit records are a security requirement: each one reaches a sink, or the ``audit_unsent``
line and ``dropped["queue"]`` count it. ``emit`` chooses the sender's queue, then puts into
it; ``close`` may end that sender in between. The tests hold ``emit`` in exactly that gap
(its next ``put_nowait`` waits for an event), and hold the sender inside its batch with a
real TLS collector on loopback that answers no handshake until the test releases it.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mammocad.audit import events
from mammocad.audit.events import Identity
from mammocad.audit.messages import AuditMessage
from mammocad.audit.syslog import SyslogClient
from mammocad.audit.trail import AuditTrail
from tests import processes
from tests.audit.certs import make_certs
from tests.audit.listener import SyslogListener
from tests.log_lines import parse
from tests.services import wait_until

ME = Identity.make("MAMMOCAD")

#: A Celery pool process at its end: ``close_all`` on ``worker_process_shutdown`` gives up on
#: a sender held by the collector while an association-like thread's ``emit`` has chosen the
#: queue, then ``os._exit`` (billiard), past ``atexit``.
_POOL_PROCESS_EXIT = """
import os, sys, threading
from mammocad.audit import events
from mammocad.audit.events import Identity
from mammocad.audit.syslog import SyslogClient
from mammocad.audit.trail import AuditTrail, close_all
from mammocad.logs import configure_logging

configure_logging("WARNING")
me = Identity.make("MAMMOCAD")
client = SyslogClient("tls", "127.0.0.1", int(sys.argv[2]), ca_file=sys.argv[3], timeout_s=60)
trail = AuditTrail(me, sys.argv[1], client)
trail.emit(events.application_activity(me, True))
sys.stdin.readline()  # the sender holds that record's batch in the handshake
trail.emit(events.application_activity(me, False))  # queued behind it
chosen, go = threading.Event(), threading.Event()
put = trail._queue.put_nowait
def held(item):
    chosen.set()
    go.wait(60)
    put(item)
trail._queue.put_nowait = held
late = threading.Thread(target=trail.emit, args=(events.application_activity(me, True),))
late.start()
chosen.wait(60)
close_all(0.5)
go.set()
late.join(60)
sys.stderr.flush()
os._exit(0)
"""


@contextmanager
def _held_collector(tmp_path: Path, file: bool = True) -> Iterator[tuple[AuditTrail, SyslogListener, threading.Event]]:
    """A trail (file, unless not ``file``, and TLS collector) whose first batch is held in the
    handshake until the event is set; yields once the sender holds that batch (its record is
    in the file)."""
    certs = make_certs(tmp_path / "certs")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    hold = threading.Event()
    with SyslogListener("tls", server_context=context, hold=hold) as listener:
        client = SyslogClient("tls", "127.0.0.1", listener.port, ca_file=str(certs.ca), timeout_s=60)
        trail = AuditTrail(ME, tmp_path / "audit.log" if file else None, client)
        try:
            trail.emit(events.application_activity(ME, True))
            wait_until(lambda: listener.connections == 1, 60, "the sender's connection")  # now in the handshake
            yield trail, listener, hold
        finally:
            hold.set()


def _hold_next_put(trail: AuditTrail, monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """The next ``emit`` into the current queue waits, its queue chosen, until ``go`` is set."""
    chosen, go = threading.Event(), threading.Event()
    outbox = trail._queue
    put = outbox.put_nowait

    def held(item: AuditMessage | None) -> None:
        chosen.set()
        go.wait(60)
        put(item)

    monkeypatch.setattr(outbox, "put_nowait", held)
    return chosen, go


def _emit_in_thread(trail: AuditTrail, message: AuditMessage) -> threading.Thread:
    thread = threading.Thread(target=trail.emit, args=(message,), name="association")
    thread.start()
    return thread


def _records(trail: AuditTrail) -> list[bytes]:
    assert trail.file is not None
    return trail.file.read_bytes().splitlines()


def test_a_record_emitted_while_close_gives_up_on_a_stuck_sender_is_sent_or_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """``close`` retired the stuck sender and emptied its queue, counting what it took; a
    record whose ``emit`` had chosen that queue just before landed in it after: nobody sent
    it and the ``audit_unsent`` line did not count it (at exit: lost without a trace)."""
    with _held_collector(tmp_path) as (trail, listener, hold):
        for _ in range(2):  # queued behind the held batch: close counts them unsent
            trail.emit(events.application_activity(ME, False))
        chosen, go = _hold_next_put(trail, monkeypatch)
        late = _emit_in_thread(trail, events.application_activity(ME, True))
        assert chosen.wait(60), "the emit never chose its queue"
        with caplog.at_level(logging.WARNING, logger="mammocad.audit"):
            trail.close(timeout_s=0.5)  # the sender is held: close gives up on it
            go.set()
            late.join(60)
            hold.set()
            trail.close(timeout_s=60)
        unsent = sum(getattr(r, "unsent", 0) for r in caplog.records if r.getMessage() == "audit_unsent")
        assert trail.dropped["queue"] == unsent == 2, caplog.text
        starts = [b"Application Start" in line for line in _records(trail)]
        assert starts == [True, True], "the late record is neither in the file nor counted"
        wait_until(lambda: len(listener.received) >= 2, 60, "the held record and the late one at the collector")
    assert len(listener.received) == 2 and listener.errors == []


def test_a_record_emitted_while_close_stops_the_sender_is_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sender stopped at ``close``'s stop; a record put behind the stop stayed in a queue
    no sender read, and the exit's ``close_all`` (which closes only a trail that has a
    sender) neither sent nor counted it."""
    with _held_collector(tmp_path) as (trail, listener, hold):
        trail.emit(events.application_activity(ME, False))
        chosen, go = _hold_next_put(trail, monkeypatch)
        late = _emit_in_thread(trail, events.application_activity(ME, True))
        assert chosen.wait(60), "the emit never chose its queue"
        hold.set()
        trail.close(timeout_s=60)  # the sender sends what it holds, takes the stop and ends
        go.set()
        late.join(60)
        trail.close(timeout_s=60)  # as the exit's close_all does
        assert [b"Application Start" in line for line in _records(trail)] == [True, False, True]
        assert trail.dropped == {"file": 0, "syslog": 0, "queue": 0}
        wait_until(lambda: len(listener.received) >= 3, 60, "three records at the collector")
    assert listener.errors == []


def test_a_record_emitted_while_the_exit_gives_up_on_a_stuck_sender_is_counted(tmp_path: Path) -> None:
    """At a process's exit the record ``close_all`` turned away from the retired queue started
    a successor sender that nobody waited for: ``os._exit`` (or the interpreter's end) took
    it with the record, which no ``audit_unsent`` line counted. Once the exit has begun, a
    record that would need a new sender is counted and logged instead."""
    certs = make_certs(tmp_path / "certs")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    hold, audit = threading.Event(), tmp_path / "audit.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
    with SyslogListener("tls", server_context=context, hold=hold) as listener:
        proc = processes.spawn([sys.executable, "-c", _POOL_PROCESS_EXIT, str(audit), str(listener.port),
                                str(certs.ca)], name="pool-process", env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: listener.connections == 1 or proc.poll() is not None, 60, "the sender's connection")
            _, err = proc.communicate("held\n", timeout=120)
        finally:
            hold.set()
            processes.stop(proc)
    assert proc.returncode == 0, err
    assert audit.read_bytes().count(b"\n") == 1, err  # the held record; the others reached no sink
    unsent = [int(n) for n in re.findall(r"event=audit_unsent .*?\bunsent=(\d+)", err)]
    assert sum(unsent) == 2, err  # the one queued behind the held batch, and the late one
    gave_up = [parse(line) for line in err.splitlines() if "event=audit_unsent" in line and "in_flight=" in line]
    assert [(f["in_flight"], f["in_flight_syslog"]) for f in gave_up] == [("0", "1")], err  # the held one


@pytest.mark.parametrize("file", [False, True], ids=["syslog-only", "file-and-syslog"])
def test_close_that_gives_up_on_a_stuck_sender_reports_the_batch_it_holds_as_in_flight(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, file: bool) -> None:
    """``close`` counted what was queued behind a stuck sender, but not the batch the sender
    held (up to 256 records): with syslog alone those reached no sink at exit and no line
    said so. Counting them unsent would count twice a record the collector takes later, so
    they are reported apart (``in_flight``: in no sink yet; ``in_flight_syslog``: not
    confirmed by the collector), and the retired sender says how its batch ended."""
    with _held_collector(tmp_path, file=file) as (trail, listener, hold):
        stuck = trail._thread
        assert stuck is not None
        trail.emit(events.application_activity(ME, False))  # queued behind the held batch: unsent
        with caplog.at_level(logging.INFO, logger="mammocad.audit"):
            trail.close(timeout_s=0.5)
            [line] = [r for r in caplog.records if r.getMessage() == "audit_unsent"]
            fields = {k: getattr(line, k, None) for k in ("unsent", "in_flight", "in_flight_file", "in_flight_syslog")}
            assert fields == {"unsent": 1, "in_flight": 0 if file else 1, "in_flight_file": 0,
                              "in_flight_syslog": 1}, caplog.text
            hold.set()  # the collector answers after all: the held record reaches it
            stuck.join(60)
            assert not stuck.is_alive()
        [settled] = [r for r in caplog.records if r.getMessage() == "audit_in_flight_settled"]
        assert (getattr(settled, "records", None), getattr(settled, "syslog_sent", None),
                getattr(settled, "in_file", None)) == (1, 1, file), caplog.text
        wait_until(lambda: len(listener.received) == 1, 60, "the held record at the collector")
    assert trail.dropped == {"file": 0, "syslog": 0, "queue": 1}
