"""Every admin command, run as the installed ``mammocad`` script against a private config file."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.config.conftest import Runner


def test_aet_list_add_remove(mammocad: Runner, config_file: Path) -> None:
    out = mammocad("aet", "list")
    assert out.returncode == 0, out.stderr
    assert "PACS" in out.stdout and "127.0.0.1" in out.stdout and "(any host)" in out.stdout

    out = mammocad("aet", "add", "MG_ROOM1", "--host", "10.0.0.21")
    assert out.returncode == 0, out.stderr
    assert "added caller MG_ROOM1 from 10.0.0.21" in out.stdout and "no restart needed" in out.stdout
    assert {"ae_title": "MG_ROOM1", "host": "10.0.0.21"} in tomllib.loads(config_file.read_text())["callers"]
    assert "MG_ROOM1" in mammocad("aet", "list").stdout

    out = mammocad("aet", "add", "MG_ROOM1", "--host", "10.0.0.21")
    assert out.returncode == 1 and "already listed" in out.stderr

    out = mammocad("aet", "remove", "MG_ROOM1")
    assert out.returncode == 0, out.stderr
    assert "MG_ROOM1" not in config_file.read_text()

    out = mammocad("aet", "remove", "MG_ROOM1")
    assert out.returncode == 1 and "no caller 'MG_ROOM1'" in out.stderr


def test_aet_add_bad_title_names_rule(mammocad: Runner, config_file: Path) -> None:
    before = config_file.read_bytes()
    out = mammocad("aet", "add", "THIS_AE_IS_TOO_LONG")
    assert out.returncode == 1
    assert "1-16 characters" in out.stderr
    assert config_file.read_bytes() == before


def test_dest_list_add_remove(mammocad: Runner, config_file: Path) -> None:
    out = mammocad("dest", "add", "archive", "--ae", "ARCHIVE", "--host", "10.0.0.9", "--port", "11112",
                   "--outputs", "mammo-cad-sr,sc")
    assert out.returncode == 0, out.stderr
    assert "mammocad dest echo archive" in out.stdout
    entry = tomllib.loads(config_file.read_text())["destinations"][-1]
    assert entry == {"name": "archive", "ae_title": "ARCHIVE", "host": "10.0.0.9", "port": 11112,
                     "outputs": ["mammo-cad-sr", "sc"]}
    listing = mammocad("dest", "list").stdout
    assert "archive" in listing and "10.0.0.9:11112" in listing and "mammo-cad-sr,sc" in listing

    out = mammocad("dest", "add", "bad", "--ae", "B", "--host", "h", "--port", "70000")
    assert out.returncode == 1 and "destinations[2].port" in out.stderr and "left unchanged" in out.stderr

    out = mammocad("dest", "add", "bad", "--ae", "B", "--host", "h", "--port", "1", "--outputs", "sc,pdf")
    assert out.returncode == 1 and "unknown output kind 'pdf'" in out.stderr

    out = mammocad("dest", "add", "old", "--ae", "OLD", "--host", "h", "--port", "104", "--associations", "1")
    assert out.returncode == 0, out.stderr
    assert tomllib.loads(config_file.read_text())["destinations"][-1]["associations"] == 1
    out = mammocad("dest", "add", "bad", "--ae", "B", "--host", "h", "--port", "1", "--associations", "0")
    assert out.returncode == 1 and "associations" in out.stderr

    out = mammocad("dest", "remove", "archive")
    assert out.returncode == 0, out.stderr
    assert "archive" not in config_file.read_text()
    out = mammocad("dest", "remove", "archive")
    assert out.returncode == 1 and "configured: pacs" in out.stderr


def test_config_check_ok_and_invalid(mammocad: Runner, config_file: Path) -> None:
    out = mammocad("config", "check")
    assert out.returncode == 0, out.stderr
    assert "configuration OK" in out.stdout
    assert "node: AE MAMMOCAD on 127.0.0.1:11112" in out.stdout
    assert "callers (3): PACS@127.0.0.1, STORESCU, ECHOSCU" in out.stdout
    assert "destinations (1): pacs=PACS@127.0.0.1:4242" in out.stdout
    assert "broker: private redis-server" in out.stdout

    out = mammocad("config", "check", env={"MAMMOCAD_BROKER__URL": "redis://:s3cret@10.0.0.2:6379/0"})
    assert "broker: redis://:***@10.0.0.2:6379/0" in out.stdout and "s3cret" not in out.stdout

    out = mammocad("config", "check", env={"MAMMOCAD_NODE__PORT": "0"})
    assert out.returncode == 1
    assert "node.port" in out.stderr and "MAMMOCAD_NODE__PORT" in out.stderr

    config_file.write_text(config_file.read_text().replace('ae_title = "ECHOSCU"', 'ae_title = "ECHO\\\\SCU"'))
    out = mammocad("config", "check")
    assert out.returncode == 1
    assert "callers[2].ae_title" in out.stderr and "backslash" in out.stderr

    out = mammocad("config", "check", config=config_file.parent / "missing.toml")
    assert out.returncode == 1 and "does not exist" in out.stderr


def test_config_show_includes_env_overrides(mammocad: Runner) -> None:
    out = mammocad("config", "show", env={"MAMMOCAD_NODE__PORT": "11200",
                                          "MAMMOCAD_BROKER__URL": "redis://:pw@broker:6379/0"})
    assert out.returncode == 0, out.stderr
    data = tomllib.loads(out.stdout)
    assert data["node"]["port"] == 11200
    assert data["broker"]["url"] == "redis://:***@broker:6379/0"
    assert data["callers"][1] == {"ae_title": "STORESCU"}  # unset host left out (TOML has no null)
    assert data["delivery"]["network_timeout_s"] == 30.0  # defaults not in the file are shown too


def test_help_and_usage_errors(mammocad: Runner) -> None:
    out = mammocad("dest", "add", "--help")
    assert out.returncode == 0 and "--outputs" in out.stdout and "gsps" in out.stdout
    out = mammocad("dest", "add", "x", "--ae", "X", "--host", "h")
    assert out.returncode == 2 and "--port" in out.stderr


def test_add_creates_missing_file(mammocad: Runner, tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "mammocad.toml"
    out = mammocad("aet", "add", "PACS", config=path)
    assert out.returncode == 0, out.stderr
    assert "# mammocad configuration." in path.read_text()
    assert mammocad("config", "check", config=path).returncode == 0
