"""DICOM TLS at the node with DCMTK as the caller: certificates made here with openssl.

Handshake refused without a client certificate and with an untrusted one, accepted with a
good one; a caller entry's certificate_subject enforced; plain and TLS side by side; and
``mammocad dest echo``'s code (config.echo) over TLS, including a CA that does not match.
"""

from __future__ import annotations

import logging
import socket
import ssl
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mammocad.config.echo import echo
from mammocad.config.settings import Destination
from mammocad.worker.delivery import DeliveryError, store_files
from tests import factories
from tests.config.test_echo import storescp
from tests.node.conftest import AE as NODE_AE
from tests.node.conftest import NodeEnv, run_dcmtk
from tests.processes import spawn
from tests.services import free_port, wait_until
from tests.tls_certs import TestPKI, issue, issue_expired, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls_section(pki: TestPKI, port: int = 0, require: bool = True) -> str:
    return ("[node.tls]\nenabled = true\n"
            f'certificate = "{pki.node.certificate}"\nprivate_key = "{pki.node.private_key}"\n'
            f'ca_certificates = "{pki.ca.certificate}"\nrequire_client_certificate = {str(require).lower()}\n'
            f"port = {port}\n")


_CALLERS = ('[[callers]]\nae_title = "ECHOSCU"\n\n[[callers]]\nae_title = "STORESCU"\n\n'
            '[[callers]]\nae_title = "MODALITY1"\ncertificate_subject = "CN=modality1, O=Test Hospital"\n')


def _echo(env: NodeEnv, port: int, tls: tuple[str, ...], aet: str = "ECHOSCU") -> tuple[int, str]:
    result = run_dcmtk(["echoscu", "-v", "-aet", aet, "-aec", NODE_AE, *tls, "127.0.0.1", str(port)])
    return result.returncode, result.stdout + result.stderr


def test_tls_only_node_handshakes(start_node: Callable[..., NodeEnv], pki: TestPKI,
                                  caplog: pytest.LogCaptureFixture) -> None:
    env = start_node(extra_node=_tls_section(pki), callers=_CALLERS)
    assert env.node.tls_port == env.port and env.node._server is None  # TLS only on node.port
    ca = ("+cf", str(pki.ca.certificate))
    good = ("+tls", str(pki.client.private_key), str(pki.client.certificate), *ca)

    with caplog.at_level(logging.WARNING, logger="mammocad.node"):
        rc, out = _echo(env, env.port, ())  # plain DICOM on the TLS port
        assert rc != 0, out
        rc, out = _echo(env, env.port, ("+tla", *ca))  # TLS, no client certificate
        assert rc != 0, out
        rc, out = _echo(env, env.port, ("+tls", str(pki.untrusted_client.private_key),
                                        str(pki.untrusted_client.certificate), *ca))
        assert rc != 0, out

        def failures() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.getMessage() == "tls_handshake_failed"]

        def reasons() -> str:
            return " | ".join(str(getattr(r, "reason", "")) for r in failures())

        # The server thread logs a refused handshake after the client has already given up:
        # wait (with a deadline) for the three lines instead of counting them at once.
        try:
            wait_until(lambda: len(failures()) >= 3 and "no client certificate" in reasons()
                       and "not trusted" in reasons(), 20, "three tls_handshake_failed lines")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {reasons()}") from None

    rc, out = _echo(env, env.port, good)
    assert rc == 0, out

    study = factories.make_four_view_study()
    path = factories.write(study[0], env.tmp / "cc.dcm")
    result = run_dcmtk(["storescu", "-aet", "STORESCU", "-aec", NODE_AE, *good, "127.0.0.1", str(env.port),
                        str(path)])
    assert result.returncode == 0, result.stderr
    stored = env.spool.image_path(str(study[0].StudyInstanceUID), str(study[0].SOPInstanceUID))
    assert stored.exists()
    # Spooled images are patient data: 0640, in 0750 folders (they were world-readable before).
    assert stat.S_IMODE(stored.stat().st_mode) == 0o640
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o750


