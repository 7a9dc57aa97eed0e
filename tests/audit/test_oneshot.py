"""Admin commands' audit records (mammocad/audit/oneshot.py) against real files and permissions.

The services own the audit file; an admin running a command as themselves cannot append to
it (tests/audit/unwritable.py makes that admin). The command must then fail with advice,
never go ahead with its record dropped.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

from mammocad.audit import events, oneshot
from mammocad.audit.events import Identity, StudyTransfer
from mammocad.audit.messages import AuditMessage
from mammocad.config.settings import Settings
from tests.audit.schema import problems
from tests.audit.unwritable import SERVICE_UID, as_admin, owned_by_the_service

_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from mammocad.audit import events, oneshot
    from mammocad.audit.events import StudyTransfer
    from mammocad.config import load_settings

    built = Path(sys.argv[2])
    def build(me):
        built.write_text("called")
        study = StudyTransfer("1.2.3", {"1.2.840.10008.5.1.4.1.1.88.50": 1}, patient_id="P1")
        return [events.study_reanalysed(me, events.os_user(), [study], "amended report version 2")]
    try:
        if sys.argv[3] == "record":
            oneshot.record(load_settings(sys.argv[1]), "mammocad-studies", build)
        else:
            oneshot.record_config_change(load_settings(sys.argv[1]), Path(sys.argv[1]), "callers", [], [{"a": 1}])
    except oneshot.AuditUnavailable as exc:
        print(exc, file=sys.stderr)
        sys.exit(3)
""")


def _config(tmp_path: Path) -> tuple[Path, Path]:
    audit = tmp_path / "log" / "audit.log"
    config = tmp_path / "mammocad.toml"
    config.write_text(f'[audit]\nfile = "{audit}"\n')
    return config, audit


def _as_admin(config: Path, tmp_path: Path, what: str) -> subprocess.CompletedProcess[str]:
    return as_admin(["-c", _SCRIPT, str(config), str(tmp_path / "built"), what], {"MAMMOCAD_CONFIG": str(config)})


def test_an_admin_who_cannot_append_gets_an_error_that_says_to_sudo(tmp_path: Path) -> None:
    config, audit = _config(tmp_path)
    owned_by_the_service(audit)
    done = _as_admin(config, tmp_path, "record")
    assert done.returncode == 3, done.stderr
    assert audit.read_bytes() == b""
    message = done.stderr
    assert f"cannot write the audit trail {audit}" in message and "Permission denied" in message
    assert "this command's audit record is not written" in message
    if os.geteuid() == 0:  # the file has another owner: the advice names it, with the config passed on
        owner = pwd.getpwuid(SERVICE_UID).pw_name
        assert f"`sudo -u {owner} mammocad --config {config} " in message


def test_a_config_edit_that_cannot_be_audited_says_so(tmp_path: Path) -> None:
    config, audit = _config(tmp_path)
    owned_by_the_service(audit)
    done = _as_admin(config, tmp_path, "config")
    assert done.returncode == 3, done.stderr
    assert f"edit of [[callers]] in {config} is NOT in the audit trail" in done.stderr


def test_the_owner_appends_one_valid_record_0640(tmp_path: Path) -> None:
    config, audit = _config(tmp_path)
    settings = Settings.model_validate({"audit": {"file": str(audit)}})
    study = StudyTransfer("1.2.3", {"1.2.840.10008.5.1.4.1.1.88.50": 1}, patient_id="P1")

    def build(me: Identity) -> list[AuditMessage]:
        return [events.study_reanalysed(me, events.os_user(), [study], "amended report version 2")]

    old = os.umask(0o027)  # the units' UMask=
    try:
        oneshot.record(settings, "mammocad-studies", build)
    finally:
        os.umask(old)
    lines = audit.read_bytes().splitlines()
    assert len(lines) == 1 and problems(lines[0]) == []
    assert ET.fromstring(lines[0]).find("EventIdentification/EventID").get("csd-code") == "110103"  # type: ignore[union-attr]
    assert audit.stat().st_mode & 0o777 == 0o640
