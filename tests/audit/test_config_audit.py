"""`mammocad aet|dest add|remove` leave an audit record: who, which command, before and after."""

from __future__ import annotations

import base64
import getpass
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.audit.listener import SyslogListener
from tests.audit.schema import problems
from tests.services import wait_until


def _mammocad(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mammocad", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


def _details(xml: bytes) -> dict[str, object]:
    root = ET.fromstring(xml)
    return {d.get("type", ""): json.loads(base64.b64decode(d.get("value", "")))
            for d in root.iter("ParticipantObjectDetail")}


@pytest.mark.parametrize("scheme", ["tcp", "udp"])
def test_caller_and_destination_edits_are_audited(scheme: str, tmp_path: Path) -> None:
    """UDP too: each short-lived command's datagram leaves before the process ends."""
    audit_file = tmp_path / "audit.log"
    config = tmp_path / "mammocad.toml"
    with SyslogListener(scheme) as listener:
        config.write_text(f'[audit]\nfile = "{audit_file}"\nsyslog = "{listener.url}"\n\n'
                          '[[callers]]\nae_title = "PACS"\n')
        assert _mammocad(config, "aet", "add", "MG_ROOM1", "--host", "10.0.0.7").returncode == 0
        assert _mammocad(config, "dest", "add", "pacs", "--ae", "ORTHANC", "--host", "10.0.0.5",
                         "--port", "4242").returncode == 0
        refused = _mammocad(config, "aet", "add", "PACS")  # already listed: refused, still audited
        assert refused.returncode == 1
        wait_until(lambda: len(listener.received) >= 3, 10, "3 syslog messages")
    lines = audit_file.read_bytes().splitlines()
    assert len(lines) == 3 and all(problems(line) == [] for line in lines)
    assert [m.xml for m in listener.received] == lines

    added = ET.fromstring(lines[0])
    assert added.find("EventIdentification/EventTypeCode").get("csd-code") == "110129"  # type: ignore[union-attr]
    assert added.find("ActiveParticipant").get("UserID") == getpass.getuser()  # type: ignore[union-attr]
    details = _details(lines[0])
    assert details["Command"] == ["mammocad", "--config", str(config), "aet", "add", "MG_ROOM1", "--host", "10.0.0.7"]
    assert details["Before"] == [{"ae_title": "PACS"}]
    assert details["After"] == [{"ae_title": "PACS"}, {"ae_title": "MG_ROOM1", "host": "10.0.0.7"}]

    dest = ET.fromstring(lines[1])
    assert dest.find("EventIdentification/EventTypeCode").get("csd-code") == "110128"  # type: ignore[union-attr]
    assert _details(lines[1])["After"][0]["name"] == "pacs"  # type: ignore[index]

    failed = ET.fromstring(lines[2])
    assert failed.find("EventIdentification").get("EventOutcomeIndicator") == "4"  # type: ignore[union-attr]
    assert "already listed" in (failed.findtext("EventIdentification/EventOutcomeDescription") or "")


def test_config_check_shows_where_audit_messages_and_metrics_go(tmp_path: Path) -> None:
    config = tmp_path / "mammocad.toml"
    config.write_text(f'[audit]\nfile = "{tmp_path / "audit.log"}"\nsyslog = "tcp://127.0.0.1:6514"\n'
                      "[metrics]\nport = 9464\nworker_port = 9465\n")
    out = _mammocad(config, "config", "check").stdout
    assert f"audit trail: file {tmp_path / 'audit.log'}, syslog tcp://127.0.0.1:6514" in out
    assert "metrics: node 127.0.0.1:9464; workers 127.0.0.1:9465 (results), 9466 (analysis)" in out
    config.write_text("")
    out = _mammocad(config, "config", "check").stdout
    assert "audit trail: off" in out and "metrics: off" in out


@pytest.mark.parametrize("command", [
    ["aet", "add", "MG_ROOM1"], ["aet", "remove", "PACS"],
    ["dest", "add", "archive", "--ae", "ARCHIVE", "--host", "10.0.0.6", "--port", "104"], ["dest", "remove", "pacs"],
])
def test_an_edit_that_cannot_be_audited_leaves_the_file_as_it_was(command: list[str], tmp_path: Path) -> None:
    """An admin who cannot append to the audit file (owned by the services): the edit was
    written first and the command then failed with a traceback, so callers or destinations
    changed with no record. Now the file is untouched and one line says how to run it."""
    from tests.audit.unwritable import mammocad_as_admin, owned_by_the_service, refused_in_one_line

    audit = tmp_path / "log" / "audit.log"
    owned_by_the_service(audit)
    config = tmp_path / "mammocad.toml"
    text = (f'[audit]\nfile = "{audit}"\n\n[[callers]]\nae_title = "PACS"\n\n'
            '[[destinations]]\nname = "pacs"\nae_title = "PACS"\nhost = "10.0.0.5"\nport = 4242\n')
    config.write_text(text)
    done = mammocad_as_admin(config, *command)
    assert config.read_text() == text
    line = refused_in_one_line(done, audit)
    assert line.startswith("mammocad: ") and f"{config} was not changed" in line
