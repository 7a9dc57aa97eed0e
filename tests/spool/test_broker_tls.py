"""Celery's broker connection over ``rediss://`` against a private redis-server with TLS,
certificates made with openssl (tests/tls_certs.py): the broker's certificate is verified
even when the URL does not ask for it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mammocad.config import ConfigError, Settings, load_settings
from mammocad.spool.broker import make_celery
from tests import processes
from tests.services import free_port, redis_server, wait_for_port
from tests.tls_certs import Pair, TestPKI, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@contextmanager
def tls_redis(workdir: Path, server: Pair, ca: Pair) -> Iterator[int]:
    """A redis-server listening on TLS only (no client certificates asked); yields its port."""
    exe = shutil.which("redis-server")
    assert exe, "redis-server is not installed: run `make test`, which installs it"
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = processes.spawn([exe, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                            "--tls-cert-file", str(server.certificate), "--tls-key-file", str(server.private_key),
                            "--tls-ca-cert-file", str(ca.certificate), "--tls-auth-clients", "no",
                            "--dir", str(workdir), "--save", "", "--appendonly", "no"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port
    finally:
        processes.stop(proc)


def _ping(url: str) -> bool:
    app = make_celery(Settings(broker={"url": url}))  # type: ignore[arg-type]
    # a TLS hello to a plain redis-server waits for a reply that never comes: bound it
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "socket_timeout": 5,
                                         "socket_connect_timeout": 5}
    with app.connection_for_write() as conn:
        return bool(conn.default_channel.client.ping())


def test_rediss_is_tls_and_verifies_the_broker_certificate(tmp_path: Path, pki: TestPKI) -> None:
    """A bare ``rediss://`` URL went out without TLS (the transport Celery is given,
    mammocad.spool.kombu_redis, is not named ``rediss``, so kombu set no ssl options): the
    password and study UIDs in clear, to whatever listened. With ``ssl_cert_reqs=none``
    (kombu's default for ``rediss`` otherwise) any certificate was accepted."""
    with redis_server(tmp_path / "plain") as url:
        with pytest.raises(Exception, match="Timeout|timed out|reset|SSL|EOF"):
            _ping(url.replace("redis://", "rediss://"))  # a plain broker: no TLS, no connection
    with tls_redis(tmp_path / "impostor", pki.untrusted_client, pki.ca) as port:
        with pytest.raises(Exception, match="certificate verify failed"):
            _ping(f"rediss://127.0.0.1:{port}/0")
    with tls_redis(tmp_path / "broker", pki.node, pki.ca) as port:
        assert _ping(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={pki.ca.certificate}")


def test_rediss_without_verification_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "mammocad.toml"
    config.write_text('[broker]\nurl = "rediss://:s3cret@broker:6379/0?ssl_cert_reqs=none"\n')
    with pytest.raises(ConfigError, match="ssl_cert_reqs=none turns off verification") as raised:
        load_settings(config)
    assert "s3cret" not in str(raised.value)
    assert Settings(broker={"url": "rediss://broker:6379/0"}).broker.url == (  # type: ignore[arg-type]
        "rediss://broker:6379/0?ssl_cert_reqs=required")
