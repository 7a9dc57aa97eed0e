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


#: The commands of the modules that wrote a literal 2 for an invalid configuration.
_LITERAL_TWO_BEFORE: dict[str, list[tuple[str, ...]]] = {
    "mammocad.node.cli": [("node",), ("serve",), ("spool", "prune", "--dry-run")],
    "mammocad.studies.cli": [("studies", "list"), ("studies", "show", UID), ("studies", "resend", UID),
                             ("studies", "reanalyse", UID)],
    "mammocad.worker.cli": [("worker", "--queues", "results")],
    "mammocad.worker.outbox_cli": [("outbox", "list"), ("outbox", "retry", "--all"), ("outbox", "drop", "--dest", "pacs")],
}


@pytest.mark.parametrize("module", sorted(_LITERAL_TWO_BEFORE))
def test_commands_return_the_one_constant(module: str, config_file: Path, clean_env: None,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """They returned their own literal 2: equal today, but a change of the documented status
    (EXIT_INVALID_CONFIG) would have left them behind. With the constant set to another value
    in the module, the commands must return that value."""
    import importlib

    from mammocad.cli import main

    monkeypatch.setattr(importlib.import_module(module), "EXIT_INVALID_CONFIG", 99)
    config_file.write_text(config_file.read_text().replace("port = 11112", "port = 70000", 1))
    statuses = {argv: main(["--config", str(config_file), *argv]) for argv in _LITERAL_TWO_BEFORE[module]}
    assert statuses == dict.fromkeys(_LITERAL_TWO_BEFORE[module], 99)
