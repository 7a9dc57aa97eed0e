"""pytest hooks that give each service started by ``tests/processes.py`` the lifetime of the
fixture or test that started it, and stop it when that ends even if the test did not.

A test stopped by pytest-timeout (signal method) still tears down, but a service whose
fixture failed half-way, or whose stop was itself cut short, used to keep running until
someone killed it by hand. After each test's teardown the services it started (outside
longer-lived fixtures) are stopped; module-wide ones when the module ends; all of them at
the end of the session. Each one stopped this way is a defect of its test: it is named in a
``LeakedServiceWarning`` (pytest's warnings summary) or, at the session end, in the
terminal summary. Loaded by ``tests/conftest.py``.

Under pytest-xdist (``make test`` runs two workers) each worker is a session of its own: its
own registry, reaper and tag. The controller starts no services, so it starts no session
(its tag would be in every worker's environment, and its end would find the workers). What
a worker's session end reports (leftovers here, PixelMed's verdicts in tests/results) goes
through :func:`report_at_session_end`, which the controller prints and counts.
"""

from __future__ import annotations

import warnings
from collections.abc import Generator
from typing import Any

import pytest

from tests import processes


class LeakedServiceWarning(UserWarning):
    """A test or fixture left a service it started running; it was stopped for it."""


def is_xdist_controller(config: pytest.Config) -> bool:
    """Whether this process hands tests to pytest-xdist workers instead of running them."""
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if not is_xdist_controller(config):
        processes.start_session()


_WORKER_KEY = "mammocad_session_end"
_PENDING = pytest.StashKey[list[dict[str, Any]]]()


def report_at_session_end(session: pytest.Session, lines: list[str], *, failed: bool = False,
                          yellow: bool = False) -> None:
    """Print ``lines`` in the terminal summary and, when ``failed``, fail the run: in a
    pytest-xdist worker (whose terminal nobody sees and whose exit status is taken before
    its session-end hooks run) they are handed to the controller, which does both."""
    config = session.config
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput.setdefault(_WORKER_KEY, []).append({"lines": lines, "failed": failed, "yellow": yellow})
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        for line in lines:
            reporter.write_line(line, yellow=yellow)
    if failed:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist: a worker ended; keep what its session end reported for the summary."""
    pending = node.config.stash.setdefault(_PENDING, [])
    pending.extend(getattr(node, "workeroutput", {}).get(_WORKER_KEY, []))


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Generator[None, Any, Any]:
    processes.enter_fixture(fixturedef.scope)
    try:
        return (yield)
    finally:
        processes.leave_fixture()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
    processes.enter_test(item.nodeid)
    try:
        return (yield)
    finally:
        processes.enter_test("")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
    try:
        return (yield)
    finally:
        leaked = processes.kill_leftovers("function", item.nodeid)
        if nextitem is None or getattr(nextitem, "module", None) is not getattr(item, "module", None):
            leaked += processes.kill_leftovers("module")
        if leaked:
            warnings.warn(LeakedServiceWarning(f"left running, now stopped: {'; '.join(leaked)}"), stacklevel=1)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaked = processes.kill_all()
    if leaked:
        report_at_session_end(session, [f"tests/processes.py stopped {len(leaked)} leftover process(es): "
                                        f"{'; '.join(leaked)}"], yellow=True)
    for entry in session.config.stash.get(_PENDING, []):  # the xdist controller: the workers' reports
        report_at_session_end(session, entry["lines"], failed=entry["failed"], yellow=entry["yellow"])
