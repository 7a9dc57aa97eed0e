"""``mammocad dest echo`` against real peers: DCMTK storescp, a closed port, refusing SCPs."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pynetdicom import AE, evt
from pynetdicom.events import EventHandlerType

from mammocad.config.echo import echo
from mammocad.config.editing import add_destination
from mammocad.config.settings import Destination
from mammocad.dicom.sop_classes import VERIFICATION
from tests import processes
from tests.config.conftest import Runner
from tests.services import free_port, wait_for_port


@contextmanager
def storescp(workdir: Path, ae_title: str = "STORESCP", *extra: str) -> Iterator[int]:
    """DCMTK storescp on a free loopback port; yields the port."""
    exe = shutil.which("storescp")
    assert exe, "storescp (dcmtk) is not installed: run `make test`, which installs it"
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = processes.spawn([exe, "-aet", ae_title, *extra, str(port)], cwd=workdir,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port
    finally:
        processes.stop(proc)


@contextmanager
def pynetdicom_scp(ae_title: str, handlers: list[EventHandlerType] | None = None) -> Iterator[int]:
    """A Verification SCP that rejects any called AE title other than its own."""
    ae = AE(ae_title)
    ae.add_supported_context(VERIFICATION)
    ae.require_called_aet = True
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers or [])
    assert server is not None  # None only with block=True
    try:
        yield port
    finally:
        server.shutdown()


def _dest(port: int, ae_title: str = "STORESCP") -> Destination:
    return Destination(name="peer", ae_title=ae_title, host="127.0.0.1", port=port)


def test_cli_echo_success_against_storescp(mammocad: Runner, config_file: Path, tmp_path: Path) -> None:
    with storescp(tmp_path / "scp", "ARCHIVE") as port:
        add_destination(config_file, "archive", "ARCHIVE", "127.0.0.1", port)
        out = mammocad("dest", "echo", "archive", "--timeout", "5")
    assert out.returncode == 0, out.stderr
    assert f"C-ECHO to ARCHIVE@127.0.0.1:{port} succeeded in" in out.stdout and " ms" in out.stdout
    assert "calling AE MAMMOCAD" in out.stdout


def test_cli_echo_closed_port(mammocad: Runner, config_file: Path) -> None:
    add_destination(config_file, "gone", "GONE", "127.0.0.1", free_port())
    out = mammocad("dest", "echo", "gone", "--timeout", "3")
    assert out.returncode == 1
    assert "[connection-refused]" in out.stderr and "connection refused by GONE@127.0.0.1" in out.stderr


def test_cli_echo_wrong_called_ae_rejected(mammocad: Runner, config_file: Path) -> None:
    with pynetdicom_scp("REALPACS") as port:
        add_destination(config_file, "typo", "REALPACZ", "127.0.0.1", port)
        out = mammocad("dest", "echo", "typo", "--timeout", "5")
    assert out.returncode == 1
    assert "[rejected]" in out.stderr
    assert "result 1 (rejected-permanent)" in out.stderr
    assert "source 1 (DICOM UL service-user" in out.stderr
    assert "reason 7 (called AE title not recognised)" in out.stderr


def test_cli_echo_unknown_destination(mammocad: Runner) -> None:
    out = mammocad("dest", "echo", "nope")
    assert out.returncode == 1 and "no destination named 'nope' (configured: pacs)" in out.stderr


def test_storescp_refusing_associations(tmp_path: Path) -> None:
    with storescp(tmp_path / "scp", "STORESCP", "--refuse") as port:
        result = echo(_dest(port), "MAMMOCAD", timeout=5)
    assert not result.ok and result.kind == "rejected"
    assert result.details == {"result": 1, "source": 1, "reason": 1}
    assert "reason 1 (no reason given)" in result.message


def test_non_success_status_named() -> None:
    handlers: list[EventHandlerType] = [(evt.EVT_C_ECHO, lambda event: 0x0122)]  # SOP class not supported
    with pynetdicom_scp("PEER", handlers) as port:
        result = echo(_dest(port, "PEER"), "MAMMOCAD", timeout=5)
    assert not result.ok and result.kind == "status"
    assert "non-success status 0x0122" in result.message


def test_abort_named() -> None:
    def abort(event: evt.Event) -> int:
        event.assoc.abort()
        return 0x0000

    with pynetdicom_scp("PEER", [(evt.EVT_C_ECHO, abort)]) as port:
        result = echo(_dest(port, "PEER"), "MAMMOCAD", timeout=5)
    assert not result.ok and result.kind == "aborted"
    assert "aborted by" in result.message


def test_silent_peer_times_out() -> None:
    """Accepts TCP but never speaks DICOM: the association request times out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        result = echo(_dest(port), "MAMMOCAD", timeout=1)
    assert not result.ok and result.kind == "timeout"
    assert "did not answer the association request within 1 s" in result.message


def test_unknown_host() -> None:
    host = "no-such-host.invalid"
    result = echo(Destination(name="x", ae_title="X", host=host, port=104), "MAMMOCAD", timeout=1)
    assert not result.ok and result.kind == "unknown-host" and host in result.message
