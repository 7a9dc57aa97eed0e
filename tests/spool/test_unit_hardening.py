"""What a hospital security review asks of each systemd unit that touches the spool (patient
images): private files whatever the caller's umask, a read-only system with only the spool and
the log folder writable, no privilege gain, a private /tmp. Parsed from the shipped units;
tests/config/test_deploy.py runs `systemd-analyze verify` and `security` on the same files."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from mammocad.config.sections import NodeSettings
from tests.config.test_deploy import DEPLOY, UNITS, _unit

STATE, LOGS = PurePosixPath("/var/lib/mammocad"), PurePosixPath("/var/log/mammocad")


def _env_example() -> dict[str, str]:
    return dict(ln.split("=", 1) for ln in (DEPLOY / "mammocad.env.example").read_text().splitlines()
                if ln.strip() and not ln.startswith("#"))


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_keeps_patient_data_private(unit: Path) -> None:
    service = _unit(unit)["Service"]

    def one(key: str) -> str:
        assert key in service, f"{unit.name}: no {key}="
        return service[key][-1]

    assert one("UMask") in ("0027", "0077"), "files must not be readable by others (docs/ADMIN.md)"
    assert one("ProtectSystem") == "strict" and one("ProtectHome") == "yes"
    assert one("NoNewPrivileges") == "yes" and one("PrivateTmp") == "yes"
    assert one("User") == "mammocad" and one("Group") == "mammocad"
    assert one("CapabilityBoundingSet") == ""
    assert one("StateDirectory") == "mammocad" and one("StateDirectoryMode") in ("0750", "0700")
    assert one("LogsDirectory") == "mammocad" and one("LogsDirectoryMode") in ("0750", "0700")
    writable = {PurePosixPath(p.lstrip("-+")) for v in service.get("ReadWritePaths", []) for p in v.split()}
    assert writable == {STATE}, f"{unit.name}: only the state folder (spool) may be writable: {writable}"


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_the_spool_of_every_unit_is_the_configured_one(unit: Path) -> None:
    """The env file names the spool (every box must see the same path); without that line the
    default ``node.spool_dir`` is relative to the unit's WorkingDirectory. Either way it is
    inside the one writable folder, and the same for the node and both workers."""
    service = _unit(unit)["Service"]
    workdir = PurePosixPath(service["WorkingDirectory"][-1])
    assert workdir == STATE
    assert service["EnvironmentFile"] == ["/etc/mammocad/mammocad.env"]
    configured = PurePosixPath(_env_example()["MAMMOCAD_NODE__SPOOL_DIR"])
    default = workdir / PurePosixPath(str(NodeSettings().spool_dir))
    for spool in (configured, default):
        assert spool.is_absolute() and spool.is_relative_to(STATE) and spool != STATE, spool
        assert not spool.is_relative_to(LOGS)
