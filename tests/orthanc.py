"""A real Orthanc (Debian ``orthanc``, /usr/sbin/Orthanc) for end-to-end tests.

Each instance gets a temporary storage folder, free HTTP and DICOM ports and a JSON
configuration written here, with ``DicomModalities`` naming the mammocad node(s) it may
send to. Talk to it through its REST API (:meth:`Orthanc.get`, :meth:`Orthanc.post`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests import processes
from tests.services import free_port, wait_for_port

ORTHANC = "/usr/sbin/Orthanc"


class Orthanc:
    """One Orthanc process; ``modalities`` maps a name to (AE title, host, port)."""

    def __init__(self, workdir: Path, modalities: dict[str, tuple[str, str, int]] | None = None,
                 ae_title: str = "ORTHANC", http_port: int | None = None, dicom_port: int | None = None,
                 tls: dict[str, str] | None = None, lifetime: str | None = None) -> None:
        """``tls`` (``certificate``, ``private_key``, ``ca_certificates``): Orthanc speaks DICOM
        TLS only, on its DICOM port and to every modality, and requires client certificates.
        ``lifetime``: see ``tests.processes.spawn`` (by default the fixture's or test's that starts it)."""
        self.tls = tls
        self.lifetime = lifetime
        self.workdir = workdir
        self.ae_title = ae_title
        self.http_port = http_port or free_port()
        self.dicom_port = dicom_port or free_port()
        self.modalities = modalities or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "orthanc.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def config(self) -> dict[str, Any]:
        storage = self.workdir / "storage"
        config = self._plain_config(storage)
        if self.tls is not None:
            config.update({
                "DicomTlsEnabled": True, "DicomTlsCertificate": self.tls["certificate"],
                "DicomTlsPrivateKey": self.tls["private_key"],
                "DicomTlsTrustedCertificates": self.tls["ca_certificates"],
                "DicomTlsRemoteCertificateRequired": True,
                "DicomModalities": {name: {"AET": ae, "Host": host, "Port": port, "UseDicomTls": True}
                                    for name, (ae, host, port) in self.modalities.items()},
            })
        return config

    def _plain_config(self, storage: Path) -> dict[str, Any]:
        return {
            "Name": "mammocad-test-pacs",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.ae_title,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomModalities": {name: [ae, host, port] for name, (ae, host, port) in self.modalities.items()},
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "UnknownSopClassAccepted": True,
            "StableAge": 1,
            "Plugins": [],
            "HttpTimeout": 60,
            "DicomScuTimeout": 30,
            "SaveJobs": False,
        }

    def start(self, timeout: float = 30.0) -> Orthanc:
        if not Path(ORTHANC).exists() and shutil.which("Orthanc") is None:
            raise RuntimeError(f"{ORTHANC} is missing: run `make test`, which installs the Debian package orthanc")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "orthanc.json"
        cfg.write_text(json.dumps(self.config(), indent=1))
        with open(self.log, "ab") as log:
            self.proc = processes.spawn([ORTHANC if Path(ORTHANC).exists() else "Orthanc", str(cfg)],
                                        name="Orthanc", lifetime=self.lifetime, stdout=log,
                                        stderr=subprocess.STDOUT, cwd=self.workdir)
        try:
            wait_for_port(self.http_port, timeout=timeout)
            wait_for_port(self.dicom_port, timeout=timeout)
        except TimeoutError as exc:
            self.stop()
            raise RuntimeError(f"Orthanc did not start; its log:\n{self.log.read_text()[-3000:]}") from exc
        return self

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc, grace=20)
        self.proc = None

    def __enter__(self) -> Orthanc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ REST
    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json", timeout: float = 60) -> Any:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={"Content-Type": content_type} if body is not None else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as rsp:
                data = rsp.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"Orthanc {method} {path} → {exc.code}: {exc.read()[:500]!r}") from exc
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return data

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, payload: Any) -> Any:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        ctype = "application/dicom" if isinstance(payload, bytes) else "application/json"
        return self.request("POST", path, body, ctype)

    def upload(self, path: Path) -> str:
        """POST /instances; returns the Orthanc id of the stored instance."""
        return str(self.post("/instances", path.read_bytes())["ID"])

    def send_study(self, paths: list[Path], modality: str = "mammocad") -> str:
        """Upload a study's files, then C-STORE the whole study to ``modality`` (as a PACS
        forwards to a CAD node); returns the Orthanc study id."""
        ids = [self.upload(path) for path in paths]
        study = str(self.get(f"/instances/{ids[0]}/study")["ID"])
        self.post(f"/modalities/{modality}/store", {"Resources": [study], "Synchronous": True})
        return study

    def study_id(self, study_uid: str) -> str | None:
        found = self.request("POST", "/tools/lookup", study_uid.encode(), "text/plain")
        for hit in found or []:
            if hit.get("Type") == "Study":
                return str(hit["ID"])
        return None

    def instances(self, study_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/studies/{study_id}/instances"))

    def instance_file(self, instance_id: str) -> bytes:
        data = self.request("GET", f"/instances/{instance_id}/file")
        return data if isinstance(data, bytes) else json.dumps(data).encode()

    def tags(self, instance_id: str) -> dict[str, Any]:
        return dict(self.get(f"/instances/{instance_id}/simplified-tags"))


