"""Settings that are valid but probably wrong: said by ``config check`` and logged by the node.

Valid means the services start; these are the choices a new administrator makes by
accident (every address with DCMTK's default AE titles, one PACS listed twice).
"""

from __future__ import annotations

import ipaddress
import socket

from mammocad.config.settings import Destination, Settings

#: Calling AE titles that test tools send by default: anyone with DCMTK or pynetdicom has them.
DEFAULT_TOOL_AES = frozenset({"STORESCU", "ECHOSCU", "FINDSCU", "MOVESCU", "GETSCU", "ANY-SCP", "PYNETDICOM",
                              "ANY-SCU"})


def warnings(settings: Settings) -> list[str]:
    """Every warning for ``settings``, most serious first."""
    out = _exposure(settings)
    out += duplicate_peers(settings.destinations)
    if settings.node.require_known_callers and not settings.callers:
        out.append("node.require_known_callers is true and no [[callers]] are listed: every sender is rejected")
    if not settings.destinations:
        out.append("no [[destinations]]: results are built but sent nowhere")
    if settings.worker.device not in ("auto", "cpu") and not settings.worker.device.startswith("cuda"):
        out.append(f"worker.device {settings.worker.device!r} is not auto, cpu or cuda[:N]")
    return out


def _all_addresses(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return host in ("", "*")


def _exposure(settings: Settings) -> list[str]:
    node = settings.node
    if not _all_addresses(node.host):
        return []
    out = []
    if not node.require_known_callers:
        out.append(f"node.host {node.host} listens on every address and node.require_known_callers is false: "
                   f"ANY machine that can reach port {node.port} can send images; list [[callers]] and set it true")
    open_defaults = sorted(c.ae_title for c in settings.callers if c.ae_title in DEFAULT_TOOL_AES and c.host is None)
    if open_defaults:
        out.append(f"node.host {node.host} listens on every address and accepts the default test-tool AE "
                   f"title(s) {', '.join(open_defaults)} from any host: anyone with DCMTK can send images; "
                   "remove them (`mammocad aet remove STORESCU`) or pin them with host = ...")
    return out


def _addresses(host: str) -> frozenset[str]:
    try:
        return frozenset(str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))
    except socket.gaierror:
        return frozenset({host.lower()})


def duplicate_peers(destinations: list[Destination]) -> list[str]:
    """Two destinations that are one peer (same AE title, port and address) get every result twice."""
    seen: dict[tuple[str, int, frozenset[str]], str] = {}
    out = []
    for dest in destinations:
        addresses = _addresses(dest.host)
        for (ae, port, addrs), name in seen.items():
            if ae == dest.ae_title and port == dest.port and addrs & addresses:
                out.append(f"destinations {name} and {dest.name} are the same peer ({dest.ae_title}@{dest.host}:"
                           f"{dest.port}): every result is sent twice; remove one (`mammocad dest remove {name}`)")
                break
        else:
            seen[(dest.ae_title, dest.port, addresses)] = dest.name
    return out
