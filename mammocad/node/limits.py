"""Connections that never become associations must not lock real senders out.

pynetdicom counts every acceptor thread against ``maximum_associations``, including
connections that have not (yet) sent a complete A-ASSOCIATE-RQ: 16 sockets that send
20 bytes and stall, or 16 port-scan probes, used to fill the node. So:

- pynetdicom's own limit is raised to a hard cap on *connections* (:func:`connection_cap`);
- ``node.max_associations`` is enforced by the node on *associations* — peers that sent
  a whole A-ASSOCIATE-RQ (:func:`negotiated`, checked in the A-ASSOCIATE handler);
- a connection must send its A-ASSOCIATE-RQ within ``node.association_timeout_s`` (ARTIM),
  and a PDU may not stall for longer than ``node.network_timeout_s`` (socket read
  timeout), so stalled and half-open connections free their thread.
"""

from __future__ import annotations

from typing import Any

#: Connections beyond ``node.max_associations`` allowed to be negotiating at once.
EXTRA_CONNECTIONS = 64


def connection_cap(max_associations: int) -> int:
    """pynetdicom's ``maximum_associations``: room for stalled connections next to real ones."""
    return max_associations + EXTRA_CONNECTIONS


def negotiated(ae: Any, current: Any) -> int:
    """Acceptor associations other than ``current`` whose peer sent a complete A-ASSOCIATE-RQ."""
    return sum(1 for assoc in ae.active_associations
               if assoc is not current and assoc.is_acceptor and assoc.is_alive()
               and not (assoc.is_released or assoc.is_aborted or assoc.is_rejected)
               and assoc.requestor.primitive is not None)


def reject_busy(assoc: Any) -> None:
    """A-ASSOCIATE-RJ: rejected-transient, service-provider (presentation), local-limit-exceeded."""
    assoc.acse.send_reject(0x02, 0x03, 0x02)
    assoc.kill()


def read_timeout(seconds: float) -> Any:
    """An ``EVT_CONN_OPEN`` handler giving each accepted socket a read timeout.

    pynetdicom sets ``network_timeout`` on the listening socket only, and Python makes
    accepted sockets blocking: a peer that stalls inside a PDU would hold its thread
    forever. With the timeout, the stalled read fails and pynetdicom closes the connection.
    """

    def handler(event: Any) -> None:
        sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
        if sock is not None:
            sock.settimeout(seconds)

    return handler
