"""The service sections of the config: ``[node]``, ``[broker]``, ``[worker]``, ``[delivery]``,
``[results]`` (``[audit]`` and ``[metrics]`` live in :mod:`mammocad.config.services`)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, field_validator, model_validator

from mammocad.config.base import Section, check_port, validate_ae_title
from mammocad.config.paths import FilePath, FolderPath
from mammocad.config.security import NodeTLSSettings

#: Where the systemd units keep their state (StateDirectory=mammocad) and deploy/README.md puts
#: the spool; `make run` points it at the checkout's var/spool (MAMMOCAD_NODE__SPOOL_DIR).
DEFAULT_SPOOL_DIR = Path("/var/lib/mammocad/spool")


class NodeSettings(Section):
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
    #: Absolute by default: a relative default depended on the working directory of each
    #: process (node, worker, admin command), which then used different spools. A relative
    #: value in a config file is relative to the file's folder (mammocad/config/paths.py).
    spool_dir: FolderPath = DEFAULT_SPOOL_DIR
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
    #: Days ``spool/pruned/<study>.json`` (the UIDs a pruned study's reports covered) is kept
    #: after retention removed the study; 0 keeps them. Once it is gone, an image of the study
    #: is a new study to the node (analysed and reported again); retention.py.
    pruned_record_days: float = Field(365.0, ge=0)
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
    _port = field_validator("port")(classmethod(lambda cls, v: check_port(v)))


#: Broker URL schemes: Redis only, since the node's reconciler, the workers' presence files
#: and the metrics read Redis's own structures (mammocad/spool/reconcile.py), and these are
#: the two Celery's Redis transport takes.
BROKER_SCHEMES = ("redis", "rediss")


def redact_url(url: str) -> str:
    """``redis://:secret@host:6379/0`` → ``redis://:***@host:6379/0``, for messages and logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


class BrokerSettings(Section):
    #: Empty: ``mammocad serve`` starts a private redis-server in the spool folder.
    url: str = ""
    #: Program used for the private broker.
    redis_server: str = "redis-server"
    #: Port of the private broker; 0 picks a free one.
    private_port: int = Field(0, ge=0, le=65535)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        # Celery reads a URL without a scheme ("10.0.0.2:6379", the usual slip) as AMQP to a
        # host named "10.0.0.2:6379": the node would listen and accept images it can never queue.
        value = value.strip()
        if not value:
            return value
        scheme, sep, _ = value.partition("://")
        if not sep or scheme.lower() not in BROKER_SCHEMES:
            raise ValueError(f"broker.url must be redis://[:PASSWORD@]HOST:PORT/DB or rediss://... (TLS), "
                             f"got {redact_url(value)!r}")
        try:
            urlsplit(value).port  # noqa: B018 - parsing it is the check
        except ValueError as exc:
            raise ValueError(f"broker.url {redact_url(value)!r}: {exc}") from None
        return _verified_tls(value) if scheme.lower() == "rediss" else value


#: ``ssl_cert_reqs`` values (kombu's and redis-py's spellings) that turn verification off.
_UNVERIFIED = frozenset({"none", "cert_none"})


def _verified_tls(url: str) -> str:
    """A ``rediss://`` URL whose broker certificate is verified.

    Celery's Redis transport (kombu) connects to a ``rediss://`` URL without an ``ssl_*``
    query with ``ssl_cert_reqs=CERT_NONE``: TLS that anyone on the path can intercept,
    password and study UIDs included, with only a warning in the worker's log. So
    ``ssl_cert_reqs=required`` is added when the URL has no ``ssl_cert_reqs``, and ``none``
    is refused. The CA is the system trust store, or ``ssl_ca_certs=/path/ca.crt``.
    """
    query = dict(parse_qsl(urlsplit(url).query))
    reqs = query.get("ssl_cert_reqs")
    if reqs is None:
        return url + ("&" if "?" in url else "?") + "ssl_cert_reqs=required"
    if reqs.lower() in _UNVERIFIED:
        raise ValueError(f"broker.url {redact_url(url)!r}: ssl_cert_reqs={reqs} turns off verification of the "
                         "broker's certificate; use ssl_cert_reqs=required (and ssl_ca_certs=/path/ca.crt "
                         "when the broker's CA is not in the system trust store)")
    return url


class WorkerSettings(Section):
    #: Checkpoint path; empty uses the demo weights shipped with the package.
    weights: FilePath = ""
    #: "auto" (CUDA when present), "cpu", "cuda", "cuda:1"...
    device: str = "auto"
    concurrency: int = Field(1, ge=1)
    soft_time_limit_s: int = Field(600, gt=0)
    time_limit_s: int = Field(900, gt=0)
    analysis_queue: str = "gpu"
    results_queue: str = "results"
    #: An analysis refreshes its lease (``results/<sop>.lease``) every lease_s / 6; a lease
    #: not refreshed for lease_s means its worker died, and the reconciler re-queues the image.
    #: Each worker's presence file (``workers/<worker>.json``) beats at the same pace; tasks
    #: only dead workers hold are re-queued the same way (docs/FAULTS.md).
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


class DeliverySettings(Section):
    retry_initial_s: float = Field(5.0, gt=0)
    retry_max_s: float = Field(300.0, gt=0)
    #: After this long without Success an item goes to the dead-letter folder.
    deadline_s: float = Field(3600.0, gt=0)
    #: Seconds to wait for a peer to answer before the attempt counts as failed.
    network_timeout_s: float = Field(30.0, gt=0)


class ResultsSettings(Section):
    #: Secondary captures are stored as JPEG baseline of this quality (a display aid: ~0.5 MB
    #: instead of ~7 MB per image); 0 stores them uncompressed RGB. A PACS that refuses JPEG
    #: gets them decompressed at delivery either way.
    sc_jpeg_quality: int = Field(90, ge=0, le=100)
    #: Secondary captures without loss (JPEG-LS lossless, about half the RGB size) instead of
    #: JPEG baseline; delivery decompresses them for a PACS that refuses JPEG-LS.
    sc_lossless: bool = False
