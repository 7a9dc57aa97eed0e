"""`mammocad worker` sets umask 027 as the node and `serve` do: files it (or a library) creates
without an explicit mode are not readable by other users of a GPU box, whatever shell started it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_PROBE = """
import os, sys
os.umask(0)
from mammocad.cli import main
code = main(["--config", sys.argv[1], "worker"])
print(code, oct(os.umask(0)))
"""


def test_the_worker_sets_a_private_umask(tmp_path: Path) -> None:
    config = tmp_path / "mammocad.toml"
    config.write_text(f'[node]\nspool_dir = "{tmp_path / "spool"}"\n')  # no broker.url: returns at once
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(config)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.stdout.split() == ["2", "0o27"], proc.stdout + proc.stderr
