"""The one typed settings object of mammocad.

Read from a TOML file (``--config PATH``, else ``$MAMMOCAD_CONFIG``, else
``config/mammocad.toml``) with environment overrides such as
``MAMMOCAD_NODE__PORT=11113`` (double underscore between section and key).
Validation happens here, once: every other module may trust what it gets.
"""

from __future__ import annotations

import os
import ssl
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from mammocad.config.base import Section as _Section
from mammocad.config.base import check_port as _check_port
from mammocad.config.security import (
    Network,
    NodeTLSSettings,
    address_in,
    check_destination_tls,
    host_networks,
)
from mammocad.config.services import AuditSettings, MetricsSettings
from mammocad.dicom import tls

DEFAULT_CONFIG_PATH = Path("config/mammocad.toml")
CONFIG_ENV_VAR = "MAMMOCAD_CONFIG"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def validate_ae_title(value: str) -> str:
    """Check an AE title against PS3.5 (AE VR): 1-16 chars, no backslash, no control chars."""
    if not isinstance(value, str):
        raise ValueError(f"AE title must be a string, got {value!r}")
    stripped = value.strip()
    if not 1 <= len(stripped) <= 16:
        raise ValueError(f"AE title must be 1-16 characters, got {value!r} ({len(stripped)} characters)")
    if "\\" in stripped:
        raise ValueError(f"AE title must not contain a backslash, got {value!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in stripped):
        raise ValueError(f"AE title must not contain control characters, got {value!r}")
    return stripped


class OutputKind(StrEnum):
    """Result objects a destination can receive: the one list of output kinds.

    The config names them (``destinations.outputs``), the results builders build them
    (``mammocad.results.outputs``), the reports record them (``mammocad.spool.records``),
    and a built object's kind is always carried with it, never recovered from its SOP class.
    """

    MAMMO_CAD_SR = "mammo-cad-sr"
    TID1500_SR = "tid1500-sr"
    SECONDARY_CAPTURE = "sc"
    GSPS = "gsps"

    @property
    def is_report(self) -> bool:
        """A structured report: a new version cites the earlier one as its predecessor."""
        return self in (OutputKind.MAMMO_CAD_SR, OutputKind.TID1500_SR)


class NodeSettings(_Section):
    ae_title: str = "MAMMOCAD"
    #: Loopback by default: listening on every address is a decision (see config check's warning).
    host: str = "127.0.0.1"
    port: int = 11112
    require_known_callers: bool = True
    #: Silence after which a study without the four screening views is reported anyway.
    #: Five minutes: a PACS retries a refused or interrupted send minutes later, and a
    #: report sent before the retry would need an amendment (docs/FAULTS.md). Complete
    #: four-view studies do not wait for it.
    study_timeout_s: float = Field(300.0, gt=0)
    spool_dir: Path = Path("var/spool")
    #: 0 means unlimited: the fastest receive path measured (see bench/README.md).
    max_pdu_size: int = Field(0, ge=0)
    max_associations: int = Field(16, ge=1)
    #: Images larger than this many pixels are refused (protects memory and the detector).
    max_pixels: int = Field(120_000_000, gt=0)
    #: Seconds a queueing failure (broker down) waits before the node tries again.
    requeue_interval_s: float = Field(5.0, gt=0)
    #: Days a delivered study (and a set-aside object) stays in the spool; 0 keeps all.
    #: Studies with results still owed to a destination are never removed (retention.py).
    retention_days: float = Field(30.0, ge=0)
    tls: NodeTLSSettings = Field(default_factory=NodeTLSSettings)
    #: Seconds between two passes of the reconciler, which compares the spool (the source
    #: of truth) with the broker and re-queues acknowledged work that nobody holds
    #: (docs/FAULTS.md). An item is re-queued when two passes in a row miss it.
    reconcile_interval_s: float = Field(10.0, gt=0)
    #: Seconds a connection may take to send its A-ASSOCIATE-RQ before the node drops it
    #: (ARTIM); such connections never count against max_associations.
    association_timeout_s: float = Field(10.0, gt=0)
    #: Seconds of silence on a connection (inside a PDU, or between requests) before the
    #: node closes it.
    network_timeout_s: float = Field(60.0, gt=0)
    #: Largest data set the node inflates to read a Deflated Explicit VR header (MB).
    max_inflated_mb: float = Field(64.0, gt=0)

    _ae = field_validator("ae_title")(classmethod(lambda cls, v: validate_ae_title(v)))
    _port = field_validator("port")(classmethod(lambda cls, v: _check_port(v)))


class Caller(_Section):
    """An AE allowed to send images.

    ``host`` (IP, CIDR range or name, resolved at load) pins its address;
    ``certificate_subject`` (``"CN=pacs, O=Hospital"``) requires it to come over TLS with a
    client certificate whose subject holds those attributes.
    """

    ae_title: str
    host: str | None = None
    certificate_subject: str | None = None
    _networks: tuple[Network, ...] = PrivateAttr(default=())
    _subject: dict[str, str] = PrivateAttr(default_factory=dict)

    _ae = field_validator("ae_title")(classmethod(lambda cls, v: validate_ae_title(v)))

    @model_validator(mode="after")
    def _rules(self) -> Caller:
        self._networks = host_networks(self.host) if self.host else ()
        self._subject = tls.parse_subject(self.certificate_subject) if self.certificate_subject else {}
        return self

    def host_allowed(self, address: str) -> bool:
        return self.host is None or address_in(address, self._networks)

    def subject_allowed(self, subject: dict[str, str] | None) -> bool:
        return not self._subject or tls.subject_matches(self._subject, subject)


class Destination(_Section):
    """A DICOM peer that receives results by C-STORE."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    ae_title: str
    host: str
    port: int
    outputs: list[OutputKind] = Field(default_factory=lambda: list(OutputKind))
    #: Concurrent associations a delivery opens to this peer (a PACS commits each object
    #: before answering; concurrent associations overlap those waits). 1 for a PACS that
    #: allows a single association per calling AE.
    associations: int = Field(4, ge=1, le=16)
    #: The viewer behind this peer applies a GSPS's window over the reader's own (e.g.
    #: Weasis): send the marks as graphics only, i.e. secondary capture instead of GSPS (SRs
    #: as configured). See docs/CONFORMANCE.md.
    graphics_only: bool = False
    #: DICOM TLS to this peer: trust ``ca_certificates``; present ``certificate`` (+ key) when given.
    tls: bool = False
    ca_certificates: str = ""
    certificate: str = ""
    private_key: str = ""

    _ae = field_validator("ae_title")(classmethod(lambda cls, v: validate_ae_title(v)))
    _port = field_validator("port")(classmethod(lambda cls, v: _check_port(v)))

    @model_validator(mode="after")
    def _tls(self) -> Destination:
        check_destination_tls(self.name, self.tls, self.ca_certificates, self.certificate, self.private_key)
        return self

    @property
    def wanted_outputs(self) -> list[OutputKind]:
        """The kinds this peer receives: ``outputs``, with GSPS replaced by SC when graphics-only."""
        if not self.graphics_only or OutputKind.GSPS not in self.outputs:
            return list(self.outputs)
        kinds: list[OutputKind] = [k for k in self.outputs if k is not OutputKind.GSPS]
        return kinds if OutputKind.SECONDARY_CAPTURE in kinds else [*kinds, OutputKind.SECONDARY_CAPTURE]

    def tls_context(self) -> ssl.SSLContext | None:
        """The SCU context for this peer, None for plain DICOM."""
        if not self.tls:
            return None
        return tls.client_context(ca_certificates=self.ca_certificates, certificate=self.certificate,
                                  private_key=self.private_key, what=f"destination {self.name}")


class BrokerSettings(_Section):
    #: Empty: ``mammocad serve`` starts a private redis-server in the spool folder.
    url: str = ""
    #: Program used for the private broker.
    redis_server: str = "redis-server"
    #: Port of the private broker; 0 picks a free one.
    private_port: int = Field(0, ge=0, le=65535)


class WorkerSettings(_Section):
    #: Checkpoint path; empty uses the demo weights shipped with the package.
    weights: str = ""
    #: "auto" (CUDA when present), "cpu", "cuda", "cuda:1"...
    device: str = "auto"
    concurrency: int = Field(1, ge=1)
    soft_time_limit_s: int = Field(600, gt=0)
    time_limit_s: int = Field(900, gt=0)
    analysis_queue: str = "gpu"
    results_queue: str = "results"
    #: An analysis refreshes its lease (``results/<sop>.lease``) every lease_s / 6; a lease
    #: not refreshed for lease_s means its worker died, and the reconciler re-queues the image.
    lease_s: float = Field(30.0, gt=0)
    #: Memory budget of one decoded image (MB): Rows x Columns x frames x samples x bytes,
    #: checked against the header and against the compressed stream's own size fields
    #: before decoding. The detector needs roughly 60x this in working memory (docs/FAULTS.md).
    max_decoded_mb: float = Field(128.0, gt=0)

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        # The worker refuses to start without them; say so at `config check`, not at start.
        if value and not Path(value).is_file():
            raise ValueError(f"weights file {value} does not exist (empty uses the demo weights)")
        return value

    @model_validator(mode="after")
    def _limits(self) -> WorkerSettings:
        if self.soft_time_limit_s >= self.time_limit_s:
            raise ValueError(
                f"worker.soft_time_limit_s ({self.soft_time_limit_s}) must be below "
                f"worker.time_limit_s ({self.time_limit_s})"
            )
        return self


class DeliverySettings(_Section):
    retry_initial_s: float = Field(5.0, gt=0)
    retry_max_s: float = Field(300.0, gt=0)
    #: After this long without Success an item goes to the dead-letter folder.
    deadline_s: float = Field(3600.0, gt=0)
    #: Seconds to wait for a peer to answer before the attempt counts as failed.
    network_timeout_s: float = Field(30.0, gt=0)


class ResultsSettings(_Section):
    #: Secondary captures are stored as JPEG baseline of this quality (a display aid: ~0.5 MB
    #: instead of ~7 MB per image); 0 stores them uncompressed RGB. A PACS that refuses JPEG
    #: gets them decompressed at delivery either way.
    sc_jpeg_quality: int = Field(90, ge=0, le=100)
    #: Secondary captures without loss (JPEG-LS lossless, about half the RGB size) instead of
    #: JPEG baseline; delivery decompresses them for a PACS that refuses JPEG-LS.
    sc_lossless: bool = False


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

    @model_validator(mode="after")
    def _unique_destinations(self) -> Settings:
        names = [d.name for d in self.destinations]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"destinations: names must be unique, repeated: {', '.join(dupes)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _ACTIVE_TOML.get("path")
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

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


# pydantic-settings reads the TOML path when the class is instantiated; this holds it for
# the duration of one load_settings() call.
_ACTIVE_TOML: dict[str, Path | None] = {"path": None}


class ConfigError(Exception):
    """The configuration file or environment is invalid; the message names the key."""


def resolve_config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``--config`` wins, then ``$MAMMOCAD_CONFIG``, then ``config/mammocad.toml``."""
    if path:
        return Path(path)
    env = os.environ.get(CONFIG_ENV_VAR)
    if env:
        return Path(env)
    return DEFAULT_CONFIG_PATH


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load and validate settings; raise :class:`ConfigError` naming the bad key.

    A missing file is an error only when it was asked for explicitly; otherwise the
    built-in defaults apply (the embedded default used by ``make run``).
    """
    config_path = resolve_config_path(path)
    explicit = bool(path) or bool(os.environ.get(CONFIG_ENV_VAR))
    if not config_path.exists():
        if explicit:
            raise ConfigError(f"configuration file {config_path} does not exist")
        config_path_or_none: Path | None = None
    else:
        config_path_or_none = config_path
    _ACTIVE_TOML["path"] = config_path_or_none
    try:
        return Settings(**overrides)
    except Exception as exc:  # pydantic ValidationError or TOML decode error
        raise ConfigError(_explain(exc, config_path_or_none)) from exc
    finally:
        _ACTIVE_TOML["path"] = None


def _env_source(loc: tuple[Any, ...]) -> str:
    """Name the MAMMOCAD_* variable when the bad value came from the environment."""
    names = [str(p) for p in loc if not isinstance(p, int)]
    for n in range(len(names), 0, -1):
        var = "MAMMOCAD_" + "__".join(names[:n]).upper()
        if var in os.environ:
            return f" [from environment variable {var}]"
    return ""


def _explain(exc: Exception, path: Path | None) -> str:
    where = f"in {path}" if path else "in the environment"
    errors = getattr(exc, "errors", None)
    if callable(errors):
        lines = []
        for err in errors():
            loc = err.get("loc", ())
            key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(top level)"
            lines.append(f"  {key}: {err.get('msg')} (got {err.get('input')!r}){_env_source(loc)}")
        return f"invalid configuration {where}:\n" + "\n".join(lines)
    return f"invalid configuration {where}: {exc}"


class _FileOnlySettings(Settings):
    """Settings read from the given data alone: no environment, no file source."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def validate_config_data(data: dict[str, Any], path: Path | None = None) -> Settings:
    """Validate the content of a config file on its own (environment ignored).

    Used before an edit is written, so a bad ``MAMMOCAD_*`` variable in the admin's
    shell neither blocks nor hides a problem in the file itself.
    """
    try:
        return _FileOnlySettings(**data)
    except Exception as exc:
        raise ConfigError(_explain(exc, path)) from exc
