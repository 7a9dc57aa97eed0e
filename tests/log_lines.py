"""A parser for the documented log line (docs/ADMIN.md, "Troubleshooting by log event"):
``TIMESTAMP LEVEL LOGGER event=NAME key=value ...``, a value bare or a JSON string."""

from __future__ import annotations

import json
import re

_HEAD = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+) ")
_FIELD = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^\s="]+)(?: |$)')


def parse(line: str) -> dict[str, str]:
    """The fields of one line (``level``, ``logger``, ``event``, ...); AssertionError naming
    the line when it does not have the documented shape."""
    head = _HEAD.match(line)
    assert head is not None, f"not a log line (timestamp level logger): {line!r}"
    fields = {"ts": head.group(1), "level": head.group(2), "logger": head.group(3)}
    pos = head.end()
    while pos < len(line):
        match = _FIELD.match(line, pos)
        assert match is not None, f"not key=value at column {pos}: {line!r}"
        key, raw = match.groups()
        fields[key] = json.loads(raw) if raw.startswith('"') else raw
        pos = match.end()
    assert list(fields)[3:4] == ["event"], f"the first field is not event=NAME: {line!r}"
    return fields
