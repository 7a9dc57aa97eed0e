"""Every admin command, run as the installed ``mammocad`` script against a private config file."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from mammocad.config import EXIT_INVALID_CONFIG
from tests.config.conftest import MAMMOCAD, Runner


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
    assert out.returncode == EXIT_INVALID_CONFIG
    assert "node.port" in out.stderr and "MAMMOCAD_NODE__PORT" in out.stderr

    config_file.write_text(config_file.read_text().replace('ae_title = "ECHOSCU"', 'ae_title = "ECHO\\\\SCU"'))
    out = mammocad("config", "check")
    assert out.returncode == EXIT_INVALID_CONFIG
    assert "callers[2].ae_title" in out.stderr and "backslash" in out.stderr

    out = mammocad("config", "check", config=config_file.parent / "missing.toml")
    assert out.returncode == EXIT_INVALID_CONFIG and "does not exist" in out.stderr


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


def _one_line(out: subprocess.CompletedProcess[str], status: int = EXIT_INVALID_CONFIG) -> str:
    """The single stderr line of a refused command, without the ``mammocad: `` prefix; ``status``
    is that of a configuration that cannot be used unless given."""
    assert out.returncode == status and out.stdout == "", (out.stdout, out.stderr)
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mammocad: "), out.stderr
    return lines[0].removeprefix("mammocad: ")


def test_config_file_that_cannot_be_used_is_one_line_saying_what_to_do(mammocad: Runner, tmp_path: Path) -> None:
    """A folder passed as --config loaded as an empty file ("configuration OK", every default);
    a missing file or a TOML syntax error was followed by "fix the key named above", naming none."""
    folder = tmp_path / "etc-folder"
    folder.mkdir()
    line = _one_line(mammocad("config", "check", config=folder))
    assert line == f"configuration file {folder} is a folder: give the file, e.g. --config {folder}/mammocad.toml"

    missing = tmp_path / "missing.toml"
    for command in (("config", "check"), ("dest", "list")):
        line = _one_line(mammocad(*command, config=missing))
        assert line.startswith(f"configuration file {missing} does not exist: give the right path with --config")

    broken = tmp_path / "broken.toml"
    broken.write_text('[node]\nport = 11112\nae_title = "MAMMO\n')
    line = _one_line(mammocad("config", "check", config=broken))
    assert line.startswith(f"configuration file {broken} is not valid TOML: ") and "(at line 3" in line, line
    assert line.endswith("fix that line, then run `mammocad config check`")

    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[node]\nae_title = "MAMMÖ"\n'.encode("latin-1"))
    assert "is not UTF-8 text" in _one_line(mammocad("config", "check", config=latin1))


def test_missing_config_named_by_the_environment_says_so(mammocad: Runner, tmp_path: Path) -> None:
    missing = tmp_path / "none.toml"
    out = subprocess.run([str(MAMMOCAD), "config", "check"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "MAMMOCAD_CONFIG": str(missing)})
    assert _one_line(out).startswith(f"configuration file {missing} (named by $MAMMOCAD_CONFIG) does not exist")


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None,
                    reason="root ignores file permissions; setpriv drops that privilege")
def test_unreadable_config_file_is_one_line_saying_what_to_do(config_file: Path, clean_env: None) -> None:
    """It read "invalid configuration in F: [Errno 13] Permission denied", then "fix the key named above"."""
    config_file.chmod(0)
    command = _as_unprivileged([str(MAMMOCAD), "--config", str(config_file), "config", "check"])
    line = _one_line(subprocess.run(command, capture_output=True, text=True, timeout=60))
    assert line.startswith(f"cannot read configuration file {config_file}: Permission denied; check the "
                           "permissions"), line


def test_invalid_key_ends_with_what_to_do(mammocad: Runner) -> None:
    out = mammocad("config", "check", env={"MAMMOCAD_NODE__PORT": "abc"})
    assert out.returncode == EXIT_INVALID_CONFIG
    lines = out.stderr.splitlines()
    assert "node.port" in lines[1] and "[from environment variable MAMMOCAD_NODE__PORT]" in lines[1], out.stderr
    assert lines[-1].startswith("fix each key named above (in ") and "then run `mammocad config check`" in lines[-1]
    assert len(lines) == 3, out.stderr


def test_ae_titles_outside_the_ae_vr_are_refused_everywhere(mammocad: Runner, config_file: Path) -> None:
    """A non-ASCII AE title passed `config check`, `aet add` and `dest add`, then failed in
    pynetdicom: the node at start, a destination at every delivery attempt."""
    before = config_file.read_bytes()
    for title, reason in (("MÄMMO", "must be ASCII"), ("MAMMOCAD_NODE_TOO_LONG", "1-16 characters"),
                          ("A\\B", "backslash"), ("   ", "1-16 characters")):
        out = mammocad("config", "check", env={"MAMMOCAD_NODE__AE_TITLE": title})
        assert out.returncode == EXIT_INVALID_CONFIG and "node.ae_title" in out.stderr and reason in out.stderr, (title, out.stderr)
        assert "MAMMOCAD_NODE__AE_TITLE" in out.stderr
        out = mammocad("aet", "add", title)
        assert out.returncode == 1 and reason in out.stderr and len(out.stderr.splitlines()) == 1, out.stderr
        out = mammocad("dest", "add", "peer", "--ae", title, "--host", "127.0.0.1", "--port", "104")
        assert out.returncode == 1 and reason in out.stderr and len(out.stderr.splitlines()) == 1, out.stderr
    assert config_file.read_bytes() == before
    # leading and trailing spaces are not significant in an AE title (PS3.5 Table 6.2-1): removed
    out = mammocad("aet", "add", " MG_ROOM3 ")
    assert out.returncode == 0 and {"ae_title": "MG_ROOM3"} in tomllib.loads(config_file.read_text())["callers"]


def _as_unprivileged(command: list[str]) -> list[str]:
    """``command`` without root's power to ignore permissions (setpriv), when run as root."""
    if os.geteuid() == 0:
        return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", *command]
    return command


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None,
                    reason="root ignores file permissions; setpriv drops that privilege")
