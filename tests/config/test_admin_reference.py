"""docs/ADMIN.md's "Every key" tables describe every settings field, at its real default."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mammocad.config.settings import (
    AuditSettings,
    BrokerSettings,
    Caller,
    DeliverySettings,
    Destination,
    MetricsSettings,
    NodeSettings,
    NodeTLSSettings,
    ResultsSettings,
    Settings,
    WorkerSettings,
)
from tests.config.conftest import REPO

#: The heading of each table in "## Every key", and the model whose fields it describes.
TABLES: dict[str, type[BaseModel]] = {
    "[node]": NodeSettings, "[node.tls]": NodeTLSSettings, "[[callers]]": Caller,
    "[[destinations]]": Destination, "[broker]": BrokerSettings, "[worker]": WorkerSettings,
    "[delivery]": DeliverySettings, "[results]": ResultsSettings, "[audit]": AuditSettings,
    "[metrics]": MetricsSettings, "Top level": Settings,
}


def _tables() -> dict[str, dict[str, str]]:
    """``{heading: {key: default cell}}`` from the reference section of docs/ADMIN.md."""
    text = (REPO / "docs" / "ADMIN.md").read_text()
    reference = text.split("\n## Every key\n", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, dict[str, str]] = {}
    for block in reference.split("\n### ")[1:]:
        heading = block.splitlines()[0]
        name = re.match(r"`([^`]+)`", heading)
        rows = tables.setdefault(name.group(1) if name else heading.strip(), {})
        for line in block.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 3 or cells[0] in ("key", "---"):
                continue
            for key in re.findall(r"`([a-z_]+)`", cells[0]):
                rows[key] = cells[1]
    return tables


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """Scalar and list fields (sections are tables of their own), by name."""
    out = {}
    for name, field in model.model_fields.items():
        if model is Settings and isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            continue
        if model is Settings and name in ("callers", "destinations"):
            continue
        out[name] = field
    return out


def test_every_field_is_described_and_every_described_key_exists() -> None:
    tables = _tables()
    assert set(tables) == set(TABLES), f"tables in docs/ADMIN.md 'Every key': {sorted(tables)}"
    missing, stale = [], []
    for heading, model in TABLES.items():
        fields = _fields(model)
        missing += [f"{heading} {k}" for k in fields if k not in tables[heading]]
        stale += [f"{heading} {k}" for k in tables[heading] if k not in fields]
    assert not missing, f"settings fields docs/ADMIN.md does not describe: {missing}"
    assert not stale, f"keys docs/ADMIN.md describes that the settings do not have: {stale}"


def test_documented_defaults_are_the_defaults() -> None:
    wrong = []
    for heading, model in TABLES.items():
        fields = _fields(model)
        for key, cell in _tables()[heading].items():
            literal = re.fullmatch(r"`([^`]*)`", cell)
            if key not in fields or not literal or fields[key].is_required():
                continue  # "required", "none", "all four": words, not values
            documented = tomllib.loads(f"v = {literal.group(1)}")["v"]
            default = fields[key].get_default(call_default_factory=True)
            if documented != (str(default) if isinstance(default, Path) else default):
                wrong.append(f"{heading} {key}: documented {cell}, default {default!r}")
    assert not wrong, wrong
