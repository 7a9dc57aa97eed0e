"""``mammocad dest add --tls`` end to end: the installed script writes the TLS keys, ``config
check`` reports them, and ``dest echo`` reaches a TLS-only DCMTK storescp (which requires a
client certificate) with them. Certificates are made here (tests/tls_certs.py)."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.config.conftest import Runner
from tests.config.test_echo import storescp
from tests.tls_certs import TestPKI, issue, issue_expired, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _add(mammocad: Runner, name: str, port: int, *tls: str) -> tuple[int, str, str]:
    out = mammocad("dest", "add", name, "--ae", "SECURE", "--host", "127.0.0.1", "--port", str(port),
                   "--outputs", "mammo-cad-sr", *tls)
    return out.returncode, out.stdout, out.stderr


def test_dest_add_tls_writes_keys_and_echo_works(mammocad: Runner, config_file: Path, tmp_path: Path,
                                                 pki: TestPKI) -> None:
    server = ("+tls", str(pki.node.private_key), str(pki.node.certificate), "+cf", str(pki.ca.certificate))
    with storescp(tmp_path / "scp", "SECURE", *server) as port:
        # paths relative to the admin's folder (the runner's cwd is the config's folder)
        cwd = config_file.parent
        rel = {key: os.path.relpath(path, cwd) for key, path in
               (("ca", pki.ca.certificate), ("crt", pki.client.certificate), ("key", pki.client.private_key))}
        rc, stdout, stderr = _add(mammocad, "secure", port, "--tls", "--ca-certificates", rel["ca"],
                                  "--certificate", rel["crt"], "--private-key", rel["key"])
        assert rc == 0, stderr
        assert "mammocad dest echo secure" in stdout
        entry = tomllib.loads(config_file.read_text())["destinations"][-1]
        assert entry == {"name": "secure", "ae_title": "SECURE", "host": "127.0.0.1", "port": port,
                         "outputs": ["mammo-cad-sr"], "tls": True,
                         "ca_certificates": str(pki.ca.certificate), "certificate": str(pki.client.certificate),
                         "private_key": str(pki.client.private_key)}  # absolute: services run elsewhere

        check = mammocad("config", "check")
        assert check.returncode == 0, check.stderr
        assert f"secure=SECURE@127.0.0.1:{port} (TLS)" in check.stdout
        assert f"127.0.0.1:{port}" in mammocad("dest", "list").stdout

        echo = mammocad("dest", "echo", "secure", "--timeout", "10")
        assert echo.returncode == 0, echo.stdout + echo.stderr
        assert f"C-ECHO to SECURE@127.0.0.1:{port} succeeded" in echo.stdout

        # the peer requires a client certificate: without one the handshake fails, and says so
        rc, _, stderr = _add(mammocad, "nocert", port, "--tls", "--ca-certificates", str(pki.ca.certificate))
        assert rc == 0, stderr
        assert tomllib.loads(config_file.read_text())["destinations"][-1]["tls"] is True
        echo = mammocad("dest", "echo", "nocert", "--timeout", "10")
        assert echo.returncode == 1, echo.stdout
        assert "echo nocert failed [tls]" in echo.stderr  # TLS 1.3: "certificate required"

        # trusting a CA that did not sign the peer's certificate
        rc, _, stderr = _add(mammocad, "wrongca", port, "--tls", "--ca-certificates",
                             str(pki.untrusted_ca.certificate), "--certificate", str(pki.client.certificate),
                             "--private-key", str(pki.client.private_key))
        assert rc == 0, stderr
        echo = mammocad("dest", "echo", "wrongca", "--timeout", "10")
        assert echo.returncode == 1, echo.stdout
        assert "echo wrongca failed [tls]" in echo.stderr and "certificate verify failed" in echo.stderr

        # the same peer over plain DICOM: refused by the TLS-only peer
        rc, _, stderr = _add(mammocad, "plain", port)
        assert rc == 0, stderr
        assert "tls" not in tomllib.loads(config_file.read_text())["destinations"][-1]
        assert mammocad("dest", "echo", "plain", "--timeout", "10").returncode == 1


def test_dest_add_tls_refuses_incomplete_keys(mammocad: Runner, config_file: Path, tmp_path: Path,
                                              pki: TestPKI) -> None:
    before = config_file.read_bytes()
    cases = [
        (("--tls",), "tls = true needs ca_certificates"),
        (("--tls", "--ca-certificates", str(tmp_path / "missing-ca.crt")), "missing-ca.crt"),
        (("--tls", "--ca-certificates", str(pki.ca.certificate), "--certificate", str(pki.client.certificate)),
         "certificate and private_key go together"),
        (("--tls", "--ca-certificates", str(pki.ca.certificate), "--certificate", str(pki.client.certificate),
          "--private-key", str(pki.other_client.private_key)), "key values mismatch"),
    ]
    for args, reason in cases:
        rc, _, stderr = _add(mammocad, "secure", 11112, *args)
        assert rc == 1 and reason in stderr, (args, stderr)
        assert config_file.read_bytes() == before, args
    assert mammocad("config", "check").returncode == 0


def test_dest_add_verify_hostname(mammocad: Runner, config_file: Path, pki: TestPKI) -> None:
    rc, _, stderr = _add(mammocad, "checked", 2762, "--tls", "--ca-certificates", str(pki.ca.certificate),
                         "--verify-hostname")
    assert rc == 0, stderr
    entry = tomllib.loads(config_file.read_text())["destinations"][-1]
    assert entry["tls"] is True and entry["verify_hostname"] is True
    check = mammocad("config", "check")
    assert check.returncode == 0 and "checked=SECURE@127.0.0.1:2762 (TLS, hostname verified)" in check.stdout
    rc, _, stderr = _add(mammocad, "trusting", 2763, "--tls", "--ca-certificates", str(pki.ca.certificate))
    assert rc == 0, stderr

    # whether the PACS certificate must name the host, and which CA decides trust, per destination
    listing = mammocad("dest", "list").stdout.splitlines()
    header = listing[0].split()
    assert header[:3] == ["NAME", "AE", "TITLE"] and "TLS" in header and "HOSTNAME" in header, listing
    rows = {line.split()[0]: line.split() for line in listing[1:]}
    assert rows["pacs"][3:5] == ["off", "-"] and rows["pacs"][-1] == "-", listing  # the shipped plain one
    assert rows["checked"][3:5] == ["on", "yes"] and rows["checked"][-1] == str(pki.ca.certificate), listing
    assert rows["trusting"][3:5] == ["on", "no"] and rows["trusting"][-1] == str(pki.ca.certificate), listing


def test_config_check_warns_of_world_readable_private_keys(mammocad: Runner, config_file: Path, tmp_path: Path,
                                                           pki: TestPKI) -> None:
    """Keys loaded fine at any mode, and nothing said that every local user could copy them."""
    node_key, dest_key = tmp_path / "node.key", tmp_path / "client.key"
    node_key.write_bytes(pki.node.private_key.read_bytes())
    dest_key.write_bytes(pki.client.private_key.read_bytes())
    node_key.chmod(0o644)
    dest_key.chmod(0o604)
    with config_file.open("a") as f:
        f.write(f'\n[node.tls]\nenabled = true\ncertificate = "{pki.node.certificate}"\n'
                f'private_key = "{node_key}"\nca_certificates = "{pki.ca.certificate}"\n'
                f'\n[[destinations]]\nname = "secure"\nae_title = "SECURE"\nhost = "127.0.0.1"\nport = 2762\n'
                f'outputs = ["mammo-cad-sr"]\ntls = true\nca_certificates = "{pki.ca.certificate}"\n'
                f'certificate = "{pki.client.certificate}"\nprivate_key = "{dest_key}"\n')
    check = mammocad("config", "check")
    assert check.returncode == 0, check.stderr
    assert (f"warning: node.tls.private_key {node_key} is readable by every user (mode 0644)" in check.stdout
            and f"chmod 0640 {node_key}" in check.stdout), check.stdout
    assert f"warning: destination secure private_key {dest_key} is readable by every user" in check.stdout

    node_key.chmod(0o640)
    dest_key.chmod(0o600)
    check = mammocad("config", "check")
    assert check.returncode == 0 and "private_key" not in check.stdout, check.stdout


def test_config_check_warns_of_expired_and_expiring_certificates(mammocad: Runner, config_file: Path,
                                                                  tmp_path: Path, pki: TestPKI) -> None:
    """An expired certificate loaded without a word; peers then refused every handshake."""
    expired = issue_expired(pki.ca, tmp_path, "oldnode")
    soon = issue(pki.ca, tmp_path, "soonclient", days=10)
    fine = issue(pki.ca, tmp_path, "auditclient", days=90)
    for pair in (expired, soon, fine):
        pair.private_key.chmod(0o600)
    chain = tmp_path / "audit-chain.crt"  # a 90-day leaf, then the test CA (2 days) that signed it
    chain.write_bytes(fine.certificate.read_bytes() + pki.ca.certificate.read_bytes())
    text = config_file.read_text()
    assert '\nsyslog = ""' in text  # the shipped [audit] section
    config_file.write_text(text.replace('\nsyslog = ""', f'\nsyslog = "tls://127.0.0.1:6514"\n'
                                        f'ca_certificates = "{pki.ca.certificate}"\n'
                                        f'certificate = "{chain}"\nprivate_key = "{fine.private_key}"', 1))
    with config_file.open("a") as f:
        f.write(f'\n[node.tls]\nenabled = true\ncertificate = "{expired.certificate}"\n'
                f'private_key = "{expired.private_key}"\nca_certificates = "{pki.ca.certificate}"\n'
                f'\n[[destinations]]\nname = "secure"\nae_title = "SECURE"\nhost = "127.0.0.1"\nport = 2762\n'
                f'outputs = ["mammo-cad-sr"]\ntls = true\nca_certificates = "{pki.ca.certificate}"\n'
                f'certificate = "{soon.certificate}"\nprivate_key = "{soon.private_key}"\n')
    check = mammocad("config", "check")
    assert check.returncode == 0, check.stderr  # valid: the services start; the peers would refuse
    warned = [ln for ln in check.stdout.splitlines() if "certificate " in ln and ln.startswith("warning:")
              and "ca_certificates" not in ln]  # the 2-day test CA: see the next test
    assert any(ln.startswith(f"warning: node.tls.certificate {expired.certificate} expired on 2020-01-02 00:00 UTC")
               and "restart the node" in ln for ln in warned), check.stdout
    assert any(ln.startswith(f"warning: destination secure certificate {soon.certificate} expires on ")
               and "(in 9 days)" in ln for ln in warned), check.stdout
    assert any(ln.startswith(f"warning: audit.certificate {chain} (certificate 2 in the file, its chain) "
                             "expires on ") for ln in warned), check.stdout
    assert len(warned) == 3, check.stdout  # the 90-day leaf itself is not warned about


def _self_signed_ca(folder: Path, name: str, *dates: str) -> Path:
    """A CA certificate for ``name``: ``-days N`` or, through ``openssl ca -selfsign``, past
    ``-startdate``/``-enddate`` (``req -x509`` cannot set them)."""
    key, crt = folder / f"{name}.key", folder / f"{name}.crt"
    ext = ("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    if dates[0] == "-days":
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                        str(crt), *dates, "-subj", f"/CN={name}", *ext], check=True, capture_output=True)
        return crt
    (folder / "index.txt").write_text("")
    (folder / "serial").write_text("1000\n")
    (folder / "ca.cnf").write_text("[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n"
                                   "serial = serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n"
                                   "[v3]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign\n")
    csr = folder / f"{name}.csr"
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                    "-subj", f"/CN={name}"], check=True, capture_output=True)
    subprocess.run(["openssl", "ca", "-batch", "-selfsign", "-config", "ca.cnf", "-extensions", "v3", "-keyfile",
                    str(key), "-in", str(csr), "-out", str(crt), *dates, "-notext"],
                   check=True, capture_output=True, cwd=folder)
    return crt


def test_config_check_warns_of_expired_and_expiring_ca_certificates(mammocad: Runner, config_file: Path,
                                                                     tmp_path: Path, pki: TestPKI) -> None:
    """A CA file (callers' or a PACS's trust store) that ran out loaded without a word; then
    nothing it signed verified. Each CA of a bundle is checked and named."""
    lasting = _self_signed_ca(tmp_path, "lasting-root", "-days", "3650")
    ended = _self_signed_ca(tmp_path, "old-root", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")
    bundle = tmp_path / "callers-ca.crt"  # 10 years, expired in 2020, the test CA (2 days)
    bundle.write_bytes(lasting.read_bytes() + ended.read_bytes() + pki.ca.certificate.read_bytes())
    with config_file.open("a") as f:
        f.write(f'\n[node.tls]\nenabled = true\ncertificate = "{pki.node.certificate}"\n'
                f'private_key = "{pki.node.private_key}"\nca_certificates = "{bundle}"\n')
        for name, ca in (("fine", lasting), ("stale", ended)):
            f.write(f'\n[[destinations]]\nname = "{name}"\nae_title = "SECURE"\nhost = "127.0.0.1"\n'
                    f'port = {2762 if name == "fine" else 2763}\noutputs = ["mammo-cad-sr"]\ntls = true\n'
                    f'ca_certificates = "{ca}"\n')
    check = mammocad("config", "check")
    assert check.returncode == 0, check.stderr  # valid: the services start; verification would fail
    warned = [ln for ln in check.stdout.splitlines() if ln.startswith("warning:") and "ca_certificates" in ln]
    assert (f"warning: node.tls.ca_certificates {bundle} (certificate 2 in the file, CN=old-root) expired on "
            "2020-01-02 00:00 UTC: callers' client certificates no longer verify; install the renewed CA "
            "certificate and restart the node (it reads node.tls at start)") in warned, check.stdout
    assert any(ln.startswith(f"warning: node.tls.ca_certificates {bundle} (certificate 3 in the file, "
                             "CN=test-ca) expires on ")
               and "(in 1 day): callers' client certificates will no longer verify from then" in ln
               for ln in warned), check.stdout
    assert (f"warning: destination stale ca_certificates {ended} expired on 2020-01-02 00:00 UTC: the peer's "
            "certificates no longer verify; install the renewed CA certificate") in warned, check.stdout
    assert len(warned) == 3, check.stdout  # nothing about the 10-year CA, in the bundle or alone
