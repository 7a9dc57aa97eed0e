"""Fixtures of the fault suite: real redis, Celery, DCMTK peers and node processes.

Every test module here is marked ``faults``: ``make test-faults`` runs them (a file to
each of two workers, under 2 minutes on two cores), ``make test`` leaves them out; ``.ci/run`` runs both.
"""

from __future__ import annotations

from tests.node.conftest import start_node  # noqa: F401  (fixtures)
from tests.worker.conftest import celery_worker, random_weights, storescp  # noqa: F401  (fixtures)
