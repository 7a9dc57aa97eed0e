"""Prometheus's own checker, promtool (Debian package ``prometheus``, installed by
``make system-test-deps``), on what we ship and what we export:

- ``promtool check rules`` and ``promtool test rules`` on deploy/prometheus/alerts.yml and its
  unit tests (alerts_test.yml: each alert fires on the series that should raise it, after
  its ``for:`` time, with its annotations rendered, and stays quiet on healthy series);
- ``promtool check metrics`` (exposition format and naming lint) on real scrapes of the
  node's endpoint (default registry, queue depths from a real redis, outbox counts) and of a
  worker's (multiprocess mode, samples written by forked pool processes), with every metric
  in mammocad/metrics/definitions.py holding a sample.

A missing promtool fails these tests: a check that skips cannot fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase

import mammocad.metrics.definitions as definitions
from tests.metrics.scrape import fresh_scrape, node_scrape
from tests.services import free_port, redis_server

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO / "deploy" / "prometheus" / "alerts_test.yml"

@pytest.fixture(scope="module")
def promtool() -> str:
    exe = shutil.which("promtool")
    assert exe, "promtool is not installed: run `make system-test-deps` (Debian package prometheus)"
    return exe


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=120)


def _families() -> set[str]:
    return {f.name for obj in vars(definitions).values() if isinstance(obj, MetricWrapperBase)
            for f in obj.describe()}


def _check_metrics(promtool: str, text: str) -> None:
    for family in _families():  # every metric is in the scrape, with a sample
        assert re.search(rf"^{family}(_total|_count)?{{", text, re.M), f"{family} has no sample in the scrape"
    proc = _run(promtool, "check", "metrics", stdin=text)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_accepts_the_rules(promtool: str) -> None:
    proc = _run(promtool, "check", "rules", str(ALERTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 9 rules found" in proc.stdout + proc.stderr


def test_every_alert_has_unit_tests_and_they_pass(promtool: str) -> None:
    alerts = set(re.findall(r"^\s*- alert:\s*(\S+)$", ALERTS.read_text(), re.M))
    tested = set(re.findall(r"^\s*alertname:\s*(\S+)$", ALERT_TESTS.read_text(), re.M))
    assert alerts and alerts == tested, f"alerts without a unit test: {sorted(alerts - tested)}"
    proc = _run(promtool, "test", "rules", str(ALERT_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_check_metrics_finds_a_bad_name(promtool: str) -> None:
    """The lint really runs: a counter without ``_total`` is reported."""
    proc = _run(promtool, "check", "metrics", stdin="# HELP x_seconds t\n# TYPE x_seconds counter\nx_seconds 1\n")
    assert proc.returncode != 0 and '"_total" suffix' in proc.stdout + proc.stderr


def test_node_endpoint_passes_check_metrics(promtool: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    (spool / "outbox" / "pacs" / "item-1").mkdir(parents=True)
    (spool / "deadletter" / "pacs" / "item-2").mkdir(parents=True)
    from mammocad.spool.layout import Spool
    from mammocad.spool.presence import PresenceBeacon

    PresenceBeacon(Spool(spool), "gpu-12@box", lease_s=30, keep_s=60).write()  # one live analysis worker
    with redis_server(tmp_path / "redis") as url:
        text = node_scrape(spool, url, free_port())
    for sample in ('mammocad_queue_depth{queue="gpu"} 0', 'mammocad_outbox_items{destination="pacs"} 1',
                   'mammocad_deadletter_items{destination="pacs"} 1', 'mammocad_ready{check="broker"} 1',
                   'mammocad_workers{queue="gpu",state="alive"} 1',
                   'mammocad_workers{queue="results",state="alive"} 0'):
        assert sample in text, sample
    _check_metrics(promtool, text)


def test_worker_endpoint_passes_check_metrics(promtool: str, tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as url:
        text = fresh_scrape(f"""
            import os, urllib.request
            from pathlib import Path
            from mammocad.metrics import multiprocess
            multiprocess.prepare(Path({str(tmp_path / "metrics")!r}))
            import mammocad.metrics.definitions as m
            from mammocad.config import Settings
            from mammocad.metrics.endpoints import start_worker_endpoint
            for _ in range(2):  # pool processes write the samples; the parent serves their sum
                pid = os.fork()
                if pid == 0:
                    touch(m)
                    os._exit(0)
                os.waitpid(pid, 0)
            settings = Settings(node={{"spool_dir": {str(tmp_path / "spool")!r}}}, broker={{"url": {url!r}}})
            server = start_worker_endpoint(settings, {free_port()})
            print(urllib.request.urlopen(f"http://127.0.0.1:{{server.port}}/metrics", timeout=10).read().decode())
            server.stop()
        """)
    assert 'mammocad_images_analysed_total{outcome="v0"} 2.0' in text
    _check_metrics(promtool, text)
