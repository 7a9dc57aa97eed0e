"""deploy/grafana/mammocad.json and deploy/prometheus/alerts.yml use only metrics the code
exports, so they cannot drift from it (promtool's own checks: tests/metrics/test_promtool.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

import mammocad.metrics.definitions as definitions
from mammocad.metrics.state import BrokerCollector, SpoolCollector, WorkersCollector

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "mammocad.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported() -> set[str]:
    """Every sample name the node and the workers can expose."""
    families = [f for obj in vars(definitions).values() if isinstance(obj, MetricWrapperBase) for f in obj.describe()]
    families += list(BrokerCollector("redis://127.0.0.1:1/0", []).describe())
    families += list(SpoolCollector(Path("."), lambda: []).describe())
    families += list(WorkersCollector(Path("."), [], 30.0).describe())
    names = {f.name + suffix for f in families for suffix in _SUFFIXES[f.type]}
    return names | {"mammocad_ready"}  # written by MetricsServer.readiness_samples


def referenced(text: str) -> set[str]:
    return set(re.findall(r"\bmammocad_[a-z0-9_]+", text))


def _dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_dashboard_uses_only_exported_metrics() -> None:
    exprs = _dashboard_exprs()
    assert len(exprs) >= 10
    unknown = referenced("\n".join(exprs)) - exported()
    assert not unknown, f"dashboard names metrics the code does not export: {sorted(unknown)}"


def test_alert_rules_use_only_exported_metrics() -> None:
    text = ALERTS.read_text()
    unknown = referenced("\n".join(re.findall(r"^\s*expr:\s*(.+)$", text, re.M))) - exported()
    assert not unknown, f"alerts.yml names metrics the code does not export: {sorted(unknown)}"


def test_the_issue_s_alerts_are_there() -> None:
    text = ALERTS.read_text()
    alerts = re.findall(r"^\s*- alert:\s*(\S+)$", text, re.M)
    exprs = re.findall(r"^\s*expr:\s*(.+)$", text, re.M)
    assert len(alerts) == len(exprs) == len(re.findall(r"^\s*severity:", text, re.M))
    joined = "\n".join(exprs)
    for needle in ("mammocad_deadletter_items", "mammocad_result_latency_seconds_count", "mammocad_ready",
                   "mammocad_detector_errors_total"):
        assert needle in joined, f"no alert rule on {needle}"


def test_every_exported_metric_is_on_the_dashboard() -> None:
    shown = {re.sub(r"_(bucket|count|sum)$", "", n) for n in referenced("\n".join(_dashboard_exprs()))}
    families = {re.sub(r"_(bucket|count|sum)$", "", n) for n in exported()}
    missing = {f for f in families if f not in shown and f + "_total" not in shown and f.removesuffix("_total") not in shown}
    assert not missing, f"exported but not on the dashboard: {sorted(missing)}"

