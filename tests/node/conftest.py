"""Fixtures for the node tests: a real node in-process on a free port, real redis, DCMTK."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from mammocad.config import Settings, load_settings
from mammocad.node import receive
from mammocad.node.scp import Node
from mammocad.spool.layout import Spool
from tests.services import (
    free_port,
    wait_until,  # noqa: F401  (re-exported for the node tests)
)

AE = "MAMMOCAD"


def config_text(spool: Path, port: int, broker_url: str, *, timeout_s: float = 30.0,
                callers: str = '[[callers]]\nae_title = "STORESCU"\n\n[[callers]]\nae_title = "ECHOSCU"\n',
                extra_node: str = "") -> str:
    return (f'[node]\nae_title = "{AE}"\nhost = "127.0.0.1"\nport = {port}\nspool_dir = "{spool}"\n'
            f"study_timeout_s = {timeout_s}\nrequeue_interval_s = 0.5\n{extra_node}\n"
            f'[broker]\nurl = "{broker_url}"\n\n{callers}')


@dataclass
class NodeEnv:
    node: Node
    settings: Settings
    config: Path
    spool: Spool
    redis_url: str
    port: int
    tmp: Path
    files: list[Path] = field(default_factory=list)

    def storescu(self, *files: Path, aet: str = "STORESCU", aec: str = AE, opts: tuple[str, ...] = ()
                 ) -> subprocess.CompletedProcess[str]:
        return run_dcmtk(["storescu", "-aet", aet, "-aec", aec, *opts, "127.0.0.1", str(self.port),
                          *map(str, files)])

    def echoscu(self, aet: str = "ECHOSCU", aec: str = AE) -> subprocess.CompletedProcess[str]:
        return run_dcmtk(["echoscu", "-v", "-aet", aet, "-aec", aec, "127.0.0.1", str(self.port)])

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until the dispatcher has handled everything submitted so far."""
        time.sleep(0.05)
        assert self.node.dispatcher.idle.wait(timeout), "dispatcher still busy"

    def tasks(self, queue: str) -> list[tuple[str, list[Any]]]:
        return queued_tasks(self.redis_url, queue)


def run_dcmtk(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def queued_tasks(url: str, queue: str) -> list[tuple[str, list[Any]]]:
    """(task name, args) of the Celery messages waiting in redis list ``queue``, oldest first."""
    client = redis.Redis.from_url(url)
    out = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        msg = json.loads(raw)
        body = json.loads(base64.b64decode(msg["body"]))
        out.append((msg["headers"]["task"], body[0]))
    return out




def data_set_bytes(path: Path) -> bytes:
    """The bytes after the file meta of a Part 10 file (what travels in C-STORE)."""
    raw = path.read_bytes()
    assert raw[128:132] == b"DICM", f"{path} is not a Part 10 file"
    group_len = int.from_bytes(raw[140:144], "little")  # (0002,0000) UL value, explicit VR LE
    return raw[144 + group_len:]


@pytest.fixture
def start_node(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., NodeEnv]]:
    """Start a node (config written to a TOML file); stopped at the end of the test."""
    started: list[Node] = []

    def start(*, broker_url: str | None = None, streaming: bool = True, **config: Any) -> NodeEnv:
        """``streaming=False``: the in-memory receive path (used when pynetdicom cannot stream)."""
        url = broker_url or redis_url
        spool = tmp_path / "spool"
        port = free_port()
        cfg = tmp_path / "mammocad.toml"
        cfg.write_text(config_text(spool, port, url, **config))
        settings = load_settings(cfg)
        node = Node(settings, cfg)
        node.start()
        started.append(node)
        assert node.streaming, "streaming receive could not be installed on this pynetdicom"
        if not streaming:
            receive.unregister(node.ae)
            node.streaming = False
        return NodeEnv(node, settings, cfg, Spool(spool), url, port, tmp_path)

    yield start
    for node in started:
        node.stop()
