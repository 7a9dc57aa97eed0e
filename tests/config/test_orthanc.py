"""The Orthanc example in docs/ADMIN.md works with a real Orthanc, and `dest echo` names its refusals."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mammocad.config.editing import add_destination
from tests import processes
from tests.config.conftest import REPO, Runner
from tests.services import free_port, wait_for_port


def _admin_json() -> dict:  # type: ignore[type-arg]
    text = (REPO / "docs" / "ADMIN.md").read_text()
    block = re.search(r"```json\n(.*?)```", text, flags=re.S)
    assert block, "docs/ADMIN.md lost its Orthanc configuration example"
    return json.loads(block.group(1))  # type: ignore[no-any-return]


@contextmanager
def orthanc(workdir: Path, **overrides: object) -> Iterator[tuple[int, int]]:
    """Orthanc configured from the ADMIN.md example; yields (dicom port, http port)."""
    exe = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    assert Path(exe).exists(), "Orthanc is not installed: run `make test`"
    dicom, http = free_port(), free_port()
    config = _admin_json()
    config["DicomModalities"]["mammocad"]["Host"] = "127.0.0.1"
    config.update({
        "Name": "mammocad-test", "StorageDirectory": str(workdir / "db"), "IndexDirectory": str(workdir / "db"),
        "DicomPort": dicom, "HttpPort": http, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "Plugins": [], **overrides,
    })
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "orthanc.json").write_text(json.dumps(config))
    with open(workdir / "orthanc.log", "wb") as log:
        proc = processes.spawn([exe, str(workdir / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(dicom)
        wait_for_port(http)
        yield dicom, http
    finally:
        processes.stop(proc, sig=signal.SIGKILL)  # throw-away database: a clean shutdown only costs seconds


def test_echo_orthanc_from_admin_example(mammocad: Runner, config_file: Path, tmp_path: Path) -> None:
    # Orthanc checks the called AE and answers echo only for the modality the guide registers.
    with orthanc(tmp_path / "orthanc", DicomCheckCalledAet=True, DicomAlwaysAllowEcho=False) as (port, _):
        add_destination(config_file, "orthanc", "ORTHANC", "127.0.0.1", port)
        add_destination(config_file, "typo", "ORTHANX", "127.0.0.1", port)
        ok = mammocad("dest", "echo", "orthanc", "--timeout", "5")
        typo = mammocad("dest", "echo", "typo", "--timeout", "5")
        stranger = mammocad("dest", "echo", "orthanc", "--timeout", "5", env={"MAMMOCAD_NODE__AE_TITLE": "STRANGER"})
    assert ok.returncode == 0, ok.stderr
    assert "C-ECHO to ORTHANC@127.0.0.1" in ok.stdout and "calling AE MAMMOCAD" in ok.stdout
    assert typo.returncode == 1
    assert "reason 7 (called AE title not recognised)" in typo.stderr
    assert stranger.returncode == 1, stranger.stdout
    assert "[aborted]" in stranger.stderr and "register node.ae_title" in stranger.stderr
    assert "calling AE STRANGER" in stranger.stderr
