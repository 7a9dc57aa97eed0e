"""`mammocad spool prune` stopped by SIGTERM (`kill`, a scheduler's stop) behaves as on Ctrl-C.

Python's default SIGTERM ended the command on the spot: no list of what it had removed, no
exit status of its own, and its queued Study Deleted records unsent. It now lists what went,
sends the records of what went and exits 143 (130 stays Ctrl-C's).
"""

from __future__ import annotations

import signal
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mammocad.spool.layout import Spool
from tests.spool.prune_script import prune_held_at
from tests.spool.test_retention import _study


def _deleted(audit: Path) -> list[str]:
    """The studies the Study Deleted (110105) records of the audit file name."""
    uids = []
    for line in audit.read_bytes().splitlines():
        root = ET.fromstring(line)
        if root.find("EventIdentification/EventID").get("csd-code") == "110105":  # type: ignore[union-attr]
            uids += [p.get("ParticipantObjectID", "") for p in root.iter("ParticipantObjectIdentification")
                     if p.find("ParticipantObjectIDTypeCode").get("csd-code") == "110180"]  # type: ignore[union-attr]
    return uids


@pytest.mark.parametrize(("stop", "status", "said"), [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                      (signal.SIGINT, 130, "interrupted")])
def test_a_prune_stopped_midway_lists_what_it_removed_and_audits_it(stop: signal.Signals, status: int, said: str,
                                                                      tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool").create()
    for uid in ("1.1", "1.2"):
        _study(spool.root, uid, reported=2)
    audit, config = tmp_path / "audit.log", tmp_path / "mammocad.toml"
    config.write_text(f'[node]\nspool_dir = "{spool.root}"\nretention_days = 30\n[audit]\nfile = "{audit}"\n')
    with prune_held_at(config, "1.2") as command:
        command.send_signal(stop)
        out, err = command.communicate(timeout=60)
    assert command.returncode == status, err
    assert "removed before it stopped: 1 studies" in out and "removed study 1.1\n" in out and "1.2" not in out
    assert f"mammocad: error: {said}; run `mammocad spool prune` again" in err and "Traceback" not in err
    assert not (spool.studies / "1.1").exists() and (spool.studies / "1.2").is_dir()
    assert _deleted(audit) == ["1.1"]
