"""Who may talk to the node and how: caller host rules and DICOM TLS settings.

Caller hosts are IP addresses, CIDR ranges or names. Names are resolved when the
configuration is loaded (every address the name has then), so the node compares
addresses, never text: ``localhost`` matches 127.0.0.1 and ::1. A name that does not
resolve is a configuration error, not a silently dead rule.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mammocad.config.paths import FilePath
from mammocad.dicom import tls

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def host_networks(rule: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8"`` / ``"192.0.2.7"`` / ``"pacs.example"`` → the networks it allows.

    ValueError (naming the rule) when it is neither an address, a range nor a name that
    resolves now.
    """
    text = rule.strip()
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"caller host must be an IP address, a CIDR range or a host name, got {rule!r}")
    try:
        return (ipaddress.ip_network(text, strict=False),)
    except ValueError:
        pass
    if "/" in text:
        raise ValueError(f"caller host {rule!r} is not a valid CIDR range (e.g. 10.1.0.0/16)")
    try:
        infos = socket.getaddrinfo(text, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"caller host {rule!r} does not resolve ({exc.strerror}): give an IP address or "
                         "CIDR range, or fix DNS / /etc/hosts; names are resolved when the config is loaded"
                         ) from None
    addresses = sorted({str(info[4][0]).split("%", 1)[0] for info in infos})
    return tuple(ipaddress.ip_network(a) for a in addresses)


def address_in(host: str, networks: tuple[Network, ...]) -> bool:
    """True when the peer address ``host`` lies in one of ``networks`` (IPv4-mapped IPv6 too)."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == net.version and addr in net for net in networks)


def _readable(value: str, key: str) -> str:
    if value and not Path(value).is_file():
        raise ValueError(f"{key}: file not found: {value}")
    return value


class NodeTLSSettings(BaseModel):
    """``[node.tls]``: DICOM TLS on the node (see docs/ADMIN.md, "DICOM TLS")."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = False
    #: 0: TLS replaces plain DICOM on node.port (TLS only). Another port: plain on node.port
    #: and TLS on this one, side by side (2762 is the registered DICOM-TLS port).
    port: int = Field(0, ge=0, le=65535)
    certificate: FilePath = ""
    private_key: FilePath = ""
    #: CA certificates (PEM) that sign the certificates callers present.
    ca_certificates: FilePath = ""
    require_client_certificate: bool = True

    @model_validator(mode="after")
    def _usable(self) -> NodeTLSSettings:
        if not self.enabled:
            return self
        if not self.certificate or not self.private_key:
            raise ValueError("node.tls.enabled needs node.tls.certificate and node.tls.private_key")
        self.server_context()  # loads every file now: `config check` fails as the node would
        return self

    def server_context(self, on_failure: tls.FailureHook | None = None) -> ssl.SSLContext:
        return tls.server_context(certificate=self.certificate, private_key=self.private_key,
                                  ca_certificates=self.ca_certificates,
                                  require_client_certificate=self.require_client_certificate,
                                  on_failure=on_failure)


def check_destination_tls(name: str, enabled: bool, ca_certificates: str, certificate: str,
                          private_key: str, verify_hostname: bool = False) -> None:
    """Refuse TLS keys that would fail at the first delivery (files loaded now)."""
    what = f"destination {name}"
    if not enabled:
        if ca_certificates or certificate or private_key or verify_hostname:
            raise ValueError(f"{what}: ca_certificates/certificate/private_key/verify_hostname are set but tls "
                             "is false; set tls = true or remove them")
        return
    if not ca_certificates:
        raise ValueError(f"{what}: tls = true needs ca_certificates (the CA that signed the peer's certificate)")
    for key, value in (("ca_certificates", ca_certificates), ("certificate", certificate),
                       ("private_key", private_key)):
        _readable(value, f"{what}.{key}")
    tls.client_context(ca_certificates=ca_certificates, certificate=certificate, private_key=private_key,
                       what=what)
