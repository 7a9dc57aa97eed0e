"""What a sender's batch in flight has not delivered, per sink, as ``close`` reports it."""

from __future__ import annotations

from mammocad.audit.outbox import InFlight, Pending


def test_a_batch_held_in_the_file_write_is_in_no_sink_yet() -> None:
    """A disk that hangs (NFS): the whole batch is pending for both sinks, in none yet."""
    held = InFlight(4, file=True, syslog=True)
    assert held.pending() == Pending(nowhere=4, file=4, syslog=4)


def test_a_batch_in_the_file_is_pending_only_at_the_collector() -> None:
    held = InFlight(4, file=True, syslog=True)
    held.file_done(True)
    held.syslog_done(True)
    assert held.pending() == Pending(nowhere=0, file=0, syslog=3)


def test_records_the_file_refused_are_in_no_sink_until_the_collector_takes_them() -> None:
    """A refused record is dropped (counted), not pending: only those not tried yet are."""
    held = InFlight(4, file=True, syslog=True)
    held.file_done(False)
    held.syslog_done(True)
    held.syslog_done(False)
    assert held.pending() == Pending(nowhere=2, file=0, syslog=2)
    assert held.syslog_sent == 1


def test_a_syslog_only_batch_is_in_no_sink_until_the_collector_takes_it() -> None:
    held = InFlight(3, syslog=True)
    held.syslog_done(True)
    assert held.pending() == Pending(nowhere=2, file=0, syslog=2)
    assert not InFlight().pending()
