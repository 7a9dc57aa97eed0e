"""Settings that are valid but probably wrong: said by ``config check``, logged by the node and,
for what each uses, by the workers at start.

Valid means the services start; these are the choices a new administrator makes by
accident (every address with DCMTK's default AE titles, one PACS listed twice).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from mammocad.config.settings import CONFIG_ENV_VAR, Destination, OutputKind, Settings
from mammocad.dicom.tls import CertificateDates, certificate_dates

#: A certificate that ends within this many days is warned about: time to get it renewed.
CERTIFICATE_WARNING_DAYS = 30

#: Calling AE titles that test tools send by default: anyone with DCMTK or pynetdicom has them.
DEFAULT_TOOL_AES = frozenset({"STORESCU", "ECHOSCU", "FINDSCU", "MOVESCU", "GETSCU", "ANY-SCP", "PYNETDICOM",
                              "ANY-SCU"})


#: The parts of the configuration whose TLS files a process loads, by who runs it.
NODE_PARTS = frozenset({"node", "destination", "audit"})
#: What a worker loads: the audit trail, and the destinations when it delivers (results queue).
WORKER_PARTS = frozenset({"audit"})
RESULTS_WORKER_PARTS = frozenset({"destination", "audit"})


def warnings(settings: Settings, parts: frozenset[str] = NODE_PARTS) -> list[str]:
    """Every warning for ``settings`` about ``parts``, most serious first.

    ``parts`` names what the caller uses: "node" (its listening address, callers, node.tls),
    "destination" (delivery), "audit". ``config check`` and the node say all of them; a worker
    says those of its own part, on a GPU box with its own configuration file as well, where
    no node ever starts and node.* settings are not its to judge.
    """
    node, delivery = "node" in parts, "destination" in parts
    out = _exposure(settings) if node else []
    out += exposed_keys(settings, parts)
    out += expiring_certificates(settings, parts=parts)
    if delivery:
        out += duplicate_peers(settings.destinations)
    if node and settings.node.require_known_callers and not settings.callers:
        out.append("node.require_known_callers is true and no [[callers]] are listed: every sender is rejected")
    if delivery and not settings.destinations:
        out.append("no [[destinations]]: results are built but sent nowhere")
    if settings.worker.device not in ("auto", "cpu") and not settings.worker.device.startswith("cuda"):
        out.append(f"worker.device {settings.worker.device!r} is not auto, cpu or cuda[:N]")
    out += unknown_environment()
    return out


_PREFIX = "MAMMOCAD_"


def _variables(model: type[BaseModel], prefix: str) -> Iterator[str]:
    """Every ``MAMMOCAD_*`` name that sets a key: ``MAMMOCAD_NODE__PORT``, ``MAMMOCAD_NODE__TLS__PORT``..."""
    for name, field in model.model_fields.items():
        var = f"{prefix}{name.upper()}"
        yield var
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _variables(field.annotation, var + "__")


def unknown_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """``MAMMOCAD_*`` variables that set nothing, e.g. ``MAMMOCAD_BROKER_URL`` (one underscore).

    The environment source reads only names that start with a top-level key and silently
    skips the rest (an unknown key *inside* a section is already an error), so a misspelt
    line in the units' environment file would leave the file's value, or the default, in
    force without a word.
    """
    environ = os.environ if environ is None else environ
    known = set(_variables(Settings, _PREFIX))
    # Spelt without the double underscores, e.g. MAMMOCAD_WORKER_DEVICE -> MAMMOCAD_WORKER__DEVICE.
    by_flat_name = {var.replace("__", "_"): var for var in known}
    sections = {var for var in known if "__" not in var}
    out = []
    for name in sorted(environ):
        var = name.upper()
        if not var.startswith(_PREFIX) or var == CONFIG_ENV_VAR or var.split("__", 1)[0] in sections:
            continue
        hint = by_flat_name.get(var.replace("__", "_"))
        out.append(f"environment variable {name} sets no configuration key and is ignored: "
                   + (f"did you mean {hint}? (a double underscore between section and key)" if hint else
                      "variables are MAMMOCAD_<SECTION>__<KEY> (double underscore), e.g. MAMMOCAD_NODE__PORT"))
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


def _tls_files(settings: Settings, field: str, parts: frozenset[str] = NODE_PARTS) -> Iterator[tuple[str, str]]:
    """``(key name, path)`` of every TLS ``field`` ("private_key", "certificate" or
    "ca_certificates") the services of ``parts`` load; keys left empty are skipped."""
    found = []
    if "node" in parts:
        found.append((f"node.tls.{field}", getattr(settings.node.tls, field) if settings.node.tls.enabled else ""))
    if "destination" in parts:
        found += [(f"destination {dest.name} {field}", getattr(dest, field) if dest.tls else "")
                  for dest in settings.destinations]
    if "audit" in parts:
        found.append((f"audit.{field}", getattr(settings.audit, field)))
    yield from ((key, path) for key, path in found if path)


def exposed_keys(settings: Settings, parts: frozenset[str] = NODE_PARTS) -> list[str]:
    """TLS private keys that every local user can read (or write).

    Loading works all the same, so nothing else says it; but anyone with a shell on the box
    can then copy the key and pass for the node to every PACS and modality that trusts its
    certificate. Group-readable is the intended mode (0640 root:mammocad).
    """
    out = []
    for key, path in _tls_files(settings, "private_key", parts):
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            continue  # a missing file is already a configuration error
        if mode & (stat.S_IROTH | stat.S_IWOTH):
            out.append(f"{key} {path} is {'readable' if mode & stat.S_IROTH else 'writable'} by every user "
                       f"(mode {mode:04o}): anyone on this machine can take the key; "
                       f"`chmod 0640 {path}` and `chown root:mammocad {path}`")
    return out


def expiring_certificates(settings: Settings, now: datetime | None = None,
                          parts: frozenset[str] = NODE_PARTS) -> list[str]:
    """Certificates we present, and CA certificates we trust, that have expired or expire
    within :data:`CERTIFICATE_WARNING_DAYS`.

    OpenSSL loads an expired certificate without a word, so the configuration is valid and
    the services start; then every peer refuses the handshake (callers, the PACS, the audit
    collector), which shows only as failed TLS on the other side. A CA that has run out is
    the same failure seen from our side: nothing it signed verifies any more (callers'
    certificates, the PACS's, the collector's). Each certificate of a file is checked: an
    intermediate CA in a chain file, or one CA of a bundle of several, that ends breaks it too.
    """
    now = now or datetime.now(UTC)
    out = []
    for key, path in _tls_files(settings, "certificate", parts):
        renew = "install a renewed certificate" + _restart(key)
        for index, (end, _) in enumerate(_dates(path)):
            where = path if index == 0 else f"{path} (certificate {index + 1} in the file, its chain)"
            out += _expiry(f"{key} {where}", end, now, "peers {} refuse TLS with it", renew)
    for key, path in _tls_files(settings, "ca_certificates", parts):
        renew = "install the renewed CA certificate" + _restart(key)
        users = _CA_USERS[key.split(".")[0].split(" ")[0]]
        dates = _dates(path)
        for index, (end, name) in enumerate(dates):
            where = path if len(dates) == 1 else \
                f"{path} (certificate {index + 1} in the file, {f'CN={name}' if name else 'no CN'})"
            out += _expiry(f"{key} {where}", end, now, users + " {} no longer verify", renew)
    return out


#: Whose certificates the CA file of each section verifies, for its expiry warning.
_CA_USERS = {"node": "callers' client certificates", "destination": "the peer's certificates",
             "audit": "the audit collector's certificates"}


def _restart(key: str) -> str:
    return " and restart the node (it reads node.tls at start)" if key.startswith("node.") else ""


def _dates(path: str) -> list[CertificateDates]:
    try:
        return certificate_dates(path)
    except (OSError, ValueError):
        return []  # an unusable file is already a configuration error


def _expiry(what: str, end: datetime, now: datetime, effect: str, renew: str) -> list[str]:
    """The warning for one certificate ending at ``end``, or none when it has long to run.

    ``effect`` has a ``{}`` for the tense: "peers {} refuse TLS with it".
    """
    when = f"{end:%Y-%m-%d %H:%M} UTC"
    if end <= now:
        return [f"{what} expired on {when}: {' '.join(effect.format('').split())}; {renew}"]
    if end - now <= timedelta(days=CERTIFICATE_WARNING_DAYS):
        days = (end - now).days
        return [f"{what} expires on {when} (in {days} day{'s' if days != 1 else ''}): "
                f"{effect.format('will')} from then; {renew} before that date"]
    return []


def _addresses(host: str) -> frozenset[str]:
    try:
        return frozenset(str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))
    except socket.gaierror:
        return frozenset({host.lower()})


def duplicate_peers(destinations: list[Destination]) -> list[str]:
    """Two destinations that reach one peer store the results they both receive twice.

    Same AE title, port and address: one peer. Same address and port with another AE title:
    most often one peer too, since many PACS accept any called AE title (Orthanc does unless
    ``DicomCheckCalledAet`` is true). README's Orthanc walkthrough is that case: the template's
    ``pacs`` (PACS@127.0.0.1:4242) kept beside ``orthanc`` (ORTHANC@127.0.0.1:4242). Destinations
    that share no output kind (one gets the SRs, the other the images) are not warned about.
    """
    seen: list[tuple[Destination, frozenset[str]]] = []
    out = []
    for dest in destinations:
        addresses = _addresses(dest.host)
        for first, first_addresses in seen:
            shared = [kind for kind in first.wanted_outputs if kind in dest.wanted_outputs]
            if first.port == dest.port and first_addresses & addresses and shared:
                out.append(_twice(first, dest, shared))
                break
        seen.append((dest, addresses))
    return out


def _twice(first: Destination, second: Destination, shared: list[OutputKind]) -> str:
    every = set(shared) == set(first.wanted_outputs) == set(second.wanted_outputs)
    what = "every result is" if every else f"the {', '.join(k.value for k in shared)} results are"
    remove = f"remove one (`mammocad dest remove {first.name}`)"
    if first.ae_title == second.ae_title:
        return (f"destinations {first.name} and {second.name} are the same peer ({second.ae_title}@{second.host}:"
                f"{second.port}): {what} sent twice; {remove}")
    return (f"destinations {first.name} and {second.name} send to one host and port with different AE titles "
            f"({first.ae_title}@{first.host}:{first.port}, {second.ae_title}@{second.host}:{second.port}): "
            f"a PACS that accepts any called AE title (Orthanc does, unless DicomCheckCalledAet is true) "
            f"answers to both, so {what} stored twice; {remove}, or keep both only if that port really serves "
            "two AEs that each check the called AE title")
