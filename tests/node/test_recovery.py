"""Nothing is lost: restart re-queues from the spool; a broker outage delays queueing only."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests import factories
from tests.node.conftest import NodeEnv, queued_tasks, wait_until
from tests.services import free_port, redis_server


def _send(env: NodeEnv, paths: list[Path]) -> None:
    result = env.storescu(*paths, opts=("-v",))
    assert result.stderr.count("Store Response (Success)") == len(paths), result.stderr


def test_restart_requeues_unfinished_work(start_node: Callable[..., NodeEnv], tmp_path: Path) -> None:
    env = start_node(timeout_s=2.0)
    done_study = factories.make_four_view_study()      # analysed and reported: nothing to redo
    half_study = factories.make_four_view_study()      # complete, 2 of 4 analysed, no report
    open_study = [factories.make_mammogram(seed=5)]    # one image, not yet complete
    files = [factories.write(ds, tmp_path / f"{i}.dcm")
             for i, ds in enumerate(done_study + half_study + open_study)]
    _send(env, files)
    spool = env.spool
    done_uid, half_uid, open_uid = (s[0].StudyInstanceUID for s in (done_study, half_study, open_study))
    wait_until(lambda: spool.complete_path(done_uid).exists() and spool.complete_path(half_uid).exists(), 5)
    env.node.stop()
    redis.Redis.from_url(env.redis_url).flushall()  # the broker lost everything

    def fake_result(study: str, sop: str) -> None:
        spool.result_path(study, sop).parent.mkdir(parents=True, exist_ok=True)
        spool.result_path(study, sop).write_text("{}")

    for ds in done_study:
        fake_result(done_uid, ds.SOPInstanceUID)
    (spool.reports_dir(done_uid)).mkdir()
    (spool.reports_dir(done_uid) / "k.json").write_text(
        json.dumps({"sop_uids": sorted(ds.SOPInstanceUID for ds in done_study)}))
    for ds in half_study[:2]:
        fake_result(half_uid, ds.SOPInstanceUID)

    env2 = start_node(timeout_s=2.0)
    gpu = env2.tasks("gpu")
    expected = {ds.SOPInstanceUID for ds in half_study[2:] + open_study}
    assert {args[2] for _, args in gpu} == expected and len(gpu) == 3
    finals = env2.tasks("results")
    assert finals[0] == ("mammocad.finalize_study",
                         [str(spool.root), half_uid, sorted(ds.SOPInstanceUID for ds in half_study)])
    assert done_uid not in {args[1] for _, args in finals}
    # The open study resumes its timer and completes by timeout.
    wait_until(spool.complete_path(open_uid).exists, 6, "open study completion after restart")
    env2.settle()
    assert env2.tasks("results")[-1][1][1:] == [open_uid, [open_study[0].SOPInstanceUID]]


def test_broker_down_then_back(start_node: Callable[..., NodeEnv], tmp_path: Path,
                               caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = start_node(broker_url=url)
    ds = factories.make_mammogram()
    with caplog.at_level(logging.INFO, logger="mammocad"):
        _send(env, [factories.write(ds, tmp_path / "a.dcm")])  # Success although no broker runs
        assert env.spool.image_path(ds.StudyInstanceUID, ds.SOPInstanceUID).exists()
        wait_until(lambda: any(r.getMessage() == "queue_failed" for r in caplog.records), 10, "queue_failed log")
    with redis_server(tmp_path / "late-redis", port=port):
        tasks = wait_until(lambda: queued_tasks(url, "gpu"), 10, "task queued after the broker came back")
        assert tasks == [("mammocad.analyze_image",
                          [str(env.spool.root), ds.StudyInstanceUID, ds.SOPInstanceUID])]
