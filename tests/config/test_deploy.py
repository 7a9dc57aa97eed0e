"""The deployment files are checked by the tools that will read them: argparse, systemd, redis."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import redis

from mammocad.cli import build_parser
from mammocad.config import load_settings
from tests import processes
from tests.config.conftest import MAMMOCAD, REPO, SHIPPED_CONFIG
from tests.services import free_port, wait_for_port

DEPLOY = REPO / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
ONE_BOX_DROPIN = DEPLOY / "systemd" / "one-box" / "mammocad-worker@.service.d" / "local-redis.conf"
INSTALLED = "/opt/mammocad/.venv/bin/mammocad"


def _exec_lines(unit: Path) -> list[list[str]]:
    lines = re.findall(r"^ExecStart(?:Pre)?=(.+)$", unit.read_text(), flags=re.M)
    return [line.split() for line in lines]


def _unit(unit: Path) -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values]}}`` as systemd reads it: a key may repeat (lists merge),
    comments start with # or ;."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _seconds(value: str) -> float:
    """A systemd time span as used in the units: ``300``, ``10s``, ``5min``."""
    for suffix, factor in (("min", 60.0), ("s", 1.0)):
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


def test_units_present() -> None:
    assert [u.name for u in UNITS] == [
        "mammocad-node.service", "mammocad-results-worker.service", "mammocad-worker@.service"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_commands_parse_with_the_real_cli(unit: Path) -> None:
    commands = _exec_lines(unit)
    assert commands, f"{unit.name} has no ExecStart"
    for argv in commands:
        assert argv[0] == INSTALLED
        args = build_parser().parse_args(argv[1:])  # SystemExit (test error) on an unknown flag
        assert callable(args.handler)
    text = unit.read_text()
    assert "EnvironmentFile=/etc/mammocad/mammocad.env" in text
    if "worker@" in unit.name:
        assert "Environment=CUDA_VISIBLE_DEVICES=%i" in text
        assert commands[-1][1:] == ["worker", "--queues", "gpu", "--concurrency", "1"]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd's own parser: unknown keys or bad values are reported on stderr."""
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze is missing (Debian package systemd)"
    names = []
    for unit in UNITS:
        name = unit.name.replace("@.", "@0.")
        (tmp_path / name).write_text(unit.read_text().replace(INSTALLED, str(MAMMOCAD)))
        names.append(f"./{name}")
    out = subprocess.run([exe, "verify", *names], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    problems = [ln for ln in out.stderr.splitlines() if "mammocad" in ln]
    assert out.returncode == 0 and not problems, out.stderr


def test_env_example_is_valid(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    pairs = [ln.split("=", 1) for ln in (DEPLOY / "mammocad.env.example").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert {k for k, _ in pairs} >= {"MAMMOCAD_CONFIG", "MAMMOCAD_BROKER__URL", "MAMMOCAD_NODE__SPOOL_DIR"}
    for key, value in pairs:
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MAMMOCAD_CONFIG", str(SHIPPED_CONFIG))
    settings = load_settings()
    assert settings.broker.url.startswith("redis://:") and settings.log_json is True
    assert str(settings.node.spool_dir) == "/var/lib/mammocad/spool"


def test_redis_snippet_accepted_by_redis_server(tmp_path: Path) -> None:
    exe = shutil.which("redis-server")
    assert exe, "redis-server is not installed: run `make test`"
    port = free_port()
    conf = (DEPLOY / "redis" / "mammocad.conf").read_text().replace("CHANGE_ME", "s3cret-test")
    conf = conf.replace("bind 127.0.0.1 -::1", "bind 127.0.0.1").replace("port 6379", f"port {port}")
    (tmp_path / "redis.conf").write_text(conf + f'\ndir "{tmp_path}"\n')
    proc = processes.spawn([exe, str(tmp_path / "redis.conf")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=10)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:  # no password
            raw.sendall(b"PING\r\n")
            assert raw.recv(100).startswith(b"-NOAUTH")
        client = redis.Redis(port=port, password="s3cret-test")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    finally:
        processes.stop(proc, sig=signal.SIGKILL)  # nothing to keep; a clean shutdown would fsync and snapshot


_WRITABLE_DIRECTORIES = {"StateDirectory": "/var/lib", "LogsDirectory": "/var/log", "CacheDirectory": "/var/cache",
                         "RuntimeDirectory": "/run"}


def _writable_paths(text: str) -> list[Path]:
    """What a unit with ProtectSystem=strict may write: ReadWritePaths= and its *Directory= folders."""
    paths = [Path(p.lstrip("-+")) for value in re.findall(r"^ReadWritePaths=(.+)$", text, flags=re.M)
             for p in value.split()]
    for key, base in _WRITABLE_DIRECTORIES.items():
        paths += [Path(base, p) for value in re.findall(rf"^{key}=(.+)$", text, flags=re.M) for p in value.split()]
    return paths


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_units_may_write_where_the_docs_put_the_files(unit: Path) -> None:
    """ProtectSystem=strict makes everything else read-only: the documented audit file in
    /var/log/mammocad was once outside every unit's writable paths, so no service could
    write it and the audit trail was lost to `audit_dropped sink=file` lines."""
    text = unit.read_text()
    assert "ProtectSystem=strict" in text
    audit = re.search(r'\[audit\] file = "([^"]+)"', (DEPLOY / "README.md").read_text())
    assert audit, "deploy/README.md no longer names the audit file"
    env = dict(ln.split("=", 1) for ln in (DEPLOY / "mammocad.env.example").read_text().splitlines()
               if ln.strip() and not ln.startswith("#"))
    writable = _writable_paths(text)
    for wanted in (Path(audit.group(1)), Path(env["MAMMOCAD_NODE__SPOOL_DIR"]) / "studies"):
        assert any(wanted.is_relative_to(w) for w in writable), f"{unit.name} cannot write {wanted}: {writable}"


#: What one run of the pre-start check may take at most, for the arithmetic below; it is
#: well under a second here, but imports torch to read the weights' header on a GPU box.
_CHECK_S = 30.0


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_a_refused_configuration_stops_the_unit(unit: Path) -> None:
    """Restart=on-failure also restarts a unit whose ExecStartPre= (`config check`) failed,
    and RestartSec= kept those starts under systemd's default limit (5 in 10 s): a bad config
    restarted forever. The unit's own limit must be reached by the failing checks, with a slow
    check too. (RestartPreventExitStatus= would not do: it looks at the main process only.)"""
    sections = _unit(unit)
    service, unit_section = sections["Service"], sections["Unit"]
    assert any("config check" in cmd for cmd in service["ExecStartPre"])
    assert service["Restart"] == ["on-failure"]
    assert "StartLimitIntervalSec" not in service and "StartLimitBurst" not in service  # [Unit] keys
    interval = _seconds(unit_section["StartLimitIntervalSec"][-1])
    burst = int(unit_section["StartLimitBurst"][-1])
    assert 2 <= burst <= 5, "a few tries, not many"
    # The burst-th start comes (burst - 1) × (a failed check + RestartSec) after the first.
    assert (burst - 1) * (_CHECK_S + _seconds(service["RestartSec"][-1])) < interval


def _readme_part(title: str) -> str:
    """One "## (x) ..." part of deploy/README.md."""
    parts = re.split(r"^## ", (DEPLOY / "README.md").read_text(), flags=re.M)
    (part,) = [p for p in parts if p.startswith(title)]
    return part


def test_only_the_one_box_install_pulls_in_a_local_redis() -> None:
    """The GPU worker unit had Wants=redis-server.service: on a GPU box of a many-box install
    (broker on the node box) it started a local redis-server whenever the package was there.
    Now the unit only orders itself after redis; the one-box install adds the Wants= with a
    drop-in that deploy/README.md installs in (a) and not in (b)."""
    pulls = ("Wants", "Requires", "Requisite", "BindsTo", "Upholds")
    units = {u.name: _unit(u)["Unit"] for u in UNITS}
    worker = units.pop("mammocad-worker@.service")
    assert not [k for k in pulls for v in worker.get(k, []) if "redis-server.service" in v.split()], worker
    assert "redis-server.service" in worker["After"][-1].split()
    for name, unit in units.items():  # the node box holds the broker in both setups
        assert "redis-server.service" in " ".join(unit["Wants"]).split(), name
    dropin = _unit(ONE_BOX_DROPIN)
    assert list(dropin) == ["Unit"] and dropin["Unit"]["Wants"] == ["redis-server.service"]
    assert dropin["Unit"]["After"] == ["redis-server.service"]
    install = "deploy/systemd/one-box/mammocad-worker@.service.d /etc/systemd/system/"
    assert install in _readme_part("(a) One GPU box")
    assert install not in _readme_part("(b) Many GPU boxes")


def test_systemd_analyze_verify_one_box_dropin(tmp_path: Path) -> None:
    """The worker with the one-box drop-in, as systemd loads it from /etc/systemd/system."""
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze is missing (Debian package systemd)"

    def verify(dropin_text: str) -> subprocess.CompletedProcess[str]:
        folder = tmp_path / "mammocad-worker@.service.d"
        folder.mkdir(exist_ok=True)
        (folder / ONE_BOX_DROPIN.name).write_text(dropin_text)
        template = (DEPLOY / "systemd" / "mammocad-worker@.service").read_text()
        (tmp_path / "mammocad-worker@.service").write_text(template.replace(INSTALLED, str(MAMMOCAD)))
        env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"}  # trailing colon: then the usual paths
        return subprocess.run([exe, "verify", "mammocad-worker@0.service"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)

    out = verify(ONE_BOX_DROPIN.read_text())
    assert out.returncode == 0 and "mammocad" not in out.stderr, out.stderr
    # the check reads the drop-in at all: a wrong key in it is reported
    broken = verify(ONE_BOX_DROPIN.read_text() + "NoSuchKey=1\n")
    assert "local-redis.conf" in broken.stderr and "NoSuchKey" in broken.stderr, broken.stderr


#: Deny-list groups for the GPU worker whose every call already fails in that unit (empty
#: CapabilityBoundingSet=, ProtectClock=, ProtectKernelModules=): explicit, and nothing CUDA uses.
_GPU_SAFE_DENIED = {"@clock", "@module", "@mount", "@raw-io", "@reboot", "@swap"}
#: `systemd-analyze security` exposure (0-100) each unit must stay at or under; before the
#: system call filters: 32, 32 and 37 (systemd 252).
_EXPOSURE = {"mammocad-node.service": 25, "mammocad-results-worker.service": 25, "mammocad-worker@.service": 30}


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_units_filter_system_calls_and_address_families(unit: Path, tmp_path: Path) -> None:
    """What a security review asks for: a system call filter and the socket families the
    service needs (DICOM and Redis over TCP, Unix sockets for journald). The GPU worker gets
    only a deny-list that cannot touch CUDA (see the comment in its unit)."""
    service = _unit(unit)["Service"]
    families = {f for value in service["RestrictAddressFamilies"] for f in value.split()}
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert service["SystemCallErrorNumber"] == ["EPERM"]
    assert service["SystemCallArchitectures"] == ["native"]
    (filter_,) = service["SystemCallFilter"]
    if "worker@" in unit.name:
        assert filter_.startswith("~") and set(filter_[1:].split()) <= _GPU_SAFE_DENIED, filter_
        assert "PrivateDevices" not in service and "MemoryDenyWriteExecute" not in service  # /dev/nvidia*, JIT
    else:
        assert filter_ == "@system-service"
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze is missing (Debian package systemd)"
    name = unit.name.replace("@.", "@0.")
    (tmp_path / name).write_text(unit.read_text().replace(INSTALLED, str(MAMMOCAD)))
    out = subprocess.run([exe, "security", "--offline=yes", f"--threshold={_EXPOSURE[unit.name]}", "--no-pager",
                          f"./{name}"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
