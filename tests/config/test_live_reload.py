"""`mammocad aet add/remove` take effect on a running `mammocad node` without a restart."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests import processes
from tests.config.conftest import MAMMOCAD, Runner
from tests.services import free_port, wait_for_port


def _echoscu(port: int, calling: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["echoscu", "-aet", calling, "-aec", "MAMMOCAD", "127.0.0.1", str(port)],
                          capture_output=True, text=True, timeout=30)


def test_caller_edits_apply_to_running_node(
    mammocad: Runner, config_file: Path, tmp_path: Path, redis_url: str
) -> None:
    port = free_port()
    env = {"MAMMOCAD_BROKER__URL": redis_url, "MAMMOCAD_NODE__SPOOL_DIR": str(tmp_path / "spool"),
           "MAMMOCAD_NODE__PORT": str(port), "MAMMOCAD_NODE__HOST": "127.0.0.1"}
    with open(tmp_path / "node.log", "wb") as log:
        node = processes.spawn([str(MAMMOCAD), "--config", str(config_file), "node"],
                               env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        assert _echoscu(port, "NEWMODALITY").returncode != 0  # not a caller yet
        assert mammocad("aet", "add", "NEWMODALITY").returncode == 0
        assert _echoscu(port, "NEWMODALITY").returncode == 0, (tmp_path / "node.log").read_text()
        assert mammocad("aet", "remove", "NEWMODALITY").returncode == 0
        assert _echoscu(port, "NEWMODALITY").returncode != 0
    finally:
        processes.stop(node, grace=30)
    log_text = (tmp_path / "node.log").read_text()
    assert "event=config_reloaded" in log_text
    assert 'reason="calling AE title not recognised"' in log_text
