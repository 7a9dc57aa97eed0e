"""The whole config document: :class:`Settings` and its sections. Where the values come from
(keyword arguments, then ``MAMMOCAD_*`` variables, then the TOML file) is decided by
:func:`mammocad.config.loading.load_settings`, per call."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mammocad.config.peers import Caller, Destination
from mammocad.config.sections import (
    BrokerSettings,
    DeliverySettings,
    NodeSettings,
    ResultsSettings,
    WorkerSettings,
)
from mammocad.config.services import AuditSettings, MetricsSettings
from mammocad.dicom import tls

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    """Everything an admin can configure. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="MAMMOCAD_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    node: NodeSettings = Field(default_factory=NodeSettings)
    callers: list[Caller] = Field(default_factory=list)
    destinations: list[Destination] = Field(default_factory=list)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    results: ResultsSettings = Field(default_factory=ResultsSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    #: DEBUG, INFO, WARNING, ERROR or CRITICAL.
    log_level: str = "INFO"
    #: Log as JSON lines instead of key=value.
    log_json: bool = False

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
        return level

    @field_validator("destinations")
    @classmethod
    def _unique_destinations(cls, destinations: list[Destination]) -> list[Destination]:
        # A field validator, so that the error names the key `destinations`; as a model
        # validator it was reported at the top level with the whole document as its value.
        names = [d.name for d in destinations]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"names must be unique, repeated: {', '.join(dupes)}; rename or remove one of "
                             "each in the file")
        return destinations

    @model_validator(mode="after")
    def _metrics_ports_free(self) -> Settings:
        # The node and its metrics endpoint are one process on one host, and `mammocad serve`
        # runs the workers beside them: a shared port passed `config check`, then a service
        # failed to bind at start (as metrics.port against metrics.worker_port already is).
        dicom = {"node.port": self.node.port, "node.tls.port": self.node.tls.port}
        metrics = {"metrics.port": self.metrics.port, "metrics.worker_port": self.metrics.worker_port,
                   "metrics.worker_port + 1 (the analysis worker's)":
                       self.metrics.worker_port + 1 if self.metrics.worker_port else 0}
        for m_key, m_port in metrics.items():
            for d_key, d_port in dicom.items():
                if m_port and m_port == d_port:
                    raise ValueError(f"{m_key} ({m_port}) is {d_key}: the node's DICOM port and a metrics endpoint "
                                     "cannot share a port; choose another metrics port")
        return self

    def caller_allowed(self, ae_title: str, host: str) -> bool:
        """True when ``ae_title`` (from ``host``) is a listed caller."""
        return self.caller_refusal(ae_title, host) is None

    def caller_refusal(self, ae_title: str, host: str, subject: dict[str, str] | None = None) -> str | None:
        """None when a [[callers]] entry allows this caller, else the rule that failed, in words.

        ``subject`` is the TLS client certificate's subject (None on plain DICOM).
        """
        entries = [c for c in self.callers if c.ae_title == ae_title.strip()]
        if not entries:
            return "calling AE title not recognised"
        from_host = [c for c in entries if c.host_allowed(host)]
        if not from_host:
            rules = ", ".join(str(c.host) for c in entries)
            return f"calling AE title known but not from host {host} (allowed hosts: {rules})"
        if any(c.subject_allowed(subject) for c in from_host):
            return None
        wanted = "; ".join(str(c.certificate_subject) for c in from_host)
        return (f"certificate subject {tls.subject_text(subject)} does not match the caller's "
                f"certificate_subject ({wanted})")

    def destination(self, name: str) -> Destination:
        for dest in self.destinations:
            if dest.name == name:
                return dest
        known = ", ".join(d.name for d in self.destinations) or "none"
        raise KeyError(f"no destination named {name!r} (configured: {known})")