def _client_hello() -> bytes:
    """The first flight of a real TLS client (a ClientHello record), made in memory."""
    ctx = ssl.create_default_context()
    tls = ctx.wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def _closed(sock: socket.socket) -> bool:
    """True once the node has closed ``sock`` (anything it sent before, e.g. an alert, is read)."""
    sock.settimeout(0.2)
    try:
        while sock.recv(4096):
            pass
        return True
    except TimeoutError:
        return False
    except OSError:
        return True


@pytest.mark.slow
def test_stalled_tls_handshakes_do_not_lock_senders_out(start_node: Callable[..., NodeEnv], pki: TestPKI,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Connections that open TCP to the TLS port and send nothing or half a ClientHello stay
    open while a real TLS sender gets through; the node then drops them on its own."""
    env = start_node(extra_node="association_timeout_s = 20\nnetwork_timeout_s = 20\n" + _tls_section(pki),
                     callers=_CALLERS)
    hello = _client_hello()
    assert hello[:1] == b"\x16" and len(hello) > 60  # a TLS handshake record
    stalled = [socket.create_connection(("127.0.0.1", env.port), timeout=5) for _ in range(16)]
    try:
        for sock in stalled[8:]:
            sock.sendall(hello[:40])  # a partial ClientHello
        good = ("+tls", str(pki.client.private_key), str(pki.client.certificate), "+cf", str(pki.ca.certificate))
        with caplog.at_level(logging.WARNING, logger="mammocad.node"):
            rc, out = _echo(env, env.port, good)  # queued behind all 16 in the accept backlog
            assert rc == 0, out
            # Served while every stalled handshake was still pending (before, the accept loop
            # waited out each one in turn and dropped them before it reached the echo).
            assert not [s for s in stalled if _closed(s)], "a stalled connection was dropped before the echo"
            wait_until(lambda: all(_closed(s) for s in stalled), 120, "the node to drop the stalled connections")
            reasons = [str(getattr(r, "reason", "")) for r in caplog.records
                       if r.getMessage() == "tls_handshake_failed"]
        assert sum("no TLS handshake within 20 s" in r for r in reasons) >= 8, reasons
    finally:
        for sock in stalled:
            sock.close()


def test_refusals_say_why(start_node: Callable[..., NodeEnv], pki: TestPKI, tmp_path: Path,
                          caplog: pytest.LogCaptureFixture) -> None:
    """An expired client certificate was logged as "not signed by a CA in the CA file", and a
    TLS 1.1 caller as "a plain DICOM caller on the TLS port?": both sent the admin the wrong way."""
    expired = issue_expired(pki.ca, tmp_path, "oldmodality")
    env = start_node(extra_node=_tls_section(pki), callers=_CALLERS)
    with caplog.at_level(logging.WARNING, logger="mammocad.node"):
        rc, out = _echo(env, env.port, ("+tls", str(expired.private_key), str(expired.certificate),
                                        "+cf", str(pki.ca.certificate)))
        assert rc != 0, out
        probe = subprocess.run(["openssl", "s_client", "-tls1_1", "-connect", f"127.0.0.1:{env.port}",
                                "-cert", str(pki.client.certificate), "-key", str(pki.client.private_key)],
                               input="", capture_output=True, text=True, timeout=30)
        assert "Cipher is (NONE)" in probe.stdout or probe.returncode != 0, probe.stdout  # refused

        def reasons() -> str:
            return " | ".join(str(getattr(r, "reason", "")) for r in caplog.records
                              if r.getMessage() == "tls_handshake_failed")

        try:
            wait_until(lambda: "caller's certificate has expired" in reasons()
                       and "offered only SSL 3, TLS 1.0 or TLS 1.1" in reasons(), 20, "both refusals")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {reasons()}") from None
    assert "not signed by a CA" not in reasons() and "plain DICOM caller" not in reasons()


def test_node_logs_an_expiring_certificate_at_start(start_node: Callable[..., NodeEnv], pki: TestPKI,
                                                    tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    soon = issue(pki.ca, tmp_path, "soonnode", days=10)
    section = _tls_section(pki).replace(str(pki.node.certificate), str(soon.certificate)).replace(
        str(pki.node.private_key), str(soon.private_key))
    with caplog.at_level(logging.WARNING, logger="mammocad.node"):
        start_node(extra_node=section, callers=_CALLERS)
    warned = [str(getattr(r, "warning", "")) for r in caplog.records if r.getMessage() == "config_warning"]
    assert any(w.startswith(f"node.tls.certificate {soon.certificate} expires on ") for w in warned), warned


def test_caller_certificate_subject(start_node: Callable[..., NodeEnv], pki: TestPKI,
                                    caplog: pytest.LogCaptureFixture) -> None:
    env = start_node(extra_node=_tls_section(pki), callers=_CALLERS)
    ca = ("+cf", str(pki.ca.certificate))
    rc, out = _echo(env, env.port, ("+tls", str(pki.client.private_key), str(pki.client.certificate), *ca),
                    aet="MODALITY1")
    assert rc == 0, out
    with caplog.at_level(logging.WARNING, logger="mammocad.node"):
        rc, out = _echo(env, env.port, ("+tls", str(pki.other_client.private_key),
                                        str(pki.other_client.certificate), *ca), aet="MODALITY1")
    assert rc != 0 and "Calling AE Title Not Recognized" in out, out
    rejected = [r for r in caplog.records if r.getMessage() == "association_rejected"]
    assert rejected and "certificate subject CN=modality2" in str(getattr(rejected[-1], "reason", ""))


def test_plain_and_tls_side_by_side(start_node: Callable[..., NodeEnv], pki: TestPKI) -> None:
    tls_port = free_port()
    env = start_node(extra_node=_tls_section(pki, port=tls_port), callers=_CALLERS)
    assert env.node.port == env.port and env.node.tls_port == tls_port
    assert _echo(env, env.port, ())[0] == 0
    rc, out = _echo(env, tls_port, ("+tls", str(pki.client.private_key), str(pki.client.certificate),
                                    "+cf", str(pki.ca.certificate)))
    assert rc == 0, out


def test_dest_echo_over_tls(start_node: Callable[..., NodeEnv], pki: TestPKI) -> None:
    env = start_node(extra_node=_tls_section(pki), callers=_CALLERS)
    common = {"name": "self", "ae_title": NODE_AE, "host": "127.0.0.1", "port": env.port}
    good = Destination(**common, tls=True, ca_certificates=str(pki.ca.certificate),
                       certificate=str(pki.client.certificate), private_key=str(pki.client.private_key))
    result = echo(good, "ECHOSCU", timeout=10)
    assert result.ok, result.message

    no_cert = Destination(**common, tls=True, ca_certificates=str(pki.ca.certificate))
    result = echo(no_cert, "ECHOSCU", timeout=10)
    assert not result.ok and result.kind in ("tls", "aborted", "network-error"), result

    wrong_ca = Destination(**common, tls=True, ca_certificates=str(pki.untrusted_ca.certificate),
                           certificate=str(pki.client.certificate), private_key=str(pki.client.private_key))
    result = echo(wrong_ca, "ECHOSCU", timeout=10)
    assert not result.ok and result.kind == "tls" and "certificate verify failed" in result.message, result


def test_dest_trusts_only_its_ca_file(tmp_path: Path, pki: TestPKI, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer whose certificate comes from a CA in the system trust store (here
    SSL_CERT_FILE, which OpenSSL reads for it), not from the destination's CA file, is
    refused. The context once loaded the system store too: with no host name check, any
    public CA's certificate passed for the PACS."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.untrusted_ca.certificate))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    impostor = ("+tls", str(pki.untrusted_client.private_key), str(pki.untrusted_client.certificate),
                "+cf", str(pki.ca.certificate))
    with storescp(tmp_path / "scp", "PACS", *impostor) as port:
        dest = Destination(name="pacs", ae_title="PACS", host="127.0.0.1", port=port, tls=True,
                           ca_certificates=str(pki.ca.certificate), certificate=str(pki.client.certificate),
                           private_key=str(pki.client.private_key))
        result = echo(dest, "ECHOSCU", timeout=10)
    assert not result.ok and result.kind == "tls" and "certificate verify failed" in result.message, result


def test_dest_verify_hostname(tmp_path: Path, pki: TestPKI) -> None:
    """With verify_hostname a PACS certificate from the right CA that names another host is
    refused, by ``dest echo`` and by a delivery; without it, it passes (the CA file decides,
    as in DCMTK). A certificate naming the configured host, as an IP or a DNS name, passes."""
    other = issue(pki.ca, tmp_path, "otherpacs", alt_names="DNS:otherpacs.example,IP:192.0.2.7")
    client = {"ca_certificates": str(pki.ca.certificate), "certificate": str(pki.client.certificate),
              "private_key": str(pki.client.private_key)}
    study = factories.make_four_view_study()
    sample = factories.write(study[0], tmp_path / "cc.dcm")

    def dest(port: int, host: str, verify: bool) -> Destination:
        return Destination(name="pacs", ae_title="PACS", host=host, port=port, tls=True, verify_hostname=verify,
                           **client)

    impostor = ("+tls", str(other.private_key), str(other.certificate), "+cf", str(pki.ca.certificate))
    with storescp(tmp_path / "scp-other", "PACS", *impostor) as port:
        result = echo(dest(port, "127.0.0.1", True), "ECHOSCU", timeout=10)
        assert not result.ok and result.kind == "tls" and "not valid for '127.0.0.1'" in result.message, result
        assert "verify_hostname" in result.message, result  # says which setting refused it
        with pytest.raises(DeliveryError, match=r"\[tls\].*not valid for '127.0.0.1'"):
            store_files(dest(port, "127.0.0.1", True), [sample], calling_ae="MAMMOCAD", timeout_s=10)
        result = echo(dest(port, "127.0.0.1", False), "ECHOSCU", timeout=10)
        assert result.ok, result.message
        assert all(s.ok for s in store_files(dest(port, "127.0.0.1", False), [sample], calling_ae="MAMMOCAD",
                                             timeout_s=10))

    right = ("+tls", str(pki.node.private_key), str(pki.node.certificate), "+cf", str(pki.ca.certificate))
    with storescp(tmp_path / "scp-right", "PACS", *right) as port:  # IP:127.0.0.1, DNS:localhost
        for host in ("127.0.0.1", "localhost"):
            result = echo(dest(port, host, True), "ECHOSCU", timeout=10)
            assert result.ok, (host, result.message)
        assert all(s.ok for s in store_files(dest(port, "localhost", True), [sample], calling_ae="MAMMOCAD",
                                             timeout_s=10))


def test_tls_settings_checked_at_load(tmp_path: Path, pki: TestPKI) -> None:
    from mammocad.config.settings import ConfigError, load_settings

    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[node.tls]\nenabled = true\ncertificate = "{pki.node.certificate}"\n'
                   f'private_key = "{tmp_path / "missing.key"}"\nca_certificates = "{pki.ca.certificate}"\n')
    with pytest.raises(ConfigError, match="missing.key"):
        load_settings(cfg)
    cfg.write_text(f'[node.tls]\nenabled = true\ncertificate = "{pki.node.certificate}"\n'
                   f'private_key = "{pki.node.private_key}"\n')
    with pytest.raises(ConfigError, match="require_client_certificate needs node.tls.ca_certificates"):
        load_settings(cfg)
    # An encrypted key: OpenSSL asked for its pass phrase on the terminal (config check sat
    # there) or, with none, failed with "[Errno 22] Invalid argument".
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(["openssl", "pkey", "-in", str(pki.node.private_key), "-aes256", "-passout", "pass:secret",
                    "-out", str(encrypted)], check=True, capture_output=True, timeout=30)
    cfg.write_text(f'[node.tls]\nenabled = true\ncertificate = "{pki.node.certificate}"\n'
                   f'private_key = "{encrypted}"\nca_certificates = "{pki.ca.certificate}"\n')
    with pytest.raises(ConfigError, match="encrypted.key' is encrypted"):
        load_settings(cfg)
    cfg.write_text(f'[audit]\nsyslog = "tls://127.0.0.1:6514"\ncertificate = "{pki.node.certificate}"\n'
                   f'private_key = "{encrypted}"\n')
    with pytest.raises(ConfigError, match="audit.private_key: .* is encrypted"):
        load_settings(cfg)
    cfg.write_text('[[destinations]]\nname = "p"\nae_title = "P"\nhost = "h"\nport = 104\ntls = true\n')
    with pytest.raises(ConfigError, match="tls = true needs ca_certificates"):
        load_settings(cfg)
    cfg.write_text('[[destinations]]\nname = "p"\nae_title = "P"\nhost = "h"\nport = 104\nverify_hostname = true\n')
    with pytest.raises(ConfigError, match="verify_hostname are set but tls is false"):
        load_settings(cfg)


#: Serves Verification over the node's TLS context (NodeTLSSettings.server_context, as the
#: node builds it) until stdin closes; prints its port. Run under OPENSSL_CONF below.
_RENEGOTIATION_SERVER = """
import sys
from pynetdicom import AE
from pynetdicom.sop_class import Verification
from mammocad.config.security import NodeTLSSettings
from tests.services import free_port
ctx = NodeTLSSettings(enabled=True, certificate=sys.argv[1], private_key=sys.argv[2],
                      require_client_certificate=False).server_context()
ae = AE("MAMMOCAD")
ae.add_supported_context(Verification)
port = free_port()
server = ae.start_server(("127.0.0.1", port), block=False, ssl_context=ctx)
print(port, flush=True)
sys.stdin.read()
server.shutdown()
"""


def _read_available(proc: subprocess.Popen[str], seen: list[str]) -> str:
    """Everything ``proc`` has written so far (its stdout read without blocking), kept in ``seen``."""
    import os
    import select

    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        seen.append(chunk.decode(errors="replace"))
    return "".join(seen)


def _renegotiation_answered(out: str) -> bool:
    after = out.partition("RENEGOTIATING")[2]
    return "no renegotiation" in after or "verify return" in after


def test_node_refuses_client_renegotiation(pki: TestPKI, tmp_path: Path) -> None:
    """A TLS 1.2 caller that asks to renegotiate (``openssl s_client`` sends ``R``) is refused:
    each renegotiation costs the node a private-key operation, as often as the caller likes.

    OpenSSL 3 refuses client renegotiation by default, so the server runs under an
    openssl.cnf that allows it (``Options = ClientRenegotiation``, as a system file may):
    the node's context must still refuse (``ssl.OP_NO_RENEGOTIATION``). Without the option
    the renegotiation completes here.
    """
    import os
    import sys

    from mammocad.config.security import NodeTLSSettings

    ctx = NodeTLSSettings(enabled=True, certificate=str(pki.node.certificate), private_key=str(pki.node.private_key),
                          require_client_certificate=False).server_context()
    assert ctx.options & ssl.OP_NO_RENEGOTIATION
    seen: list[str] = []
    conf = tmp_path / "allow-renegotiation.cnf"
    conf.write_text("openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\nsystem_default = sys\n"
                    "[sys]\nOptions = ClientRenegotiation\n")
    env = {**os.environ, "OPENSSL_CONF": str(conf), "PYTHONPATH": str(Path(__file__).parents[2])}
    server = spawn([sys.executable, "-c", _RENEGOTIATION_SERVER, str(pki.node.certificate),
                    str(pki.node.private_key)], name="tls-server", env=env, stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        wait_until(lambda: _connectable(port), 20, "the TLS server")
        # s_client renegotiates on a line "R"; stdin stays open until the server has answered
        # (refused: "no renegotiation"; done: a second verification after "RENEGOTIATING").
        probe = spawn(["openssl", "s_client", "-tls1_2", "-connect", f"127.0.0.1:{port}", "-CAfile",
                       str(pki.ca.certificate)], name="s_client", stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert probe.stdin is not None and probe.stdout is not None
        wait_until(lambda: "New, TLSv1.2" in _read_available(probe, seen), 30, "the first handshake")
        probe.stdin.write("R\n")
        probe.stdin.flush()
        wait_until(lambda: _renegotiation_answered(_read_available(probe, seen)), 60, "the server's answer")
        probe.stdin.close()
        probe.wait(timeout=30)
        out = "".join(seen)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)
    assert "New, TLSv1.2" in out, out  # the first handshake worked
    assert "RENEGOTIATING" in out and "no renegotiation" in out, out


def _connectable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
