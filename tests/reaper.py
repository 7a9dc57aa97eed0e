"""Find and kill the processes a test session started, after the test process is gone too.

Every service the harness starts (``tests/processes.py``) leads a session of its own
(``setsid``). Its children stay in that session even when they take a process group of
their own (``mammocad serve`` gives its redis-server and workers one each) and after their
parent died (parent-child links are gone then; the session ID is not), so the session ID
finds a whole service. Every process of a test session also carries
``MAMMOCADTEST_SESSION`` in its environment (not ``MAMMOCAD_*``, which the configuration
would read), which finds what a test started without the harness. Neither alone is enough:
redis-server and Celery rewrite their process title over the environment.

Run as a program (``python -I tests/reaper.py PARENT_PID SESSION_TAG``; standard library
only, so it runs without the project on the path) it reads ``+SID`` / ``-SID`` lines (the
sessions of services started and stopped) on standard input until the test process dies,
however it dies (pytest-timeout's thread method ends it with ``os._exit``, CI with SIGKILL),
then kills every process of those sessions and of the tag: SIGTERM, a grace period, SIGKILL.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from collections.abc import Callable, Collection, Iterable

SESSION_VAR = "MAMMOCADTEST_SESSION"


def _ours() -> Iterable[tuple[int, str]]:
    """(pid, /proc path) of this user's processes except this one."""
    me, uid = os.getpid(), os.getuid()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != me:
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    yield int(name), f"/proc/{name}"
            except OSError:
                continue


def session_members(sids: Collection[int]) -> list[int]:
    """Live (not zombie) processes of this user in any of the sessions ``sids``."""
    if not sids:
        return []
    found = []
    for pid, path in _ours():
        try:
            with open(f"{path}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in (b"Z", b"X") and int(fields[3]) in sids:
            found.append(pid)
    return found


def tagged(var: str, value: str) -> list[int]:
    """Live processes of this user whose environment has ``var=value`` (zombies show none)."""
    needle = f"\0{var}={value}\0".encode()
    found = []
    for pid, path in _ours():
        try:
            with open(f"{path}/environ", "rb") as f:
                environ = f.read()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in b"\0" + environ:
            found.append(pid)
    return found


def _signal(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill(find: Callable[[], Collection[int]], *, sig: int = signal.SIGTERM, grace: float = 10.0,
         exclude: Collection[int] = ()) -> list[int]:
    """Send ``sig`` to the processes ``find`` returns, again to any it finds later (a
    supervisor restarting a child), SIGKILL to those left after ``grace`` seconds.
    Returns every PID it signalled."""
    def found() -> set[int]:
        return set(find()) - set(exclude)

    seen = found()
    if not seen:
        return []
    _signal(seen, sig)
    if sig != signal.SIGKILL:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            time.sleep(0.1)
            left = found()
            if not left:
                return sorted(seen)
            _signal(left - seen, sig)
            seen |= left
    for _ in range(10):  # SIGKILL is not refused; this only bounds the loop
        left = found()
        if not left:
            break
        seen |= left
        _signal(left, signal.SIGKILL)
        time.sleep(0.1)
    return sorted(seen)


def _watch(parent: int, sids: set[int]) -> None:
    """Keep ``sids`` up to date from standard input until ``parent`` dies."""
    try:
        pidfd: int | None = os.pidfd_open(parent)
    except (AttributeError, OSError):  # no pidfd (or the parent is gone): poll the parent link
        pidfd = None
    reading, buffer = True, b""
    while True:
        watched = ([pidfd] if pidfd is not None else []) + ([0] if reading else [])
        ready, _, _ = select.select(watched, [], [], None if pidfd is not None else 0.5)
        if (pidfd is not None and pidfd in ready) or os.getppid() != parent:
            return
        if 0 in ready:
            data = os.read(0, 65536)
            reading = bool(data)
            *lines, buffer = (buffer + data).split(b"\n")
            for line in lines:
                if line[:1] == b"+":
                    sids.add(int(line[1:]))
                elif line[:1] == b"-":
                    sids.discard(int(line[1:]))


def main(argv: list[str]) -> int:
    parent, session = int(argv[1]), argv[2]
    grace = float(argv[3]) if len(argv) > 3 else 5.0
    for sig in (signal.SIGINT, signal.SIGHUP):  # a terminal's Ctrl-C or hang-up is for pytest, not for us
        signal.signal(sig, signal.SIG_IGN)
    sids: set[int] = set()
    _watch(parent, sids)
    kill(lambda: {*session_members(sids), *tagged(SESSION_VAR, session)}, grace=grace)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
