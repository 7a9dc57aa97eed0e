"""Fixtures the spool tests borrow: a real node in-process, a real Celery worker, tiny weights."""

from __future__ import annotations

from tests.node.conftest import start_node  # noqa: F401  (fixture)
from tests.worker.conftest import celery_worker, random_weights  # noqa: F401  (fixtures)
