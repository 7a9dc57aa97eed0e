"""End-to-end fixtures: `mammocad serve` (private redis + node + workers) and real Orthanc PACSes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.harness import Pipeline
from tests.orthanc import Orthanc
from tests.worker.conftest import (  # noqa: F401  (session fixtures: tiny checkpoints)
    no_findings_weights,
    random_weights,
)


@pytest.fixture
def pipelines() -> Any:
    """Factory of started pipelines, all stopped at the end of the test."""
    started: list[Pipeline] = []

    def start(*args: Any, **kwargs: Any) -> Pipeline:
        pipe = Pipeline(*args, **kwargs).start()
        started.append(pipe)
        return pipe

    yield start
    for pipe in started:
        pipe.stop()


@pytest.fixture
def orthancs() -> Any:
    started: list[Orthanc] = []

    def start(*args: Any, **kwargs: Any) -> Orthanc:
        o = Orthanc(*args, **kwargs).start()
        started.append(o)
        return o

    yield start
    for o in started:
        o.stop()
