"""The one place where mammocad builds pynetdicom AEs and opens associations.

The node (Storage and Verification SCP), delivery (Storage SCU) and ``mammocad dest echo``
(Verification SCU) all get their AE here, so presentation contexts, PDU sizes and
timeouts are set the same way everywhere, and a transport option (TLS) is added once.
Callers pass plain values, not settings, so this module stays below the config.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext, build_context

from mammocad.dicom.sop_classes import TRANSFER_SYNTAXES, VERIFICATION, storage_sop_classes

#: pynetdicom's default largest PDU we accept (bytes) when a caller does not say.
DEFAULT_MAX_PDU = 16382


class Peer(Protocol):
    """Where an SCU connects: a configured destination has these three fields."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def ae_title(self) -> str: ...


def storage_scp(ae_title: str, *, max_pdu_size: int, max_associations: int,
                sop_classes: Iterable[str] | None = None,
                transfer_syntaxes: Sequence[str] = TRANSFER_SYNTAXES,
                acse_timeout: float = 30.0, network_timeout: float = 60.0) -> AE:
    """The node's AE: Verification plus every storage SOP class in ``transfer_syntaxes``.

    Associations must name ``ae_title`` as the called AE (checked again by the node's
    own A-ASSOCIATE handler, which also answers the rejection). ``acse_timeout`` bounds
    the wait for a connection's A-ASSOCIATE-RQ (ARTIM), ``network_timeout`` any silence
    on the socket, including inside a PDU.
    """
    ae = AE(ae_title=ae_title)
    ae.require_called_aet = True
    ae.maximum_pdu_size = max_pdu_size
    ae.maximum_associations = max_associations
    ae.acse_timeout = acse_timeout
    ae.network_timeout = network_timeout
    ae.add_supported_context(VERIFICATION)
    for sop_class in (storage_sop_classes() if sop_classes is None else sop_classes):
        ae.add_supported_context(sop_class, list(transfer_syntaxes))
    return ae


def serve(ae: AE, host: str, port: int, handlers: list[evt.EventHandlerType],
          ssl_context: ssl.SSLContext | None = None) -> Any:
    """Start ``ae`` listening on (host, port) without blocking; returns pynetdicom's server.

    With ``ssl_context`` (:func:`mammocad.dicom.tls.server_context`) every connection must
    complete a TLS handshake first. One AE may serve a plain and a TLS port side by side.
    """
    return ae.start_server((host, port), block=False, evt_handlers=handlers, ssl_context=ssl_context)


def scu(calling_ae: str, *, timeout_s: float, contexts: Sequence[PresentationContext]) -> AE:
    """An SCU AE proposing ``contexts``; every network wait is bounded by ``timeout_s``
    (TCP connect, association negotiation, DIMSE answers, silence on the socket)."""
    ae = AE(ae_title=calling_ae)
    ae.requested_contexts = list(contexts)
    ae.connection_timeout = timeout_s
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    return ae


def verification_scu(calling_ae: str, *, timeout_s: float) -> AE:
    """An SCU AE for C-ECHO only."""
    return scu(calling_ae, timeout_s=timeout_s, contexts=[build_context(VERIFICATION)])


def associate(ae: AE, peer: Peer, *, evt_handlers: list[evt.EventHandlerType] | None = None,
              tls: ssl.SSLContext | None = None) -> Association:
    """Request an association with ``peer`` (over TLS with ``tls``, from
    :func:`mammocad.dicom.tls.client_context`); check ``is_established`` on the result."""
    return ae.associate(peer.host, peer.port, ae_title=peer.ae_title, max_pdu=DEFAULT_MAX_PDU,
                        evt_handlers=evt_handlers, tls_args=(tls, peer.host) if tls is not None else None)