def test_edit_without_permission_is_one_line_saying_what_to_do(config_file: Path, clean_env: None) -> None:
    """`aet add` by an admin without sudo on /etc/mammocad ended in a PermissionError traceback."""
    before = config_file.read_bytes()
    folder = config_file.parent
    edits = (["aet", "add", "MG_ROOM9"], ["dest", "remove", "pacs"],
             ["dest", "add", "p2", "--ae", "P2", "--host", "127.0.0.1", "--port", "104"])
    for mode in (0o555, 0o000):  # the folder not writable (the file is replaced), then not readable
        folder.chmod(mode)
        try:
            for edit in edits:
                out = subprocess.run(_as_unprivileged([str(MAMMOCAD), "--config", str(config_file), *edit]),
                                     capture_output=True, text=True, timeout=60)
                # A file this admin cannot read is a configuration every command refuses (as
                # `config check` does); a folder it cannot write, only a failed edit.
                line = _one_line(out, EXIT_INVALID_CONFIG if mode == 0o000 else 1)
                assert line.startswith(f"cannot edit configuration file {config_file}: Permission denied"), line
                assert line.endswith("e.g. with sudo; nothing changed"), line
        finally:
            folder.chmod(0o755)
    assert config_file.read_bytes() == before


def test_edit_of_a_folder_is_one_line(mammocad: Runner, tmp_path: Path) -> None:
    folder = tmp_path / "etc-folder"
    folder.mkdir()
    line = _one_line(mammocad("aet", "add", "MG_ROOM9", config=folder))
    assert line == (f"configuration file {folder} is a folder: give the file, e.g. --config "
                    f"{folder}/mammocad.toml; nothing changed")
