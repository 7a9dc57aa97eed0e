"""Paths in a config file mean the same thing to every process that reads the file.

The default spool was ``var/spool``, relative to the working directory of whichever process
read the config: the node (``WorkingDirectory=/var/lib/mammocad``), an admin's ``mammocad
studies list`` in their home folder and a test runner each used a spool of their own. Now the
default is absolute, a relative path in the file is relative to the file's folder, and one from
the environment stays relative to the working directory.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from mammocad.config.editing import add_caller
from mammocad.config.paths import path_keys
from mammocad.config.schema import Settings
from mammocad.config.settings import load_settings, validate_config_data
from tests.audit.certs import make_certs
from tests.config.conftest import MAMMOCAD


def _mammocad(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MAMMOCAD), *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def site(tmp_path: Path, clean_env: None) -> Path:
    """``site/etc/mammocad.toml`` with a relative spool, and two unrelated working folders."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "mammocad.toml").write_text('[node]\nspool_dir = "spool"\n')
    for name in ("home", "elsewhere"):
        (tmp_path / name).mkdir()
    return tmp_path


def test_processes_started_from_different_folders_use_the_same_spool(site: Path) -> None:
    """The same file, named relatively from two folders: one spool, beside the file."""
    spools = []
    for cwd, config in ((site / "home", "../etc/mammocad.toml"), (site, "etc/mammocad.toml")):
        shown = _mammocad(cwd, "--config", config, "config", "show")
        assert shown.returncode == 0, shown.stderr
        spools.append(tomllib.loads(shown.stdout)["node"]["spool_dir"])
        pruned = _mammocad(cwd, "--config", config, "spool", "prune", "--dry-run")
        assert pruned.returncode == 0, pruned.stderr
        assert f"from {site / 'etc' / 'spool'}" in pruned.stdout
    assert spools == [str(site / "etc" / "spool")] * 2


def test_an_environment_path_stays_relative_to_the_working_directory(site: Path) -> None:
    """As any path typed in a shell; the file's value is overridden, not re-based."""
    env = {"MAMMOCAD_NODE__SPOOL_DIR": "var/spool", "MAMMOCAD_AUDIT__FILE": "audit.log"}
    shown = _mammocad(site / "home", "--config", str(site / "etc" / "mammocad.toml"), "config", "show", env=env)
    assert shown.returncode == 0, shown.stderr
    data = tomllib.loads(shown.stdout)
    assert (data["node"]["spool_dir"], data["audit"]["file"]) == ("var/spool", "audit.log")


def test_the_default_spool_is_absolute(clean_env: None, tmp_path: Path) -> None:
    """Without a spool_dir anywhere, every process uses the install's spool, not one per folder."""
    (tmp_path / "empty.toml").write_text("")
    assert load_settings(tmp_path / "empty.toml").node.spool_dir == Path("/var/lib/mammocad/spool")


def test_relative_tls_files_load_wherever_the_check_runs(site: Path) -> None:
    """Certificates beside the file (``tls/node.crt``) pass `config check` run from any folder,
    as the node loads them; before, the check looked for them under the admin's folder."""
    certs = make_certs(site / "etc" / "tls")
    config = site / "etc" / "mammocad.toml"
    config.write_text('[node]\nspool_dir = "spool"\n\n[node.tls]\nenabled = true\n'
                      f'certificate = "tls/{certs.server_cert.name}"\nprivate_key = "tls/{certs.server_key.name}"\n'
                      f'ca_certificates = "tls/{certs.ca.name}"\n')
    checked = _mammocad(site / "elsewhere", "--config", str(config), "config", "check")
    assert checked.returncode == 0, checked.stderr
    settings = load_settings(config)
    assert settings.node.tls.certificate == str(certs.server_cert)


def test_an_edit_validates_relative_paths_as_the_services_do_and_keeps_them(site: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`aet add` validates the file alone (validate_config_data): a relative certificate path
    beside the file must pass there too, and the file keeps the admin's relative spelling."""
    certs = make_certs(site / "etc" / "tls")
    config = site / "etc" / "mammocad.toml"
    text = ('[[destinations]]\nname = "pacs"\nae_title = "PACS"\nhost = "127.0.0.1"\nport = 2762\ntls = true\n'
            f'ca_certificates = "tls/{certs.ca.name}"\n')
    config.write_text(text)
    data = tomllib.loads(text)
    assert validate_config_data(data, config).destinations[0].ca_certificates == str(certs.ca)
    assert data["destinations"][0]["ca_certificates"] == "tls/ca.crt"  # the caller's data unchanged
    monkeypatch.chdir(site / "elsewhere")
    add_caller(config, "MG1", None)
    assert 'ca_certificates = "tls/ca.crt"' in config.read_text()


def test_every_path_setting_is_resolved() -> None:
    """A new path field must be marked (FilePath / FolderPath) or it would still follow the
    working directory; the fields that name files or folders today are all marked."""
    keys = {".".join(k) for k in path_keys(Settings)}
    assert keys == {
        "node.spool_dir", "node.tls.certificate", "node.tls.private_key", "node.tls.ca_certificates",
        "destinations.*.ca_certificates", "destinations.*.certificate", "destinations.*.private_key",
        "worker.weights", "audit.file", "audit.ca_certificates", "audit.certificate", "audit.private_key"}
