"""``mammocad.worker.observer`` keeps its promise: a metric that fails never stops the delivery's
bookkeeping or its audit record, and says so on one line.

The metrics fail for real: the worker's prometheus multiprocess folder is missing (removed under a
running worker), so every new sample fails to open its file. That needs a process of its own,
since prometheus_client picks its multiprocess mode once, at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.audit.xpath import attribute
from tests.services import free_port
from tests.worker.conftest import StoreSCP

ROOT = Path(__file__).resolve().parents[2]

_ATTEMPTS = """
import json, os, sys
from pathlib import Path

tmp, port = Path(sys.argv[1]), int(sys.argv[2])
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / "metrics-removed")  # never created
from mammocad.audit import AuditTrail, Identity
from mammocad.config import Destination
from mammocad.logs import configure_logging
from mammocad.spool.outbox import Outbox
from mammocad.worker import observer
from mammocad.worker.outbox_delivery import attempt
from tests.factories import make_mammogram, put_new
from tests.worker.conftest import make_settings

configure_logging("INFO", json_lines=True)
spool = tmp / "spool"
down = Destination(name="down", ae_title="DOWN", host="127.0.0.1", port=int(sys.argv[3]))  # nothing listens
settings = make_settings(spool, [Destination(name="pacs", ae_title="PACS", host="127.0.0.1", port=port), down])
outbox = Outbox(spool)
trail = AuditTrail(Identity.make("MAMMOCAD"), file=tmp / "audit.log")
sent = put_new(outbox, "pacs", "ok", [make_mammogram(rows=32, columns=24, seed=1)])
late = put_new(outbox, "down", "late", [make_mammogram(rows=32, columns=24, seed=2)])
late.created -= 3600  # past delivery.deadline_s: this attempt dead-letters it
outbox.save(late)
outcomes = [attempt(settings, outbox, sent, trail)[0], attempt(settings, outbox, late, trail)[0]]
observer.retried("pacs")
observer.superseded("pacs")
trail.close()
print(json.dumps({"outcomes": outcomes, "waiting": [i.item_id for i in outbox.items()],
                  "dead": [i.item_id for i in outbox.items(dead=True)]}))
"""


def test_a_failing_metric_leaves_the_delivery_and_its_audit_record_whole(tmp_path: Path) -> None:
    """Without the fix the ``send`` stage's timing raised out of the send: the attempt took the
    stored object for a failure (``retry``, sent again later), and ``dead`` raised before its
    audit record, out of the Celery task."""
    with StoreSCP(tmp_path / "received") as scp:
        proc = subprocess.run([sys.executable, "-c", _ATTEMPTS, str(tmp_path), str(scp.port), str(free_port())],
                              capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(scp.received()) == 1
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result == {"outcomes": ["delivered", "dead"], "waiting": [], "dead": ["late"]}, result
    audit = [ET.fromstring(line) for line in (tmp_path / "audit.log").read_bytes().splitlines()]
    # success for the stored object, serious failure for the dead letter (DICOM Instances Transferred)
    assert [attribute(r, "EventIdentification", "EventOutcomeIndicator") for r in audit] == ["0", "8"]
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    failed = [line for line in lines if line.get("msg") == "metric_failed"]
    assert failed and all("FileNotFoundError" in line["error"] for line in failed), proc.stderr[-3000:]
    assert {line["metric"] for line in failed} >= {"mammocad_stage_seconds", "mammocad_delivery_attempts"}
    assert "Traceback" not in proc.stderr
