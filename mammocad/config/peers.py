"""The DICOM peers in the config: callers allowed to send images, destinations for results."""

from __future__ import annotations

import ssl

from pydantic import Field, PrivateAttr, field_validator, model_validator

from mammocad.config.base import Section, check_port, validate_ae_title
from mammocad.config.output_kinds import OutputKind
from mammocad.config.paths import FilePath
from mammocad.config.security import Network, address_in, check_destination_tls, host_networks
from mammocad.dicom import tls


class Caller(Section):
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


class Destination(Section):
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
    ca_certificates: FilePath = ""
    certificate: FilePath = ""
    private_key: FilePath = ""
    #: With ``tls``: the peer's certificate must name ``host`` (DNS name or IP address) in its
    #: subjectAltName. Off by default, as in DCMTK: PACS certificates often do not name the
    #: address we use, and the CA file alone decides trust (any certificate it signed passes).
    verify_hostname: bool = False

    _ae = field_validator("ae_title")(classmethod(lambda cls, v: validate_ae_title(v)))
    _port = field_validator("port")(classmethod(lambda cls, v: check_port(v)))

    @field_validator("outputs")
    @classmethod
    def _some_outputs(cls, outputs: list[OutputKind]) -> list[OutputKind]:
        # `dest add` refuses an empty list; written by hand it loaded, and the destination
        # silently received nothing while `dest list` showed it configured.
        if not outputs:
            kinds = ", ".join(k.value for k in OutputKind)
            raise ValueError(f"outputs must name at least one of {kinds} (an empty list sends this destination "
                             "nothing); leave outputs out for all of them, or remove the destination")
        return outputs

    @model_validator(mode="after")
    def _tls(self) -> Destination:
        check_destination_tls(self.name, self.tls, self.ca_certificates, self.certificate, self.private_key,
                              self.verify_hostname)
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
                                  private_key=self.private_key, verify_hostname=self.verify_hostname,
                                  what=f"destination {self.name}")
