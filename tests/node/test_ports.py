"""A port that is taken: the error names the setting and how to find the other process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import free_port


@pytest.fixture
def taken() -> Iterator[int]:
    """A port another process listens on (here: the test itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def _run(tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "mammocad.toml"
    config.write_text(f'[node]\nae_title = "MAMMOCAD"\nhost = "127.0.0.1"\nspool_dir = "{tmp_path / "spool"}"\n'
                      f'{text}\n[broker]\nurl = "redis://127.0.0.1:1/0"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
    return subprocess.run([sys.executable, "-m", "mammocad", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def _says_what_to_do(stderr: str, port: int, key: str) -> None:
    assert f"127.0.0.1:{port} ({key})" in stderr, stderr
    assert f"`ss -ltnp 'sport = :{port}'`" in stderr and f"set {key} to a free port" in stderr, stderr


def test_node_dicom_port_taken(tmp_path: Path, taken: int) -> None:
    out = _run(tmp_path, f"port = {taken}", "node")
    assert out.returncode == 2, out.stderr
    _says_what_to_do(out.stderr, taken, "node.port")


def test_node_metrics_port_taken(tmp_path: Path, taken: int) -> None:
    """It named the DICOM port and announced node_listening before failing on the metrics one."""
    dicom = free_port()
    out = _run(tmp_path, f"port = {dicom}\n[metrics]\nport = {taken}", "node")
    assert out.returncode == 2, out.stderr
    _says_what_to_do(out.stderr, taken, "metrics.port")
    assert f":{dicom}" not in out.stderr and "event=node_listening" not in out.stderr, out.stderr


def test_worker_metrics_port_taken(tmp_path: Path, taken: int) -> None:
    """It ended in a traceback naming only '[metrics] settings'."""
    out = _run(tmp_path, "[worker]\ndevice = \"cpu\"", "worker", "--queues", "gpu", "--metrics-port", str(taken))
    assert out.returncode == 2, out.stderr
    _says_what_to_do(out.stderr, taken, "--metrics-port")
    assert "Traceback" not in out.stderr, out.stderr
