"""A running service that re-reads its configuration file audits what changed in it.

The file may be edited by hand (no `mammocad aet|dest` record then): the service's reload
is the only place that sees callers or destinations change. Real files, a real audit file
checked against the DICOM audit schema, and a collector that is down.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mammocad.config.settings import load_settings
from mammocad.config.watch import ConfigWatcher
from tests.audit.schema import problems
from tests.audit.xpath import attribute
from tests.services import free_port

_DEST = '[[destinations]]\nname = "pacs"\nae_title = "PACS"\nhost = "10.0.0.5"\nport = 4242\n'


def _node(tmp_path: Path) -> str:
    """A ``[node]`` section with a spool that exists, as a running service has (the spool holds
    the claim that makes one process report a reload, mammocad/audit/claims.py)."""
    (tmp_path / "spool").mkdir(exist_ok=True)
    return f'[node]\nspool_dir = "{tmp_path / "spool"}"\n\n'


def _details(root: ET.Element) -> dict[str, object]:
    return {d.get("type", ""): json.loads(base64.b64decode(d.get("value", "")))
            for d in root.iter("ParticipantObjectDetail")}


def test_a_reload_that_changes_callers_or_destinations_is_audited(tmp_path: Path) -> None:
    audit = tmp_path / "audit.log"
    config = tmp_path / "mammocad.toml"
    head = f'log_level = "INFO"\n\n{_node(tmp_path)}[audit]\nfile = "{audit}"\n\n'
    config.write_text(head + '[[callers]]\nae_title = "PACS"\n')
    watcher = ConfigWatcher(load_settings(config), config)
    # By hand: a caller added, callers no longer enforced, a destination added.
    config.write_text(head.replace("[node]\n", "[node]\nrequire_known_callers = false\n")
                      + '[[callers]]\nae_title = "PACS"\n\n[[callers]]\nae_title = "MG_ROOM1"\nhost = "10.0.0.7"\n\n'
                      + _DEST)
    assert watcher.poll() is not None
    assert watcher.trail is not None
    watcher.trail.close()
    lines = audit.read_bytes().splitlines()
    assert [problems(line) for line in lines] == [[], [], []]
    messages = {ET.fromstring(line).findtext("ParticipantObjectIdentification/ParticipantObjectName"): ET.fromstring(line)
                for line in lines}
    assert set(messages) == {"[[callers]]", "node.require_known_callers", "[[destinations]]"}
    codes = {name: (attribute(m, "EventIdentification/EventID", "csd-code"),
                    attribute(m, "EventIdentification/EventTypeCode", "csd-code"))
             for name, m in messages.items()}
    assert codes == {"[[callers]]": ("110113", "110129"), "node.require_known_callers": ("110113", "110129"),
                     "[[destinations]]": ("110113", "110128")}
    callers = messages["[[callers]]"]
    assert _details(callers) == {"Before": [{"ae_title": "PACS"}],
                                 "After": [{"ae_title": "PACS"}, {"ae_title": "MG_ROOM1", "host": "10.0.0.7"}]}
    assert _details(messages["node.require_known_callers"]) == {"Before": True, "After": False}
    assert _details(messages["[[destinations]]"])["Before"] == []
    reporter = callers.find("ActiveParticipant")
    assert reporter is not None and reporter.get("UserID", "").endswith(f"[{os.getpid()}]")
    assert reporter.get("UserIsRequestor") == "true"
    object_id = attribute(callers, "ParticipantObjectIdentification", "ParticipantObjectID")
    assert object_id == f"file://{config}"


def test_a_reload_that_changes_nothing_audited_writes_nothing(tmp_path: Path) -> None:
    audit = tmp_path / "audit.log"
    config = tmp_path / "mammocad.toml"
    config.write_text(f'log_level = "INFO"\n\n[audit]\nfile = "{audit}"\n\n{_DEST}')
    watcher = ConfigWatcher(load_settings(config), config)
    config.write_text(f'log_level = "DEBUG"\n\n[audit]\nfile = "{audit}"\n\n{_DEST}')
    new = watcher.poll()
    assert new is not None and new.log_level == "DEBUG"
    assert watcher.trail is None and not audit.exists()


def test_a_collector_that_is_down_never_stops_a_reload(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Syslog only, to a port where nothing listens: the reload applies, the record is dropped
    and logged as every service's are (`audit_dropped`)."""
    config = tmp_path / "mammocad.toml"
    head = f'{_node(tmp_path)}[audit]\nsyslog = "tcp://127.0.0.1:{free_port()}"\n\n'
    config.write_text(head)
    watcher = ConfigWatcher(load_settings(config), config)
    config.write_text(head + _DEST)
    with caplog.at_level(logging.WARNING, logger="mammocad.audit"):
        new = watcher.poll()
        assert new is not None and [d.name for d in new.destinations] == ["pacs"]
        assert watcher.trail is not None
        watcher.trail.close()
    assert [r.getMessage() for r in caplog.records if r.name == "mammocad.audit"] == ["audit_dropped"]
