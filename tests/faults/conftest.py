"""Fixtures of the fault suite: real redis, Celery, DCMTK peers and node processes.

Every test here is marked ``faults`` (``make test-faults`` runs only them; ``make test``
runs them with everything else).
"""

from __future__ import annotations

import pytest

from tests.node.conftest import start_node  # noqa: F401  (fixtures)
from tests.worker.conftest import celery_worker, random_weights, storescp  # noqa: F401  (fixtures)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)
