"""docs/ADMIN.md's metrics table against a live scrape: the same metrics, types and label names.

The scrape is the node's endpoint over loopback, in a fresh interpreter, with a real
redis-server and every metric of mammocad/metrics/definitions.py holding a sample, so what
Prometheus would see is what an admin reads about.
"""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.metrics.scrape import REPO, node_scrape
from tests.services import free_port, redis_server

ADMIN = REPO / "docs" / "ADMIN.md"


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    """``{family name: (type, label names)}`` from the table under "## Metrics and health"."""
    section = ADMIN.read_text().split("## Metrics and health", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `mammocad_")]
    assert rows, "docs/ADMIN.md has no metrics table"
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for row in rows:
        names, kind, labels = (cell.strip() for cell in row.strip("|").split("|")[:3])
        labels = re.sub(r"\([^)]*\)", "", labels)  # values and notes in brackets
        labels = labels.split(":")[0]  # "`stage`: `wait` (...), `analyse` ...": the values follow the colon
        label_names = frozenset(re.findall(r"`([a-z_]+)`", labels))
        for name in re.findall(r"`(mammocad_[a-z0-9_]+)`", names):
            family = name.removesuffix("_total") if kind == "counter" else name
            out[family] = (kind, label_names)
    return out


def scraped(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """The scrape's families; prometheus_client's ``*_created`` series (documented in one
    sentence under the table) are left out."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("mammocad_") and not family.name.endswith("_created"):
            labels = {k for s in family.samples for k in s.labels} - {"le"}
            out[family.name] = (family.type, frozenset(labels))
    return out


def test_the_documented_metrics_are_the_scraped_ones(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    (spool / "outbox" / "pacs").mkdir(parents=True)
    with redis_server(tmp_path / "redis") as url:
        text = node_scrape(spool, url, free_port())
    docs, live = documented(), scraped(text)
    assert sorted(set(live) - set(docs)) == [], "scraped but not in docs/ADMIN.md's table"
    assert sorted(set(docs) - set(live)) == [], "in docs/ADMIN.md's table but not scraped"
    wrong = {name: (docs[name], live[name]) for name in docs if docs[name] != live[name]}
    assert wrong == {}, "type or label names differ (documented, scraped)"
