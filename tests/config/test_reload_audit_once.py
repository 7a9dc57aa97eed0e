"""One edit of the configuration file, one audit record, however many processes reload it.

Each process that re-reads the file (the node, every results and analysis worker process)
wrote its own Security Alert for the same edit. Here each "service" is a real process of its
own with its own ConfigWatcher and audit trail, as Celery's prefork children are, sharing the
spool and the audit file; the test tells each when to look at the file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from mammocad.audit import claims
from tests import processes

_DEST = '[[destinations]]\nname = "{name}"\nae_title = "PACS"\nhost = "10.0.0.5"\nport = 4242\n'


#: A service's reloading, as a node or worker does at its next association or task: one line
#: "poll" in, "polled" out once its trail has written what the reload queued; EOF ends it.
_SERVICE = """
import sys
from mammocad.config.settings import load_settings
from mammocad.config.watch import ConfigWatcher

watcher = ConfigWatcher(load_settings(sys.argv[1]), sys.argv[1])
print("ready", flush=True)
for line in sys.stdin:
    watcher.poll()
    if watcher.trail is not None:
        watcher.trail.close()  # writes what is queued; the next record starts the sender again
    print("polled", flush=True)
"""


class _Services:
    """``count`` processes of their own (fresh interpreters, as separate services are), each
    with its ConfigWatcher and audit trail, told when to look at the file."""

    def __init__(self, config: Path, count: int) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        for _ in range(count):
            self.procs.append(processes.spawn([sys.executable, "-c", _SERVICE, str(config)], name="watcher",
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        for proc in self.procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def poll(self, *which: int) -> None:
        for i in which or range(len(self.procs)):
            proc = self.procs[i]
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("poll\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "polled"

    def stop(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
            assert proc.wait(30) == 0
            processes.stop(proc)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    spool = tmp_path / "spool"
    spool.mkdir()
    audit = tmp_path / "audit.log"
    config = tmp_path / "mammocad.toml"
    yield config, spool, audit


def _head(spool: Path, audit: Path) -> str:
    return f'[node]\nspool_dir = "{spool}"\n\n[audit]\nfile = "{audit}"\n\n'


def _write(config: Path, text: str, version: int) -> None:
    """Replace the file as an editor does, at a distinct modification time per version (two
    writes within the filesystem clock's tick would otherwise look like one version)."""
    tmp = config.with_suffix(".tmp")
    tmp.write_text(text)
    os.utime(tmp, ns=(version * 10**9, version * 10**9))
    os.replace(tmp, config)


def _records(audit: Path) -> list[str]:
    if not audit.exists():
        return []
    names = []
    for line in audit.read_bytes().splitlines():
        root = ET.fromstring(line)
        names.append(root.findtext("ParticipantObjectIdentification/ParticipantObjectName") or "")
    return names


def test_one_edit_seen_by_three_processes_is_one_record_per_section(site: tuple[Path, Path, Path]) -> None:
    config, spool, audit = site
    _write(config, _head(spool, audit) + '[[callers]]\nae_title = "PACS"\n', 1)
    services = _Services(config, 3)
    try:
        _write(config, _head(spool, audit) + '[[callers]]\nae_title = "PACS"\n\n[[callers]]\nae_title = "MG1"\n\n'
               + _DEST.format(name="pacs"), 2)
        services.poll()
    finally:
        services.stop()
    assert sorted(_records(audit)) == ["[[callers]]", "[[destinations]]"]
    assert len(os.listdir(spool / claims.FOLDER)) == 2


def test_an_edit_undone_and_redone_is_recorded_each_time(site: tuple[Path, Path, Path]) -> None:
    """Same section, same values as an earlier change: a new version of the file, a new record."""
    config, spool, audit = site
    plain, with_dest = _head(spool, audit), _head(spool, audit) + _DEST.format(name="pacs")
    _write(config, plain, 1)
    services = _Services(config, 2)
    try:
        for version, text in enumerate((with_dest, plain, with_dest), start=2):
            _write(config, text, version)
            services.poll()
    finally:
        services.stop()
    assert _records(audit) == ["[[destinations]]"] * 3


def test_a_process_that_skipped_a_version_does_not_report_the_change_again(site: tuple[Path, Path, Path]) -> None:
    """The second process looks only at the last version: its change (from v1) is the one the
    first process already reported (from v2), not a new one."""
    config, spool, audit = site
    _write(config, _head(spool, audit), 1)
    services = _Services(config, 2)
    try:
        _write(config, _head(spool, audit) + _DEST.format(name="a"), 2)
        services.poll(0)
        _write(config, _head(spool, audit) + _DEST.format(name="b"), 3)
        services.poll(0)
        services.poll(1)
    finally:
        services.stop()
    assert _records(audit) == ["[[destinations]]"] * 2


def test_old_claims_are_removed_and_a_spool_that_is_not_there_still_reports(tmp_path: Path,
                                                                             caplog: pytest.LogCaptureFixture) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    assert claims.claim(spool, "old", "test") and not claims.claim(spool, "old", "test")
    os.utime(spool / claims.FOLDER / "old", (0, 0))
    assert claims.claim(spool, "new", "test")
    assert os.listdir(spool / claims.FOLDER) == ["new"]
    # No spool (a process started with the wrong spool_dir): report rather than lose the record.
    assert claims.claim(tmp_path / "missing", "key", "test") and claims.claim(tmp_path / "missing", "key", "test")
    assert not (tmp_path / "missing").exists()
    assert "audit_claim_failed" in caplog.text
