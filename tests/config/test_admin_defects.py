"""Issue 10 admin defects, each with the check that failed before the fix.

Global options after the sub-command, ``config check`` = the services' validation, caller
hosts as addresses/ranges/names with the failed rule named, duplicate peers, loopback
default and the loud warning, symlinked config edited in place, one instance per spool,
spool permissions.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mammocad.cli import build_parser
from mammocad.config.editing import add_caller
from mammocad.config.settings import EXIT_INVALID_CONFIG, Caller, ConfigError, Settings, load_settings
from mammocad.spool.layout import InstanceLock, Spool, SpoolInUse, atomic_write_bytes
from tests.config.conftest import MAMMOCAD, SHIPPED_CONFIG, Runner


@pytest.mark.parametrize("argv", [["serve", "--config", "X"], ["config", "check", "--config", "X"],
                                  ["--config", "X", "serve"], ["outbox", "list", "--config", "X"],
                                  ["aet", "add", "A", "--config", "X"]])
def test_config_option_before_or_after_the_command(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).config == "X"


def test_config_option_after_the_command_is_used(mammocad: Runner, config_file: Path, clean_env: None) -> None:
    out = subprocess.run([str(MAMMOCAD), "config", "check", "--config", str(config_file)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"configuration OK: {config_file}" in out.stdout


def test_config_check_refuses_what_the_services_refuse(mammocad: Runner, tmp_path: Path) -> None:
    out = mammocad("config", "check", env={"MAMMOCAD_LOG_LEVEL": "verbose"})
    assert out.returncode == EXIT_INVALID_CONFIG and "log_level" in out.stderr and "MAMMOCAD_LOG_LEVEL" in out.stderr
    out = mammocad("config", "check", env={"MAMMOCAD_WORKER__WEIGHTS": str(tmp_path / "none.pt")})
    assert out.returncode == EXIT_INVALID_CONFIG and "weights file" in out.stderr


def test_caller_hosts_are_addresses_ranges_or_names() -> None:
    s = Settings(callers=[Caller(ae_title="LOCAL", host="localhost"), Caller(ae_title="NET", host="10.1.0.0/16")])
    assert s.caller_allowed("LOCAL", "127.0.0.1")  # compared as addresses, not text
    assert s.caller_allowed("NET", "10.1.200.3") and not s.caller_allowed("NET", "10.2.0.1")
    assert s.caller_refusal("NET", "10.2.0.1") == ("calling AE title known but not from host 10.2.0.1 "
                                                   "(allowed hosts: 10.1.0.0/16)")
    assert s.caller_refusal("NOBODY", "10.1.0.1") == "calling AE title not recognised"
    with pytest.raises(ValueError, match="does not resolve"):
        Caller(ae_title="X", host="no-such-host.invalid")
    with pytest.raises(ValueError, match="not a valid CIDR"):
        Caller(ae_title="X", host="10.0.0.0/99")


def test_aet_add_refuses_an_unresolvable_host(mammocad: Runner) -> None:
    out = mammocad("aet", "add", "MG1", "--host", "no-such-host.invalid")
    assert out.returncode == 1 and "does not resolve" in out.stderr


def test_duplicate_peers_warned(mammocad: Runner) -> None:
    assert mammocad("dest", "add", "orthanc", "--ae", "PACS", "--host", "localhost", "--port", "4242").returncode == 0
    out = mammocad("config", "check")
    assert out.returncode == 0
    assert "warning: destinations pacs and orthanc are the same peer" in out.stdout


def test_shipped_config_listens_on_loopback_and_open_config_warns(mammocad: Runner, config_file: Path) -> None:
    settings = load_settings(SHIPPED_CONFIG)
    assert settings.node.host == "127.0.0.1" and Settings().node.host == "127.0.0.1"
    assert "every address" not in mammocad("config", "check").stdout
    out = mammocad("config", "check", env={"MAMMOCAD_NODE__HOST": "0.0.0.0"})
    assert "listens on every address and accepts the default test-tool AE title(s) ECHOSCU, STORESCU" in out.stdout


def test_symlinked_config_edited_in_place(tmp_path: Path) -> None:
    real = tmp_path / "versions" / "mammocad.toml"
    real.parent.mkdir()
    real.write_text(SHIPPED_CONFIG.read_text())
    link = tmp_path / "mammocad.toml"
    link.symlink_to(real)
    add_caller(link, "MG2", "127.0.0.1")
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert 'ae_title = "MG2"' in real.read_text()


def test_one_instance_per_spool(tmp_path: Path) -> None:
    lock = InstanceLock(tmp_path / "spool").acquire()
    try:
        code = ("import sys; from mammocad.spool.layout import InstanceLock, SpoolInUse\n"
                f"try:\n    InstanceLock({str(tmp_path / 'spool')!r}).acquire()\n"
                "except SpoolInUse as e:\n    print(e); sys.exit(3)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 3 and f"pid {os.getpid()}" in out.stdout
    finally:
        lock.release()
    InstanceLock(tmp_path / "spool").acquire().release()  # free again once the holder lets go
    with pytest.raises(SpoolInUse):
        held = InstanceLock(tmp_path / "spool").acquire()
        try:
            InstanceLock(tmp_path / "spool").acquire()
        finally:
            held.release()


def test_second_serve_refused(mammocad: Runner, config_file: Path, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    lock = InstanceLock(spool).acquire()
    try:
        out = mammocad("serve", "--config", str(config_file), env={"MAMMOCAD_NODE__SPOOL_DIR": str(spool)})
    finally:
        lock.release()
    assert out.returncode == 2 and "in use by another mammocad node" in out.stderr
    assert not (spool / "redis").exists()  # no second redis-server was started


def test_spool_files_0640_folders_0750(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        spool = Spool(tmp_path / "spool").create()
        path = spool.image_path("1.2.3", "1.2.3.4")
        atomic_write_bytes(path, b"x", spool.tmp)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    for folder in (path.parent, spool.study_dir("1.2.3"), spool.tmp):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750, folder


def test_bad_log_level_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text('log_level = "verbose"\n')
    with pytest.raises(ConfigError, match="log_level must be one of DEBUG, INFO"):
        load_settings(cfg)


def test_config_check_loads_the_audit_collector_files(mammocad: Runner, tmp_path: Path) -> None:
    """The services load them when they start their audit trail; `config check` must too."""
    env = {"MAMMOCAD_AUDIT__SYSLOG": "tls://127.0.0.1:6514",
           "MAMMOCAD_AUDIT__CA_CERTIFICATES": str(tmp_path / "missing-ca.pem")}
    out = mammocad("config", "check", env=env)
    assert out.returncode == EXIT_INVALID_CONFIG, out.stdout
    assert "audit.ca_certificates" in out.stderr and "missing-ca.pem" in out.stderr
    assert "Traceback" not in out.stderr


def test_misspelt_environment_variables_are_warned(mammocad: Runner, tmp_path: Path) -> None:
    """MAMMOCAD_NODE__PROT was an error but MAMMOCAD_NODE_SPOOL_DIR (one underscore) was skipped
    without a word: a unit's environment file line then left the spool at var/spool."""
    env = {"MAMMOCAD_NODE_SPOOL_DIR": str(tmp_path / "spool"), "MAMMOCAD_WORKERS__DEVICE": "cuda",
           "MAMMOCAD_NODE__TLS__PORT": "2762", "MAMMOCAD_LOG_JSON": "true"}
    out = mammocad("config", "check", env=env)
    assert out.returncode == 0, out.stderr
    warned = [ln for ln in out.stdout.splitlines() if ln.startswith("warning: environment variable")]
    assert warned == [
        "warning: environment variable MAMMOCAD_NODE_SPOOL_DIR sets no configuration key and is ignored: "
        "did you mean MAMMOCAD_NODE__SPOOL_DIR? (a double underscore between section and key)",
        "warning: environment variable MAMMOCAD_WORKERS__DEVICE sets no configuration key and is ignored: "
        "variables are MAMMOCAD_<SECTION>__<KEY> (double underscore), e.g. MAMMOCAD_NODE__PORT"]
    assert "spool /var/lib/mammocad/spool" in out.stdout  # what the warning is about: the value did not apply


@pytest.mark.parametrize("queue", ["gpu", "results"])
def test_worker_refuses_weights_that_are_not_a_checkpoint(tmp_path: Path, clean_env: None, queue: str) -> None:
    """`config check` sees only that the file exists. The analysis worker then started and
    failed every image (each study reported as "CAD failed"); the results worker died with a
    traceback. Both now stop at start, before the broker, with the file and the fix named."""
    weights = tmp_path / "model.pt"
    weights.write_text("not a checkpoint\n")
    env = {**os.environ, "MAMMOCAD_WORKER__WEIGHTS": str(weights), "MAMMOCAD_NODE__SPOOL_DIR": str(tmp_path / "spool"),
           "MAMMOCAD_BROKER__URL": "redis://127.0.0.1:9/0"}  # never reached: the check comes first
    out = subprocess.run([str(MAMMOCAD), "--config", str(SHIPPED_CONFIG), "worker", "--queues", queue],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2, out.stderr
    assert f"{weights} is not a mammocad checkpoint" in out.stderr and "worker.weights" in out.stderr
    assert "Traceback" not in out.stderr
