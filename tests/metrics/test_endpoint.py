"""The node's metrics endpoint against a real redis-server: /healthz, /readyz (503 while
redis is stopped, 200 again when it runs), queue depths and outbox/dead-letter counts."""

from __future__ import annotations

from pathlib import Path

import redis

from mammocad.config import Settings
from mammocad.metrics.endpoints import start_node_endpoint
from tests.metrics.scrape import get, value
from tests.services import free_port, redis_server


def _settings(spool: Path) -> Settings:
    return Settings(node={"spool_dir": spool}, metrics={"port": free_port()},
                    destinations=[{"name": "pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": 4242}])


def test_readiness_follows_the_broker_and_the_spool(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    settings = _settings(spool)
    port = free_port()
    with redis_server(tmp_path / "redis", port) as url:
        server = start_node_endpoint(settings, url)
        assert server is not None
        try:
            assert get(server.port, "/healthz") == (200, "ok\n")
            status, body = get(server.port, "/readyz")
            assert status == 200, body
            assert value(server.port, "mammocad_ready", check="broker") == 1
            redis.Redis.from_url(url).rpush("gpu", b"task-1", b"task-2")
            assert value(server.port, "mammocad_queue_depth", queue="gpu") == 2
            assert value(server.port, "mammocad_queue_depth", queue="results") == 0
        except BaseException:
            server.stop()
            raise
    try:  # redis stopped
        status, body = get(server.port, "/readyz")
        assert status == 503 and "broker" in body and "unreachable" in body
        assert get(server.port, "/healthz")[0] == 200
        assert value(server.port, "mammocad_broker_up") == 0
        assert value(server.port, "mammocad_ready", check="broker") == 0
        with redis_server(tmp_path / "redis", port):  # back on the same port
            assert get(server.port, "/readyz")[0] == 200
            (spool / "tmp").mkdir()
            (spool / "tmp").rename(tmp_path / "gone")
            spool.rename(tmp_path / "unmounted")
            status, body = get(server.port, "/readyz")
            assert status == 503 and "spool" in body and "does not exist" in body
    finally:
        server.stop()


def test_outbox_and_dead_letters_per_destination(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    for folder, dest, item in (("outbox", "pacs", "a"), ("outbox", "pacs", "b"), ("deadletter", "viewer", "c")):
        (spool / folder / dest / item).mkdir(parents=True)
    server = start_node_endpoint(_settings(spool), "redis://127.0.0.1:1/0")
    assert server is not None
    try:
        assert value(server.port, "mammocad_outbox_items", destination="pacs") == 2
        assert value(server.port, "mammocad_deadletter_items", destination="viewer") == 1
        assert value(server.port, "mammocad_deadletter_items", destination="pacs") == 0  # configured: always listed
        assert get(server.port, "/nope")[0] == 404
    finally:
        server.stop()


def test_port_zero_means_no_endpoint(tmp_path: Path) -> None:
    assert start_node_endpoint(Settings(node={"spool_dir": tmp_path}), "redis://127.0.0.1:1/0") is None
