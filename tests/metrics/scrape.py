"""Scrape a metrics endpoint over loopback and read its samples (Prometheus text format)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as rsp:
            return rsp.status, rsp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of one scrape."""
    status, text = get(port, "/metrics")
    assert status == 200, text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(port: int, name: str, **labels: str) -> float | None:
    want = tuple(sorted(labels.items()))
    for (n, got), v in samples(port).items():
        if n == name and all(item in got for item in want):
            return v
    return None


REPO = Path(__file__).resolve().parents[2]

#: Puts a sample in every metric of definitions.py (each label a made-up value).
TOUCH = """
    def touch(module):
        from prometheus_client.metrics import MetricWrapperBase  # after multiprocess.prepare()
        for obj in vars(module).values():
            if isinstance(obj, MetricWrapperBase):
                child = obj.labels(*[f"v{i}" for i in range(len(obj._labelnames))]) if obj._labelnames else obj
                child.observe(1.5) if hasattr(child, "observe") else child.inc()
"""


def fresh_scrape(code: str) -> str:
    """Run ``code`` (which prints one scrape; ``touch(module)`` is defined) in a fresh
    interpreter, so its registry is its own."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(TOUCH) + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def node_scrape(spool: Path, broker_url: str, port: int) -> str:
    """One scrape of the node's endpoint (every metric touched) for ``spool``, with one
    destination ``pacs`` configured, in a fresh interpreter."""
    return fresh_scrape(f"""
        import urllib.request
        from mammocad.config import Settings
        from mammocad.metrics.endpoints import start_node_endpoint
        import mammocad.metrics.definitions as m
        touch(m)
        settings = Settings(node={{"spool_dir": {str(spool)!r}}}, metrics={{"port": {port}}},
                            destinations=[{{"name": "pacs", "ae_title": "PACS", "host": "127.0.0.1",
                                            "port": 4242}}])
        server = start_node_endpoint(settings, {broker_url!r})
        print(urllib.request.urlopen(f"http://127.0.0.1:{{server.port}}/metrics", timeout=10).read().decode())
        server.stop()
    """)
