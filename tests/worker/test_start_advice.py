"""A worker logs the configuration advice of its own config at start, as the node does.

A GPU box runs ``mammocad worker`` with its own configuration file, where no node ever
starts: an expiring destination certificate or a world-readable key there went unsaid.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.log_lines import parse
from tests.tls_certs import TestPKI, issue_expired, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _config(tmp_path: Path, pki: TestPKI) -> Path:
    """A worker's config whose weights are not a checkpoint: the worker exits at start, after
    its start-up lines, without a broker or a model."""
    old = issue_expired(pki.ca, tmp_path, "olddest")
    old_node = issue_expired(pki.ca, tmp_path, "oldnode")
    for pair in (old, old_node):
        pair.private_key.chmod(0o600)
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"not a checkpoint")
    config = tmp_path / "mammocad.toml"
    config.write_text(
        f'log_level = "INFO"\n[node]\nspool_dir = "{tmp_path / "spool"}"\n'
        f'[node.tls]\nenabled = true\ncertificate = "{old_node.certificate}"\n'
        f'private_key = "{old_node.private_key}"\nca_certificates = "{pki.ca.certificate}"\n'
        f'[broker]\nurl = "redis://127.0.0.1:1/0"\n[worker]\ndevice = "cpu"\nweights = "{weights}"\n'
        f'[[destinations]]\nname = "pacs"\nae_title = "PACS"\nhost = "127.0.0.1"\nport = 2762\n'
        f'outputs = ["mammo-cad-sr"]\ntls = true\nca_certificates = "{pki.ca.certificate}"\n'
        f'certificate = "{old.certificate}"\nprivate_key = "{old.private_key}"\n')
    return config


def _warnings(config: Path, *args: str) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
    proc = subprocess.run([sys.executable, "-m", "mammocad", "--config", str(config), "worker", *args],
                          capture_output=True, text=True, env=env, timeout=300)
    lines = [parse(line) for line in proc.stderr.splitlines() if " event=config_warning " in line]
    assert all(f["level"] == "WARNING" for f in lines), proc.stderr
    return [f["warning"] for f in lines], proc


def test_results_worker_logs_its_certificate_warning_once(tmp_path: Path, pki: TestPKI) -> None:
    """Supervised (both queues): one line per warning, not one per child or per restart."""
    config = _config(tmp_path, pki)
    warned, proc = _warnings(config)
    assert proc.returncode != 0  # the weights are not a checkpoint: the children keep failing
    assert [w for w in warned if w.startswith("destination pacs certificate ")] \
        == [w for w in warned if "expired on 2020-01-02" in w and "pacs" in w], proc.stderr
    assert len([w for w in warned if w.startswith("destination pacs certificate ")]) == 1, proc.stderr
    assert not [w for w in warned if w.startswith("node.tls")], warned  # the node's to say


def test_analysis_worker_alone_logs_what_it_uses(tmp_path: Path, pki: TestPKI) -> None:
    """A GPU box's worker: its audit client certificate and key, not the destinations or node.tls."""
    config = _config(tmp_path, pki)
    audit = issue_expired(pki.ca, tmp_path, "oldaudit")
    audit.private_key.chmod(0o644)  # every user on the box can read it
    with config.open("a") as f:
        f.write(f'[audit]\nsyslog = "tls://127.0.0.1:6514"\nca_certificates = "{pki.ca.certificate}"\n'
                f'certificate = "{audit.certificate}"\nprivate_key = "{audit.private_key}"\n')
    warned, proc = _warnings(config, "--queues", "gpu")
    assert proc.returncode == 2, proc.stderr
    assert len([w for w in warned if w.startswith(f"audit.certificate {audit.certificate} expired on")]) == 1, warned
    assert len([w for w in warned if w.startswith(f"audit.private_key {audit.private_key} is readable")]) == 1, warned
    assert not [w for w in warned if "destination" in w or w.startswith("node.")], warned
