from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import redis_server

# Every service a test starts (tests/processes.py) stops with its test, even a killed one.
pytest_plugins = ["tests.process_plugin"]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with redis_server(tmp_path / "redis") as url:
        yield url
