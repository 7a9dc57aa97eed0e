"""Admin commands' audit records (mammocad/audit/oneshot.py) against real files and permissions.

The services own the audit file (0640 in a 0750 folder, deploy/systemd); an admin running a
command as themselves cannot append to it. The command must then fail with advice, never go
ahead with its record dropped. The suite runs as one user: as root, "another user" is root
without CAP_DAC_OVERRIDE (``setpriv``), and the file is owned by uid 65534; otherwise the
file is made read-only for its owner.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mammocad.audit import events, oneshot
from mammocad.audit.events import Identity, StudyTransfer
from mammocad.audit.messages import AuditMessage
from mammocad.config.settings import Settings
from tests.audit.schema import problems

REPO = Path(__file__).resolve().parents[2]
SERVICE_UID = 65534

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


def _owned_by_the_service(audit: Path) -> None:
    """The audit file as the services leave it: 0640, not writable by the admin running the command."""
    audit.parent.mkdir(parents=True, exist_ok=True)
    audit.write_bytes(b"")
    if os.geteuid() == 0:
        os.chown(audit, SERVICE_UID, SERVICE_UID)
        audit.chmod(0o640)
    else:
        audit.chmod(0o440)


def _as_admin(config: Path, tmp_path: Path, what: str) -> subprocess.CompletedProcess[str]:
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot drop CAP_DAC_OVERRIDE")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "MAMMOCAD_CONFIG": str(config)}
    return subprocess.run([*prefix, sys.executable, "-c", _SCRIPT, str(config), str(tmp_path / "built"), what],
                          capture_output=True, text=True, timeout=120, env=env)


def test_an_admin_who_cannot_append_gets_an_error_that_says_to_sudo(tmp_path: Path) -> None:
    config, audit = _config(tmp_path)
    _owned_by_the_service(audit)
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
    _owned_by_the_service(audit)
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
