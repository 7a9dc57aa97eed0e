"""Every process a test starts dies with its test, even when the test is killed.

Tests start real services (redis-server, Orthanc, DCMTK peers, ``mammocad serve``, node and
worker processes). A test stopped by pytest-timeout, failing half-way through a fixture, or
a pytest killed outright used to leave them running: 112 such processes were found once on
a 2-core machine. Start them with :func:`spawn` and stop them with :func:`stop`:

- each leads a session (and process group) of its own, so a stop reaches everything it
  started, including children in process groups of their own and orphans; a terminal's
  Ctrl-C does not hit it before its test has stopped it in order;
- Linux ``PR_SET_PDEATHSIG`` sends it SIGTERM when the test process dies (when started from
  the main thread: the signal follows the thread that started the child);
- a session-wide registry is emptied when the test that started a service ends
  (``tests/process_plugin.py``: after its teardown; module-wide services when the module
  ends), at the end of the pytest session, at interpreter exit and on SIGTERM/SIGHUP;
- a reaper process (``tests/reaper.py``) outlives a pytest killed with SIGKILL or ended by
  ``os._exit`` (pytest-timeout's thread method) and kills what is left of the registered
  sessions, and every process carrying this pytest session's tag in its environment.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from tests.reaper import SESSION_VAR, kill, session_members, tagged

PR_SET_PDEATHSIG = 1
#: When a service is stopped: its signal, then SIGKILL after this many seconds.
GRACE_S = 10.0
LIFETIMES = ("function", "module", "session")


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[Any]
    #: "function": stopped after the test that started it; "module": when its module ends
    lifetime: str
    test: str


_services: dict[int, Service] = {}
_serial = itertools.count(1)
_scopes: list[str] = []  # scopes of the fixtures being set up now (tests/process_plugin.py)
_test = ""  # node id of the test running now ("" outside tests)
_owner = 0  # the process that owns the registry (a forked child does not)
_token = ""
_reaper: subprocess.Popen[bytes] | None = None
_prctl: Callable[..., int] | None = None


def start_session() -> str:
    """Tag this process's session, start its reaper, install the exit and signal handlers
    (once per process); returns the session tag. Called by the plugin and by :func:`spawn`."""
    global _owner, _token, _reaper
    if _owner == os.getpid():
        return _token
    _owner, _token = os.getpid(), uuid.uuid4().hex
    _services.clear()
    os.environ[SESSION_VAR] = _token  # every child of the session carries it, spawned or not
    _reaper = subprocess.Popen([sys.executable, "-I", str(Path(__file__).with_name("reaper.py")),
                                str(os.getpid()), _token], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    atexit.register(kill_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, _on_signal)
    return _token


def _tell_reaper(line: str) -> None:
    if _reaper is not None and _reaper.stdin is not None:
        try:
            _reaper.stdin.write(line.encode() + b"\n")
            _reaper.stdin.flush()
        except (OSError, ValueError):  # the reaper is gone: PDEATHSIG and the registry remain
            pass


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """SIGTERM/SIGHUP to the test process: stop the services, then die of the signal."""
    kill_all(grace=5.0)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _pdeathsig() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel for SIGTERM when this thread dies, or None where
    prctl is unavailable or the caller is not the main thread."""
    global _prctl
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    if _prctl is None:
        try:
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            return None
    prctl, parent = _prctl, os.getpid()

    def setup() -> None:  # runs in the child between fork and exec: no locks, no imports
        prctl(PR_SET_PDEATHSIG, 15)  # SIGTERM
        if os.getppid() != parent:  # the test died before the request took effect
            os.kill(os.getpid(), 9)

    return setup


def current_lifetime() -> str:
    """The lifetime a service started now gets: the scope of the fixture being set up, else
    "function" inside a test, else "session"."""
    if _scopes:
        scope = _scopes[-1]
        return {"class": "module", "package": "session"}.get(scope, scope)
    return "function" if _test else "session"


