"""``[audit]`` and ``[metrics]``: where the services report (see docs/ADMIN.md)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from mammocad.config.base import Section as _Section
from mammocad.config.base import check_port as _check_port
from mammocad.config.paths import FilePath

_SYSLOG_SCHEMES = {"udp": 514, "tcp": 514, "tls": 6514}


class AuditSettings(_Section):
    """DICOM PS3.15 A.5 audit trail (IHE ATNA); see mammocad/audit and docs/ADMIN.md."""

    #: One XML audit message per line, appended; empty: no audit file.
    file: FilePath = ""
    #: RFC 5424 syslog collector: ``udp://host:514``, ``tcp://host:514`` (RFC 6587 octet
    #: counting) or ``tls://host:6514`` (RFC 5425); empty: none.
    syslog: str = ""
    #: CA file to verify a ``tls://`` collector; empty: the system trust store.
    ca_certificates: FilePath = ""
    #: Client certificate and key for ``tls://`` (ATNA asks for mutual TLS); optional.
    certificate: FilePath = ""
    private_key: FilePath = ""
    #: AuditSourceID; empty: ``<node.ae_title>@<host name>``.
    source_id: str = ""
    #: AuditEnterpriseSiteID (the hospital), optional.
    site_id: str = ""
    #: Messages waiting for the sender thread; beyond this new messages are dropped and counted.
    queue_size: int = Field(10000, ge=10)

    @field_validator("syslog")
    @classmethod
    def _syslog(cls, value: str) -> str:
        value = value.strip()
        if value:
            syslog_address(value)
        return value

    @model_validator(mode="after")
    def _tls_files(self) -> AuditSettings:
        if bool(self.certificate) != bool(self.private_key):
            raise ValueError("audit.certificate and audit.private_key go together: give both or neither")
        if not self.syslog.startswith("tls://"):
            if self.ca_certificates or self.certificate:
                raise ValueError("audit.ca_certificates/certificate/private_key apply only to a tls:// syslog "
                                 f"collector, got syslog {self.syslog or '(none)'!r}: use tls:// or remove them")
            return self
        # Load the files now, as every service does when it starts its audit trail: a wrong
        # path fails `config check` (the units' pre-start gate), naming the key, not the service.
        from mammocad.audit.syslog import tls_context

        tls_context(self.ca_certificates, self.certificate, self.private_key)
        return self


def syslog_address(url: str) -> tuple[str, str, int]:
    """``tcp://host:port`` → ``("tcp", host, port)``; ValueError naming what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _SYSLOG_SCHEMES:
        raise ValueError(f"syslog must be udp://HOST[:PORT], tcp://HOST[:PORT] or tls://HOST[:PORT], got {url!r}")
    host, colon, port_text = rest.rstrip("/").rpartition(":")
    if not colon:
        host, port_text = rest.rstrip("/"), str(_SYSLOG_SCHEMES[scheme])
    host = host.strip("[]")
    if not host or not port_text.isdigit():
        raise ValueError(f"syslog {url!r}: expected {scheme}://HOST:PORT")
    return scheme, host, _check_port(int(port_text))


class MetricsSettings(_Section):
    """Prometheus endpoints (``/metrics``, ``/healthz``, ``/readyz``); 0 turns one off."""

    #: Address the endpoints listen on; loopback unless Prometheus scrapes from another box.
    host: str = "127.0.0.1"
    #: The node's endpoint (``mammocad node`` / ``mammocad serve``); 0 = off.
    port: int = Field(0, ge=0, le=65535)
    #: A worker's endpoint; 0 = off. Under one ``mammocad worker`` (both queues) the results
    #: worker takes this port and the analysis worker the next one; ``--metrics-port`` overrides.
    worker_port: int = Field(0, ge=0, le=65535)

    @model_validator(mode="after")
    def _distinct(self) -> MetricsSettings:
        if self.port and self.worker_port and self.port in (self.worker_port, self.worker_port + 1):
            raise ValueError(f"metrics.port ({self.port}) must differ from metrics.worker_port "
                             f"({self.worker_port}) and the port after it (the analysis worker's)")
        return self


