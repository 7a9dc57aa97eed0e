"""A metric that fails never changes what the audit trail believes it wrote or sent.

The metrics fail for real, as in tests/worker/test_observer.py: the prometheus multiprocess
folder is missing (removed under a running worker), so every new sample fails to open its
file. prometheus_client picks its multiprocess mode once, at import: each case runs in a
process of its own. The trail counted each written line inside its ``except OSError``: the
metric's FileNotFoundError made records already in the file count as dropped, skipped the
fsync and ``written`` (an admin command then failed as if its record were missing), and out
of the syslog send it ended the batch, so the rest of it never reached the collector.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.audit.listener import SyslogListener
from tests.audit.schema import problems
from tests.services import wait_until

ROOT = Path(__file__).resolve().parents[2]

_TRAIL = textwrap.dedent("""
    import json, os, sys
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[2]  # never created
    from mammocad.audit import events
    from mammocad.audit.events import Identity
    from mammocad.audit.syslog import SyslogClient
    from mammocad.audit.trail import AuditTrail
    from mammocad.logs import configure_logging

    configure_logging("INFO", json_lines=True)
    me = Identity.make("MAMMOCAD")
    trail = AuditTrail(me, sys.argv[1], SyslogClient("tcp", "127.0.0.1", int(sys.argv[3])))
    for ok in (True, False, True):
        trail.emit(events.application_activity(me, ok))
    trail.close()
    print(json.dumps({"written": trail.written, "dropped": trail.dropped}))
""")

_ADMIN = textwrap.dedent("""
    import os, sys
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[2]  # never created
    from mammocad.audit import events, oneshot
    from mammocad.config import load_settings
    from mammocad.logs import configure_logging

    configure_logging("INFO", json_lines=True)
    oneshot.record(load_settings(sys.argv[1]), "mammocad-studies",
                   lambda me: [events.application_activity(me, True)])
""")


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)})


def _events(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_a_failing_metric_leaves_what_the_trail_wrote_and_sent_whole(tmp_path: Path) -> None:
    audit, metrics = tmp_path / "audit.log", tmp_path / "metrics-removed"
    with SyslogListener("tcp") as collector:
        done = _run(_TRAIL, str(audit), str(metrics), str(collector.port))
        assert done.returncode == 0, done.stderr[-3000:]
        wait_until(lambda: len(collector.received) >= 3, 60, "3 syslog messages")
    assert json.loads(done.stdout.splitlines()[-1]) == {"written": {"file": 3, "syslog": 3},
                                                        "dropped": {"file": 0, "syslog": 0, "queue": 0}}
    lines = audit.read_bytes().splitlines()
    assert len(lines) == 3 and all(problems(line) == [] for line in lines)
    logged = _events(done.stderr)
    assert not [e for e in logged if e.get("msg") in ("audit_dropped", "audit_unsent", "audit_sender_error")], \
        done.stderr[-3000:]
    failed = [e for e in logged if e.get("msg") == "metric_failed"]
    assert failed and all(e["metric"] == "mammocad_audit_messages" and "FileNotFoundError" in str(e["error"])
                          for e in failed), done.stderr[-3000:]
    assert "Traceback" not in done.stderr


def test_an_admin_command_whose_metrics_fail_keeps_its_record(tmp_path: Path) -> None:
    """oneshot compares ``written`` with what it emitted: a metric failure made it refuse."""
    audit, config = tmp_path / "log" / "audit.log", tmp_path / "mammocad.toml"
    config.write_text(f'[audit]\nfile = "{audit}"\n')
    done = _run(_ADMIN, str(config), str(tmp_path / "metrics-removed"))
    assert done.returncode == 0, done.stderr[-3000:]
    lines = audit.read_bytes().splitlines()
    assert len(lines) == 1 and problems(lines[0]) == []
