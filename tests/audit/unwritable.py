"""An admin who cannot append to the audit file, made with real permissions (no mocks).

The services own the audit file (0640 in a 0750 folder, deploy/systemd); an admin running a
command as themselves cannot append to it. The suite runs as one user: as root, "another
user" is root without CAP_DAC_OVERRIDE (``setpriv``), and the file is owned by uid 65534;
otherwise the file is made read-only for its owner.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICE_UID = 65534


def owned_by_the_service(audit: Path) -> None:
    """The audit file as the services leave it: 0640, not writable by the admin running the command."""
    audit.parent.mkdir(parents=True, exist_ok=True)
    audit.write_bytes(b"")
    if os.geteuid() == 0:
        os.chown(audit, SERVICE_UID, SERVICE_UID)
        audit.chmod(0o640)
    else:
        audit.chmod(0o440)


def as_admin(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (a Python command line, without the interpreter) as an admin who may not
    write files they do not own."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        # Not a skip: `make test` installs util-linux (setpriv), and without it every test of an
        # unauditable admin would pass unseen.
        assert setpriv is not None, "running as root without setpriv: install util-linux (`make test` does)"
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([*prefix, sys.executable, *argv], capture_output=True, text=True, timeout=120,
                          env=full_env)


def mammocad_as_admin(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``mammocad --config CONFIG ARGS`` as that admin."""
    return as_admin(["-m", "mammocad", "--config", str(config), *args])


def refused_in_one_line(done: subprocess.CompletedProcess[str], audit: Path) -> str:
    """The command failed with one line that says why and what to do, wrote no record; that line."""
    assert done.returncode == 1, (done.returncode, done.stderr)  # docs/ADMIN.md "Exit status": a failed operation
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert f"cannot write the audit trail {audit}" in lines[0] and "Permission denied" in lines[0]
    assert audit.read_bytes() == b""
    return lines[0]
