"""A record emitted while ``close`` stops or gives up on a sender is sent, or counted.

Audit records are a security requirement: each one reaches a sink, or the ``audit_unsent``
line and ``dropped["queue"]`` count it. ``emit`` chooses the sender's queue, then puts into
it; ``close`` may end that sender in between. The tests hold ``emit`` in exactly that gap
(its next ``put_nowait`` waits for an event), and hold the sender inside its batch with a
real TLS collector on loopback that answers no handshake until the test releases it.
"""

from __future__ import annotations

import logging
import ssl
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
from tests.audit.certs import make_certs
from tests.audit.listener import SyslogListener
from tests.services import wait_until

ME = Identity.make("MAMMOCAD")


@contextmanager
def _held_collector(tmp_path: Path) -> Iterator[tuple[AuditTrail, SyslogListener, threading.Event]]:
    """A trail (file and TLS collector) whose first batch is held in the handshake until
    the event is set; yields once the sender holds that batch (its record is in the file)."""
    certs = make_certs(tmp_path / "certs")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    hold = threading.Event()
    with SyslogListener("tls", server_context=context, hold=hold) as listener:
        client = SyslogClient("tls", "127.0.0.1", listener.port, ca_file=str(certs.ca), timeout_s=60)
        trail = AuditTrail(ME, tmp_path / "audit.log", client)
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
