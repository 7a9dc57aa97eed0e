"""Test certificates made with the ``openssl`` command: a CA, certificates it signs, and an
untrusted CA with its own client certificate (for the "refused" cases)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pair:
    certificate: Path
    private_key: Path


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str) -> Pair:
    folder.mkdir(parents=True, exist_ok=True)
    key, crt = folder / f"{name}.key", folder / f"{name}.crt"
    _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "2",
         "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    return Pair(crt, key)


def issue(ca: Pair, folder: Path, name: str, subject: str | None = None,
          alt_names: str = "IP:127.0.0.1,DNS:localhost", days: int = 2) -> Pair:
    """A leaf certificate (server and client use) for ``name``, valid for ``alt_names``
    (subjectAltName; by default 127.0.0.1 and localhost), for ``days`` from now."""
    key, csr, crt = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.crt"
    ext = folder / f"{name}.ext"
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                   f"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={alt_names}\n")
    _run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
         "-subj", subject or f"/CN={name}", cwd=folder)
    _run("x509", "-req", "-in", str(csr), "-CA", str(ca.certificate), "-CAkey", str(ca.private_key),
         "-CAcreateserial", "-out", str(crt), "-days", str(days), "-extfile", str(ext), cwd=folder)
    return Pair(crt, key)


def issue_expired(ca: Pair, folder: Path, name: str) -> Pair:
    """A client certificate from ``ca`` that expired in 2020 (``openssl ca`` sets past dates;
    ``x509 -req`` cannot)."""
    work = folder / f"{name}-ca"
    work.mkdir(parents=True, exist_ok=True)
    (work / "index.txt").write_text("")
    (work / "serial").write_text("1000\n")
    (work / "ca.cnf").write_text("[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n"
                                 "serial = serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n")
    key, csr, crt = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.crt"
    _run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
         cwd=folder)
    _run("ca", "-batch", "-config", "ca.cnf", "-cert", str(ca.certificate), "-keyfile", str(ca.private_key),
         "-in", str(csr), "-out", str(crt), "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
         "-notext", cwd=work)
    return Pair(crt, key)


@dataclass(frozen=True)
class TestPKI:
    __test__ = False  # not a test class

    ca: Pair
    node: Pair
    client: Pair
    other_client: Pair
    untrusted_ca: Pair
    untrusted_client: Pair


def make_pki(folder: Path) -> TestPKI:
    ca = make_ca(folder, "test-ca")
    evil = make_ca(folder / "evil", "evil-ca")
    return TestPKI(ca=ca, node=issue(ca, folder, "node"),
                   client=issue(ca, folder, "modality1", "/CN=modality1/O=Test Hospital"),
                   other_client=issue(ca, folder, "modality2", "/CN=modality2/O=Test Hospital"),
                   untrusted_ca=evil, untrusted_client=issue(evil, folder / "evil", "intruder"))
