from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import redis_server

# Every service a test starts (tests/processes.py) stops with its test, even a killed one.
pytest_plugins = ["tests.process_plugin"]


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist the workers share the cores: unless OMP_NUM_THREADS is set, each
    worker's torch (imported after this) and the commands it starts get cores // workers
    threads. With torch's default (every core, in each worker) OpenMP threads spin waiting
    for cores the other worker holds: test_train and test_mining in two workers beside
    another job took 471 s instead of 69 s."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "OMP_NUM_THREADS" not in os.environ:
        share = len(os.sched_getaffinity(0)) // int(workerinput["workercount"])
        os.environ["OMP_NUM_THREADS"] = str(max(1, share))


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``--dist loadfile --no-loadscope-reorder``, the Makefile) files are
    handed out in this order: those with the most ``slow`` or ``e2e`` tests first, then the
    others with the most tests first (xdist's own order), so that no long file starts last
    and leaves one worker running it alone. Tests keep their order within a file."""
    if not hasattr(config, "workerinput"):
        return
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)

    def cost(tests: list[pytest.Item]) -> tuple[int, int]:
        long = sum(1 for t in tests if t.get_closest_marker("slow") or t.get_closest_marker("e2e"))
        return -long, -len(tests)

    items[:] = [item for tests in sorted(files.values(), key=cost) for item in tests]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with redis_server(tmp_path / "redis") as url:
        yield url
