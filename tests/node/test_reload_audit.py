"""The node audits a hand edit of its callers as itself, through its own audit trail.

The config watcher made a second trail of its own on the first audited reload: a second
sender in the process, its records signed ``mammocad[pid]`` instead of ``mammocad-node``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.audit.schema import problems
from tests.node.conftest import NodeEnv


def test_a_reload_of_the_callers_is_audited_by_the_node(tmp_path: Path, start_node: Callable[..., NodeEnv]) -> None:
    audit = tmp_path / "audit.log"
    env = start_node(callers=f'[audit]\nfile = "{audit}"\n\n[[callers]]\nae_title = "ECHOSCU"\n')
    assert env.echoscu(aet="NEWPACS").returncode != 0  # not a caller yet
    env.config.write_text(env.config.read_text() + '\n[[callers]]\nae_title = "NEWPACS"\n')
    assert env.echoscu(aet="NEWPACS").returncode == 0  # the node re-read its callers
    env.node.stop()
    lines = [line for line in audit.read_bytes().splitlines() if b"110129" in line]
    assert len(lines) == 1, audit.read_text()
    assert problems(lines[0]) == []
    assert b"mammocad-node" in lines[0], lines[0]
