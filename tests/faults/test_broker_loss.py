"""Redis loses its data mid-study: the node queues the owed work again, without a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from mammocad.spool.tasks import TASK_ANALYZE_IMAGE, TASK_FINALIZE_STUDY
from tests.factories import make_four_view_study, write
from tests.services import wait_until

pytestmark = pytest.mark.faults


def test_node_requeues_what_an_empty_redis_forgot(tmp_path: Path, start_node) -> None:
    env = start_node(timeout_s=1.0, extra_node="reconcile_interval_s = 0.5")
    study = make_four_view_study(rows=64, columns=48)
    files = [write(ds, tmp_path / "in" / f"{i}.dcm") for i, ds in enumerate(study)]
    sops = sorted(str(ds.SOPInstanceUID) for ds in study)
    assert env.storescu(*files).returncode == 0
    wait_until(lambda: len(env.tasks("results")) == 1, 10, "finalize queued")
    redis.Redis.from_url(env.redis_url).flushall()  # redis restarted without its data

    def queued() -> tuple[list[str], list[list[str]]]:
        analyses = sorted(args[2] for name, args in env.tasks("gpu") if name == TASK_ANALYZE_IMAGE)
        finalizes = [args[2] for name, args in env.tasks("results") if name == TASK_FINALIZE_STUDY]
        return analyses, finalizes

    wait_until(lambda: queued() == (sops, [sops]), 20, "every owed task queued again")
    # Held in the queue now: later passes leave it alone (no duplicates).
    reconciler = env.node.dispatcher.reconciler
    assert reconciler is not None
    seen = reconciler.passes
    wait_until(lambda: reconciler.passes >= seen + 3, 20, "three more reconcile passes")
    assert queued() == (sops, [sops])
