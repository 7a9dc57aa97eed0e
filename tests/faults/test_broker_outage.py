"""Workers survive broker outages while they hold tasks (kombu's restore_unacked crash)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kombu import Connection
from kombu.transport import redis as kombu_redis

from mammocad.config import load_settings
from mammocad.spool.broker import make_celery
from mammocad.spool.kombu_redis import TRANSPORT
from mammocad.spool.studies import StudyFiles
from mammocad.spool.tasks import TASK_FINALIZE_STUDY, finalize_study_args
from tests.faults.cluster import Cluster, fresh_study
from tests.services import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]  # a whole installation starts on 2 busy cores


#: Outages at most before the workaround must have run (each costs a few seconds).
OUTAGES = 6


def _held_message_channel(url: str, transport: str | None) -> kombu_redis.Channel:
    """A channel holding one delivered, unacknowledged message, whose connection then closed."""
    conn = Connection(url, transport=transport)
    queue = conn.SimpleQueue("outage-probe")
    queue.put({"n": 1})
    queue.get(timeout=5)  # delivered, not acked: kombu will try to restore it on close
    channel = queue.channel
    # What kombu's Connection._close leaves behind before it closes the channels: no
    # client on the transport, connection pools already disconnected.
    conn.transport.client = None
    channel.connection.client = None
    channel._pool = None
    return channel


def _logged_more_than(cluster: Cluster, text: str, times: int) -> Callable[[], bool]:
    """A ``wait_until`` condition: the results worker's log holds ``text`` more than ``times`` times."""
    return lambda: cluster.log_text("results").count(text) > times


def test_plain_kombu_still_crashes_and_ours_does_not(redis_url: str) -> None:
    """If this starts failing at the first assertion, kombu fixed it: drop mammocad/spool/kombu_redis.py."""
    plain = _held_message_channel(redis_url, "redis")
    with pytest.raises(AttributeError, match="hostname"):
        plain.qos.restore_unacked()
    plain.qos._delivered.clear()  # no second try when it is collected
    ours = _held_message_channel(redis_url, TRANSPORT)
    assert isinstance(ours.qos, kombu_redis.QoS)
    ours.qos.restore_unacked()


def test_results_worker_holding_tasks_survives_repeated_redis_outages(tmp_path: Path, random_weights: Path) -> None:
    cluster = Cluster(tmp_path / "c", random_weights)
    try:
        cluster.start_redis(aof=False)
        cluster.start("results")
        app = make_celery(load_settings(cluster.config))
        uid, sops, paths = fresh_study(tmp_path, "held")
        files = StudyFiles(cluster.spool, uid)
        for path, sop in zip(paths, sops, strict=True):
            files.image(sop).parent.mkdir(parents=True, exist_ok=True)
            files.image(sop).write_bytes(path.read_bytes())
        # The crash path is taken only when the old connection is already gone as kombu restores
        # the held tasks; when the restarted redis answers first, the restore simply succeeds.
        # The crash came at the first or second outage in 4 of 4 runs on an idle machine, but
        # neither of two outages took it once on a slower one: go on until the workaround has
        # run, so the test always exercises it, and check the worker survived every outage.
        for outage in range(OUTAGES):
            # finalize waits for image results that never come: the worker holds it (countdown)
            app.send_task(TASK_FINALIZE_STUDY, args=finalize_study_args(cluster.spool, uid, sops))
            wait_until(_logged_more_than(cluster, " retry: Retry in", outage), 60, "a finalize held for its countdown")
            cluster.kill("redis")
            cluster.start_redis(aof=False)
            wait_until(_logged_more_than(cluster, "msg=\"Connected to ", outage + 1), 60, "the worker to reconnect")
            assert cluster.procs["results"].poll() is None, cluster.log_text("results")[-3000:]
            if outage >= 1 and "event=unacked_restore_skipped" in cluster.log_text("results"):
                break
        assert "Unrecoverable error" not in cluster.log_text("results")
        assert "event=unacked_restore_skipped" in cluster.log_text("results"), \
            f"kombu never lost the connection before restoring in {OUTAGES} outages: the workaround was not exercised"
    finally:
        cluster.stop()
