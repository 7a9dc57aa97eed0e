"""A metrics endpoint on the node's DICOM port passed `config check` and then failed to bind."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammocad.config import ConfigError, load_settings


@pytest.mark.parametrize("text, named", [
    ("[node]\nport = 9100\n[metrics]\nport = 9100\n", "metrics.port (9100) is node.port"),
    ("[node]\nport = 11112\n[node.tls]\nport = 2762\n[metrics]\nport = 2762\n", "metrics.port (2762) is node.tls.port"),
    ("[node]\nport = 9100\n[metrics]\nworker_port = 9100\n", "metrics.worker_port (9100) is node.port"),
    ("[node]\nport = 9101\n[metrics]\nworker_port = 9100\n", "(the analysis worker's) (9101) is node.port"),
])
def test_a_metrics_port_on_a_dicom_port_is_refused(tmp_path: Path, clean_env: None, text: str, named: str) -> None:
    path = tmp_path / "mammocad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="choose another metrics port") as exc:
        load_settings(path)
    assert named in str(exc.value)


def test_distinct_ports_load(tmp_path: Path, clean_env: None) -> None:
    path = tmp_path / "mammocad.toml"
    path.write_text("[node]\nport = 11112\n[node.tls]\nport = 2762\n[metrics]\nport = 9100\nworker_port = 9101\n")
    settings = load_settings(path)
    assert (settings.metrics.port, settings.metrics.worker_port) == (9100, 9101)
