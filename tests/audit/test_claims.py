"""An audit claim whose owner died before its record was sent is re-taken, by one process.

``spool/audit-claims/<key>`` (O_EXCL) makes one process report a configuration change that
every process sees. A process killed between its claim and its sender's write left a claim
that made every other process skip the change: the record was lost for good.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mammocad.audit import claims
from tests import processes

#: A process that claims ``key`` and is killed before anything could report it.
_KILLED_AFTER_CLAIM = """
import os, signal, sys
from mammocad.audit import claims
assert claims.claim(sys.argv[1], "key", "config_reloaded test")
os.kill(os.getpid(), signal.SIGKILL)
"""

#: A process that claims ``key`` and stays alive (reporting, as far as anyone can tell).
_ALIVE_AFTER_CLAIM = """
import sys
from mammocad.audit import claims
assert claims.claim(sys.argv[1], "alive", "config_reloaded test")
print("claimed", flush=True)
sys.stdin.read()
"""


def test_a_claim_left_by_a_killed_process_is_re_taken_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    killed = subprocess.run([sys.executable, "-c", _KILLED_AFTER_CLAIM, str(spool)], timeout=60)
    assert killed.returncode == -signal.SIGKILL and (spool / claims.FOLDER / "key").exists()
    with caplog.at_level(logging.WARNING, logger="mammocad"):
        assert claims.claim(spool, "key", "config_reloaded test")  # this process reports it now
    assert [r.getMessage() for r in caplog.records] == ["audit_claim_retaken"]
    assert not claims.claim(spool, "key", "config_reloaded test")  # re-taken by one process only


def test_a_claim_of_a_live_process_is_not_re_taken(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    proc = processes.spawn([sys.executable, "-c", _ALIVE_AFTER_CLAIM, str(spool)], name="claimer",
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "claimed"
        assert not claims.claim(spool, "alive", "config_reloaded test")
    finally:
        processes.stop(proc)


def test_an_empty_claim_is_re_taken_once_its_owner_had_time_to_write_it(tmp_path: Path) -> None:
    """Killed between creating its claim and writing its owner in it."""
    spool = tmp_path / "spool"
    (spool / claims.FOLDER).mkdir(parents=True)
    empty = spool / claims.FOLDER / "key"
    empty.touch()
    assert not claims.claim(spool, "key", "test")  # just made: its owner is writing it
    old = empty.stat().st_mtime - claims.UNWRITTEN_S - 1
    os.utime(empty, (old, old))
    assert claims.claim(spool, "key", "test") and not claims.claim(spool, "key", "test")


#: A process that claims ``key``, lives until its claim is settled (SETTLE_S cut to 0 here:
#: the settling is joined, not waited for), and exits normally, its record long sent.
_EXITS_AFTER_SETTLING = """
import sys, threading
from mammocad.audit import claims
claims.SETTLE_S = 0.0
assert claims.claim(sys.argv[1], "key", "config_reloaded test")
for thread in threading.enumerate():
    if thread.name == "mammocad-audit-claim":
        thread.join()
"""


def test_a_claim_whose_owner_settled_it_and_exited_is_not_re_taken(tmp_path: Path) -> None:
    """A worker that reported the change and was restarted later: the next process to see the
    change took its claim for abandoned, and the trail showed the change twice."""
    spool = tmp_path / "spool"
    spool.mkdir()
    done = subprocess.run([sys.executable, "-c", _EXITS_AFTER_SETTLING, str(spool)], timeout=60)
    assert done.returncode == 0
    assert json.loads((spool / claims.FOLDER / "key").read_bytes())["settled"]
    assert not claims.claim(spool, "key", "config_reloaded test")


def _foreign_claim(spool: Path, key: str, **fields: object) -> float:
    """A claim written by a process of another host sharing the spool; returns its mtime."""
    (spool / claims.FOLDER).mkdir(parents=True, exist_ok=True)
    path = spool / claims.FOLDER / key
    path.write_text(json.dumps({"claim": "config_reloaded test", "pid": 1, "start": 1, "host": "other-host.example",
                                "time": 0.0, **fields}))
    return path.stat().st_mtime


def test_an_unsettled_claim_of_another_host_is_re_taken_once_it_is_old(tmp_path: Path) -> None:
    """Its process cannot be checked from here: a host that died with the record unsent used to
    leave the change unreported for good. Young, it may still be sending; settled, it was sent."""
    spool = tmp_path / "spool"
    made = _foreign_claim(spool, "key")
    assert not claims.claim(spool, "key", "test", now=made + claims.FOREIGN_S - 1)
    assert claims.claim(spool, "key", "test", now=made + claims.FOREIGN_S + 1)
    assert not claims.claim(spool, "key", "test", now=made + claims.FOREIGN_S + 2)  # re-taken once
    settled = _foreign_claim(spool, "settled", settled=1.0)
    assert not claims.claim(spool, "settled", "test", now=settled + 10 * claims.FOREIGN_S)
