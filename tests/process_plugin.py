"""pytest hooks that give each service started by ``tests/processes.py`` the lifetime of the
fixture or test that started it, and stop it when that ends even if the test did not.

A test stopped by pytest-timeout (signal method) still tears down, but a service whose
fixture failed half-way, or whose stop was itself cut short, used to keep running until
someone killed it by hand. After each test's teardown the services it started (outside
longer-lived fixtures) are stopped; module-wide ones when the module ends; all of them at
the end of the session. Each one stopped this way is a defect of its test: it is named in a
``LeakedServiceWarning`` (pytest's warnings summary) or, at the session end, in the
terminal summary. Loaded by ``tests/conftest.py``.
"""

from __future__ import annotations

import warnings
from collections.abc import Generator
from typing import Any

import pytest

from tests import processes


class LeakedServiceWarning(UserWarning):
    """A test or fixture left a service it started running; it was stopped for it."""


def pytest_configure(config: pytest.Config) -> None:
    processes.start_session()


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
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if leaked and reporter is not None:
        reporter.write_line(f"tests/processes.py stopped {len(leaked)} leftover process(es): {'; '.join(leaked)}",
                            yellow=True)
