"""Every event the audit trail and the worker's observer log (INFO and above) has a row in
docs/ADMIN.md's "Troubleshooting by log event", where an admin looks a line up.

The observer's ``metric_failed`` and ``audit_failed`` and the sender's ``audit_sender_error``
were logged but had none: an admin who saw them could not tell whether an audit record was
lost or what to check. The events are read from the source (its calls), not listed here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = [*sorted((REPO / "mammocad" / "audit").glob("*.py")), REPO / "mammocad" / "worker" / "observer.py",
           REPO / "mammocad" / "metrics" / "safe.py"]
_LEVELS = {"exception", "critical", "error", "warning", "info"}


def _logged(path: Path) -> set[str]:
    """The event names ``path`` logs at INFO or above (``log_event`` or ``logger.<level>``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func, args = node.func, node.args
        if isinstance(func, ast.Name) and func.id == "log_event" and len(args) >= 2:
            level = args[2] if len(args) > 2 else next((k.value for k in node.keywords if k.arg == "level"), None)
            if isinstance(level, ast.Attribute) and level.attr == "DEBUG":
                continue
            name = args[1]
        elif isinstance(func, ast.Attribute) and func.attr in _LEVELS and args:
            name = args[0]
        else:
            continue
        if isinstance(name, ast.Constant) and isinstance(name.value, str) and re.fullmatch(r"[a-z_]+", name.value):
            names.add(name.value)
    return names


def _documented() -> set[str]:
    text = (REPO / "docs" / "ADMIN.md").read_text()
    section = text.split("## Troubleshooting by log event", 1)[1].split("\n## ", 1)[0]
    return {name for row in re.findall(r"^\| (`[^|]+`) \|", section, re.MULTILINE)
            for name in re.findall(r"`([a-z_]+)`", row)}


def test_every_audit_and_observer_event_has_a_troubleshooting_row() -> None:
    logged = set().union(*(_logged(path) for path in SOURCES))
    assert {"audit_dropped", "audit_unsent", "metric_failed"} <= logged  # the reading finds them
    assert sorted(logged - _documented()) == [], "logged but not in docs/ADMIN.md's troubleshooting tables"
