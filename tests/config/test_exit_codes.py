"""One exit status for an invalid configuration, whatever the command (docs/ADMIN.md, "Exit status")."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammocad.config import EXIT_INVALID_CONFIG
from tests.config.conftest import Runner

UID = "1.2.826.0.1.3680043.8.498.1"

#: Every command that reads the configuration, with arguments it would otherwise accept.
COMMANDS = [
    ("config", "check"), ("config", "show"),
    ("aet", "list"), ("aet", "add", "MG_ROOM9"), ("aet", "remove", "PACS"),
    ("dest", "list"), ("dest", "add", "two", "--ae", "TWO", "--host", "127.0.0.1", "--port", "4243"),
    ("dest", "remove", "pacs"), ("dest", "echo", "pacs"),
    ("node",), ("serve",), ("spool", "prune", "--dry-run"),
    ("worker", "--queues", "results"), ("workers",),
    ("studies", "list"), ("studies", "show", UID), ("studies", "resend", UID), ("studies", "reanalyse", UID),
    ("outbox", "list"), ("outbox", "retry", "--all"), ("outbox", "drop", "--dest", "pacs"),
    ("analyze", "missing.dcm"),
]


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_invalid_configuration_exits_with_the_documented_status(mammocad: Runner, config_file: Path,
                                                               argv: tuple[str, ...]) -> None:
    config_file.write_text(config_file.read_text().replace("port = 11112", "port = 70000", 1))
    out = mammocad(*argv, timeout=120)
    assert out.returncode == EXIT_INVALID_CONFIG, (out.returncode, out.stdout, out.stderr)
    assert "node.port" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_the_documented_status_is_the_one_in_the_code() -> None:
    admin = (Path(__file__).resolve().parents[2] / "docs" / "ADMIN.md").read_text()
    assert f"| {EXIT_INVALID_CONFIG} | invalid configuration" in admin
