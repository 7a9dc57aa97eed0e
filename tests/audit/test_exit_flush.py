"""What a process queued for its audit trail is sent before the process ends, and a sink
that hangs does not hang the end.

The sender is a daemon thread: an interpreter that exits stops it wherever it is, and
records it had not written yet were lost. Here the syslog collector does not answer (a
firewall dropping packets, ``tests.audit.blackhole``): the sender writes its first batch to
the file, then waits out the connect timeout, and what is queued behind it waits too.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from mammocad.audit import events
from mammocad.audit.events import Identity
from mammocad.audit.trail import AuditTrail
from mammocad.config.settings import AuditSettings
from tests import processes
from tests.audit.blackhole import Blackhole
from tests.services import wait_until

ME = Identity.make("MAMMOCAD")

#: A service that re-reads its changed configuration and exits at once, its watcher's own
#: trail (mammocad/config/watch.py: made at the first audited reload) never closed.
_RELOAD_AND_EXIT = """
import sys
from mammocad.config.settings import load_settings
from mammocad.config.watch import ConfigWatcher

watcher = ConfigWatcher(load_settings(sys.argv[1]), sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
watcher.poll()
"""


def _write(config: Path, text: str, version: int) -> None:
    tmp = config.with_suffix(".tmp")
    tmp.write_text(text)
    os.utime(tmp, ns=(version * 10**9, version * 10**9))
    os.replace(tmp, config)


def test_a_process_that_exits_sends_what_its_config_watcher_queued(tmp_path: Path) -> None:
    spool, audit, config = tmp_path / "spool", tmp_path / "audit.log", tmp_path / "mammocad.toml"
    spool.mkdir()
    with Blackhole() as collector:
        head = f'[node]\nspool_dir = "{spool}"\n\n[audit]\nfile = "{audit}"\nsyslog = "{collector.url}"\n\n'
        _write(config, head, 1)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
        proc = processes.spawn([sys.executable, "-c", _RELOAD_AND_EXIT, str(config)], name="watcher", env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            _write(config, head.replace("[node]\n", "[node]\nrequire_known_callers = false\n")
                   + '[[callers]]\nae_title = "MG1"\n\n'
                   '[[destinations]]\nname = "pacs"\nae_title = "PACS"\nhost = "10.0.0.5"\nport = 4242\n', 2)
            _, err = proc.communicate("poll\n", timeout=60)
        finally:
            processes.stop(proc)
    assert proc.returncode == 0, err
    names = sorted(ET.fromstring(line).findtext("ParticipantObjectIdentification/ParticipantObjectName") or ""
                   for line in audit.read_bytes().splitlines())
    assert names == ["[[callers]]", "[[destinations]]", "node.require_known_callers"], err


def test_close_gives_up_on_a_hanging_sink_and_says_how_many_records_were_lost(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    audit = tmp_path / "audit.log"
    with Blackhole() as collector:
        trail = AuditTrail.from_settings(AuditSettings(file=str(audit), syslog=collector.url), "MAMMOCAD")
        trail.emit(events.application_activity(ME, True))
        # Written to the file; the sender now waits on the collector (5 s connect timeout).
        wait_until(lambda: audit.exists() and audit.read_bytes().count(b"\n") == 1, 30, "the first record")
        for _ in range(3):
            trail.emit(events.application_activity(ME, False))
        with caplog.at_level(logging.WARNING, logger="mammocad.audit"):
            trail.close(timeout_s=0.5)
    lines = [r for r in caplog.records if r.getMessage() == "audit_unsent"]
    assert [getattr(r, "unsent", None) for r in lines] == [3], caplog.text  # one line, with the count
    assert trail.dropped["queue"] == 3
    assert audit.read_bytes().count(b"\n") == 1


def test_a_collector_that_does_not_answer_costs_one_timeout_per_backoff_not_one_per_message(
        tmp_path: Path) -> None:
    """The retry time was counted from before the send, so a connect that waited its 5 s
    timeout left it in the past: every batch waited 5 s more, the file fell behind the
    queue, and a stop lost what was behind. After a failure the next sends within the
    backoff are dropped for syslog at once (the file has them)."""
    audit = tmp_path / "audit.log"
    with Blackhole() as collector:
        trail = AuditTrail.from_settings(AuditSettings(file=str(audit), syslog=collector.url), "MAMMOCAD")
        for n in (1, 2):  # the second batch is queued during the first one's connect
            trail.emit(events.application_activity(ME, n == 1))
            wait_until(_lines_are(audit, n), 30, f"record {n}")
        trail.emit(events.application_activity(ME, False))
        trail.close(timeout_s=2.0)  # below the connect timeout: a second connect would hold record 3
    assert audit.read_bytes().count(b"\n") == 3
    assert trail.dropped == {"file": 0, "syslog": 3, "queue": 0}


def _lines_are(audit: Path, n: int) -> Callable[[], bool]:
    """Whether the audit file holds exactly ``n`` records now."""
    return lambda: audit.exists() and audit.read_bytes().count(b"\n") == n


def test_a_sender_close_gave_up_on_never_writes_again_and_what_it_counted_lost_stays_lost(
        tmp_path: Path) -> None:
    """``close`` gave up on a sender stuck in a batch but left it running on the queue it
    shared with the next sender: the records ``close`` had counted as lost were written after
    all, the stale sender kept taking records a later ``close`` did not wait for, and either
    sender could take the other's stop. A sender ``close`` gave up on now finishes its batch
    and stops; the records left behind it are gone, as the ``audit_unsent`` line says."""
    audit = tmp_path / "audit.log"
    with Blackhole() as collector:
        trail = AuditTrail.from_settings(AuditSettings(file=str(audit), syslog=collector.url), "MAMMOCAD")
        trail.emit(events.application_activity(ME, True))
        wait_until(_lines_are(audit, 1), 30, "the first record")  # the sender now waits on the collector
        stale = trail._thread
        assert stale is not None
        for _ in range(3):
            trail.emit(events.application_activity(ME, False))
        trail.close(timeout_s=0.5)
        assert trail.dropped["queue"] == 3
        trail.emit(events.application_activity(ME, True))  # a new sender, behind the stale batch
        trail.close()  # waits out the stale connect (5 s), then the new sender's record
        stale.join(30)
    assert not stale.is_alive()
    lines = audit.read_bytes().splitlines()
    assert [b"Application Start" in line for line in lines] == [True, True], lines
    assert trail.dropped["queue"] == 3
