"""The services tests start die with their test (tests/processes.py), proved on a pytest
session run here as a child process with real redis-servers: one test is stopped by
pytest-timeout holding a service it never stops, and whole sessions are killed with SIGKILL
and SIGTERM while they hold a redis-server of their own and one started by a shell (a
grandchild: no death signal reaches it from the kernel, only the reaper's tag search)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import processes
from tests.services import wait_until

ROOT = Path(__file__).resolve().parents[1]

_INNER = '''
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests import processes
from tests.services import free_port, redis_server, wait_for_port, wait_until

OUT = Path(os.environ["PROCESS_CLEANUP_OUT"])
REDIS = shutil.which("redis-server")


def _record(name: str, pid: int) -> None:
    (OUT / name).write_text(str(pid))


@pytest.mark.timeout(5)
def test_times_out_holding_a_service_it_never_stops(tmp_path: Path) -> None:
    proc = processes.spawn([REDIS, "--port", str(free_port()), "--save", "", "--dir", str(tmp_path)],
                           stdout=subprocess.DEVNULL)
    _record("leaked", proc.pid)
    time.sleep(600)


def test_the_service_left_by_the_timed_out_test_is_gone() -> None:
    pid = int((OUT / "leaked").read_text())
    assert not Path(f"/proc/{pid}").exists(), "the service outlived its test"


@pytest.fixture(scope="module")
def shared():
    return processes.spawn(["sleep", "600"])  # never stopped: it lasts as long as its module


def test_module_first(shared) -> None:
    _record("own", processes.spawn(["sleep", "600"]).pid)  # this test's: never stopped either
    _record("restarted", processes.spawn(["sleep", "600"], lifetime="module").pid)


def test_module_second(shared) -> None:
    assert shared.poll() is None, "the module fixture's service died with the first test"
    assert not Path(f"/proc/{(OUT / 'own').read_text()}").exists(), "the first test's service outlived it"
    restarted = [s for s in processes.services() if s.proc.pid == int((OUT / "restarted").read_text())]
    assert restarted and restarted[0].proc.poll() is None


def test_killed_holding_services(tmp_path: Path) -> None:
    with redis_server(tmp_path / "direct"):
        (direct,) = [s.proc.pid for s in processes.services() if s.name == "redis-server"]
        port = free_port()
        processes.spawn(["sh", "-c", f'{REDIS} --port {port} --save "" --dir {tmp_path} & echo $! > '
                         f'{OUT / "grandchild"}; wait'], stdout=subprocess.DEVNULL)
        wait_for_port(port)
        wait_until(lambda: (OUT / "grandchild").read_text().strip() if (OUT / "grandchild").exists() else "",
                   60, "the grandchild pid")
        _record("direct", direct)
        (OUT / "ready").write_text("")
        time.sleep(600)
'''


def _inner_session(tmp_path: Path, select: str) -> tuple[subprocess.Popen[str], Path]:
    """A pytest session of the tests above (``-k select``) in a child process."""
    suite, out = tmp_path / "inner", tmp_path / "out"
    suite.mkdir()
    out.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / "conftest.py").write_text('pytest_plugins = ["tests.process_plugin"]\n')
    (suite / "test_inner.py").write_text(textwrap.dedent(_INNER))
    env = {**os.environ, "PROCESS_CLEANUP_OUT": str(out),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = processes.spawn([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", select,
                            str(suite / "test_inner.py")], name="pytest", env=env, cwd=suite,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, out


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat), None when it is gone or a zombie:
    with a start time a reused PID is not mistaken for the process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def _alive(pid: int, started: str | None) -> bool:
    return started is not None and _start_time(pid) == started


def test_a_timed_out_test_leaves_no_service_behind(tmp_path: Path) -> None:
    proc, _ = _inner_session(tmp_path, "timed_out or times_out")
    output, _ = proc.communicate(timeout=240)
    processes.stop(proc)
    assert proc.returncode == 1, output  # the timeout fails its test ...
    assert "Timeout" in output and "1 failed, 1 passed" in output, output  # ... the next finds it gone
    assert "LeakedServiceWarning" in output and "redis-server (pid" in output, output  # and it is named


def test_services_live_as_long_as_the_fixture_or_test_that_started_them(tmp_path: Path) -> None:
    proc, _ = _inner_session(tmp_path, "module_first or module_second")
    output, _ = proc.communicate(timeout=240)
    processes.stop(proc)
    assert proc.returncode == 0 and "2 passed" in output, output
    # named when stopped for them: the first test's own after that test, the module's at its end
    assert "2 passed, 3 deselected, 2 warnings" in output, output
    first, second = output.split("::test_module_second")
    assert first.count("sleep (pid") == 1 and second.count("sleep (pid") == 2, output


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_session_leaves_no_service_behind(tmp_path: Path, sig: signal.Signals) -> None:
    proc, out = _inner_session(tmp_path, "killed_holding_services")
    try:
        wait_until(lambda: (out / "ready").exists() or proc.poll() is not None, 180, "the inner session's services")
        assert proc.poll() is None, proc.communicate()[0]
        pids = [int((out / name).read_text()) for name in ("direct", "grandchild")]
        started = {pid: _start_time(pid) for pid in pids}
        assert all(started.values()), started
        os.kill(proc.pid, sig)
        proc.communicate(timeout=60)
        wait_until(lambda: not any(_alive(pid, started[pid]) for pid in pids), 60,
                   f"the redis-servers {pids} to die with the {sig.name}-ed session")
    finally:
        processes.stop(proc)


def test_tests_start_their_processes_through_the_harness() -> None:
    """A bare Popen in a test would bring the leaks back (subprocess.run waits, so it may stay)."""
    needle = "Popen" + "("
    offenders = [f"{path.relative_to(ROOT)}:{n}" for path in sorted((ROOT / "tests").rglob("*.py"))
                 if path.name != "processes.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    assert offenders == [], f"start these with tests.processes.spawn: {offenders}"