def spawn(cmd: Sequence[str | os.PathLike[str]], *, name: str | None = None, lifetime: str | None = None,
          env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen(cmd, **popen)`` as a registered service (see the module docstring).

    ``lifetime`` ("function", "module", "session") overrides :func:`current_lifetime`: an
    object made in a module fixture that restarts its processes inside tests passes the
    lifetime it was made with."""
    token = start_session()
    if lifetime is not None and lifetime not in LIFETIMES:
        raise ValueError(f"lifetime must be one of {LIFETIMES}, got {lifetime!r}")
    child_env = {**(os.environ if env is None else env), SESSION_VAR: token}
    proc = subprocess.Popen(list(cmd), env=child_env, start_new_session=True, preexec_fn=_pdeathsig(), **popen)
    _tell_reaper(f"+{proc.pid}")
    _services[proc.pid] = Service(name or Path(cmd[0]).name, proc, lifetime or current_lifetime(), _test)
    return proc


def _signal_group(proc: subprocess.Popen[Any], sig: int) -> None:
    """Signal the group of a child not reaped yet: its PID, hence its group ID, is still ours
    (only the child itself when it leads no group: not started by :func:`spawn`)."""
    if proc.returncode is None:
        try:
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass


def _exited(proc: subprocess.Popen[Any]) -> bool:
    """Whether the child exited, without reaping it: while it is a zombie its PID, and so
    its session ID, cannot name anyone else's processes."""
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped meanwhile by a poll() elsewhere
        return True


def stop(proc: subprocess.Popen[Any], *, sig: int = signal.SIGTERM, grace: float = GRACE_S) -> int:
    """Stop a service and everything it started: ``sig`` to its process group, then (after
    it exited, or after ``grace`` s) ``sig`` and SIGKILL to what is left of its session.
    Returns its exit status."""
    service = _services.pop(proc.pid, None)
    _signal_group(proc, sig)
    deadline = time.monotonic() + (grace if sig != signal.SIGKILL else 0.0)
    while not _exited(proc) and time.monotonic() < deadline:
        time.sleep(0.05)
    # The session ID is ours while the leader is unreaped, and while any member lives; once
    # reaped by someone else, a live process with its PID is a newcomer's session: leave it.
    if service is not None and (proc.returncode is None or not Path(f"/proc/{proc.pid}").exists()):
        kill(lambda: session_members({proc.pid}), sig=sig, grace=grace if _exited(proc) else 0.0)
    elif not _exited(proc):
        _signal_group(proc, signal.SIGKILL)
    proc.wait()
    if service is not None:
        _tell_reaper(f"-{proc.pid}")
    return proc.returncode


def _stop_all(services: list[Service], grace: float) -> list[str]:
    """Stop ``services`` together (one grace period for all); describe those still running."""
    running = [s for s in services if s.proc.poll() is None]
    for s in running:
        _signal_group(s.proc, signal.SIGTERM)
    for s in services:
        stop(s.proc, grace=grace)
    return [f"{s.name} (pid {s.proc.pid}, started by {s.test or 'the session'})" for s in running]


def kill_leftovers(lifetime: str, test: str | None = None, grace: float = GRACE_S) -> list[str]:
    """Stop the services of ``lifetime`` (and, for "function", of ``test``) that nobody
    stopped; returns a description of each that was still running."""
    if _owner != os.getpid():
        return []
    chosen = [s for s in _services.values() if s.lifetime == lifetime and (test is None or s.test == test)]
    return _stop_all(chosen, grace)


def kill_all(grace: float = GRACE_S) -> list[str]:
    """Stop every registered service, then anything else carrying this session's tag (what a
    test started without :func:`spawn`); returns a description of what was still running."""
    if _owner != os.getpid():
        return []
    leftovers = _stop_all(list(_services.values()), grace)
    exclude = [_reaper.pid] if _reaper is not None else []
    strays = kill(lambda: tagged(SESSION_VAR, _token), grace=grace, exclude=exclude)
    return leftovers + [f"pid {pid} (not started through tests/processes.py)" for pid in strays]


def services() -> list[Service]:
    """The services registered now (started and not stopped)."""
    return list(_services.values())


# -- the pytest plugin's view (tests/process_plugin.py) ---------------------------------------
def enter_fixture(scope: str) -> None:
    _scopes.append(scope)


def leave_fixture() -> None:
    if _scopes:
        _scopes.pop()


def enter_test(nodeid: str) -> None:
    global _test
    _test = nodeid
