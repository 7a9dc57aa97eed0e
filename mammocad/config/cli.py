"""CLI for admins: ``mammocad aet|dest|config``.

Thin wrappers over :mod:`mammocad.config.editing` and :mod:`mammocad.config.echo`.
Edits change the file only: the running node re-reads callers, and results workers re-read
destinations, on their own (:mod:`mammocad.config.watch`); the CLI says so after each edit.
Exit status: 0 success, 1 the operation failed (refused edit, audit record that cannot be
written, failed echo), 2 (:data:`EXIT_INVALID_CONFIG`) invalid configuration, as in every other
command, or a bad command line (argparse).
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomlkit

from mammocad.config import advice, editing
from mammocad.config.sections import redact_url
from mammocad.config.settings import (
    EXIT_INVALID_CONFIG,
    ConfigError,
    Destination,
    OutputKind,
    Settings,
    load_settings,
    resolve_config_path,
    settings_for_command,
    validate_config_data,
)

_NO_RESTART = "a running node picks this up at the next association, no restart needed"
#: Results workers re-read destinations at their next task (config/watch.py); other machines
#: have their own copy of the file.
_DEST_RESTART = ("results workers pick the change up at their next task, no restart needed "
                 "(workers on other machines read their own copy of the file)")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    _register_aet(subparsers)
    _register_dest(subparsers)
    _register_config(subparsers)


def _register_aet(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    aet = subparsers.add_parser("aet", help="list/add/remove AE titles allowed to send images (callers)",
                                description="Manage [[callers]]: the AEs allowed to send images to the node.")
    sub = aet.add_subparsers(dest="aet_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="show the allowed callers").set_defaults(handler=_aet_list)
    add = sub.add_parser("add", help="allow an AE title (optionally only from one host)")
    add.add_argument("ae_title", metavar="AE", help="calling AE title of the sender (1-16 characters)")
    add.add_argument("--host", help="only accept this AE from this IP address, CIDR range (10.1.0.0/16) "
                                    "or host name (resolved when the config is loaded)")
    add.add_argument("--certificate-subject", metavar="SUBJECT",
                     help="only accept this AE over DICOM TLS with a client certificate whose subject "
                          "holds these attributes, e.g. 'CN=pacs.example, O=Hospital'")
    add.set_defaults(handler=_aet_add)
    rm = sub.add_parser("remove", help="stop accepting an AE title")
    rm.add_argument("ae_title", metavar="AE")
    rm.add_argument("--host", help="remove only the entry pinned to this host")
    rm.set_defaults(handler=_aet_remove)


def _register_dest(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dest = subparsers.add_parser("dest", help="list/add/remove/echo result destinations (PACS)",
                                 description="Manage [[destinations]]: DICOM peers that receive results.")
    sub = dest.add_subparsers(dest="dest_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="show the destinations").set_defaults(handler=_dest_list)
    add = sub.add_parser("add", help="add a destination")
    add.add_argument("name", metavar="NAME", help="short name: letters, digits, '.', '_', '-'")
    add.add_argument("--ae", required=True, dest="ae_title", metavar="AE", help="the peer's (called) AE title")
    add.add_argument("--host", required=True, help="the peer's host name or IP address")
    add.add_argument("--port", required=True, type=int, help="the peer's DICOM port")
    kinds = ",".join(k.value for k in OutputKind)
    add.add_argument("--outputs", type=_output_list, default=None, metavar="KINDS",
                     help=f"comma-separated result kinds to send (default: all: {kinds})")
    add.add_argument("--associations", type=int, default=None, metavar="N",
                     help="concurrent associations per delivery (default 4; 1 for a PACS that allows only one)")
    add.add_argument("--tls", action="store_true", help="send over DICOM TLS (needs --ca-certificates)")
    add.add_argument("--ca-certificates", metavar="PEM", help="CA file that signed the peer's certificate")
    add.add_argument("--certificate", metavar="PEM", help="our client certificate, when the peer asks for one")
    add.add_argument("--private-key", metavar="PEM", help="the client certificate's private key")
    add.add_argument("--verify-hostname", action="store_true",
                     help="with --tls: refuse a peer certificate whose subjectAltName does not name --host")
    add.set_defaults(handler=_dest_add)
    rm = sub.add_parser("remove", help="remove a destination (items already queued stay in the outbox)")
    rm.add_argument("name", metavar="NAME")
    rm.set_defaults(handler=_dest_remove)
    echo = sub.add_parser("echo", help="C-ECHO a destination (as node.ae_title) and report why it fails")
    echo.add_argument("name", metavar="NAME")
    echo.add_argument("--timeout", type=float, default=None,
                      help="seconds to wait at each step (default: delivery.network_timeout_s)")
    echo.set_defaults(handler=_dest_echo)


def _register_config(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    config = subparsers.add_parser("config", help="check or show the configuration")
    sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    sub.add_parser("check", help="validate the file plus environment and print a summary"
                   ).set_defaults(handler=_config_check)
    sub.add_parser("show", help="print the effective settings (file + MAMMOCAD_* environment) as TOML"
                   ).set_defaults(handler=_config_show)


def _output_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _fail(message: str) -> int:
    print(f"mammocad: {message}", file=sys.stderr)
    return 1



# --------------------------------------------------------------------------- aet


def _aet_list(args: argparse.Namespace) -> int:
    settings = settings_for_command(getattr(args, "config", None))
    if settings is None:
        return EXIT_INVALID_CONFIG
    if not settings.callers:
        print("no callers configured" + (" (node.require_known_callers is true: every sender is rejected)"
                                          if settings.node.require_known_callers else ""))
        return 0
    print(f"{'AE TITLE':<16}  {'HOST':<24}  CERTIFICATE SUBJECT")
    for caller in settings.callers:
        print(f"{caller.ae_title:<16}  {caller.host or '(any host)':<24}  {caller.certificate_subject or '-'}")
    if not settings.node.require_known_callers:
        print("note: node.require_known_callers is false: any AE may send, this list is not enforced")
    return 0


def _edit(args: argparse.Namespace, section: str, edit: Callable[..., object], *edit_args: object) -> Path | int:
    """Apply one edit to the config file; the exit status (the error already printed) when it
    was refused: :data:`EXIT_INVALID_CONFIG` when the configuration was invalid before the edit
    (nothing the command's arguments can fix), 1 when the edit itself was refused.

    Every attempt is audited (who, which command, the section before and after) when the
    file's ``[audit]`` section says where to (mammocad/audit/oneshot.py). An admin whose
    record cannot be written is refused before the file changes: callers and destinations
    are the node's access control and where patient data goes, never edited unaudited.
    """
    from mammocad.audit.oneshot import AuditUnavailable, check, config_section, record_config_change

    path = resolve_config_path(args.config)
    before = config_section(path, section)
    try:
        current: Settings | None = load_settings(args.config)
    except ConfigError:  # the edit says what is wrong with the file, and refuses it
        current = None
    try:
        if current is not None:
            check(current, f"{path} was not changed")
        try:
            settings = edit(path, *edit_args)
        except ConfigError as exc:
            _fail(str(exc))
            record_config_change(current, path, section, before, before, error=str(exc).splitlines()[0])
            return EXIT_INVALID_CONFIG if _unusable_before(path) else 1
        record_config_change(settings if isinstance(settings, Settings) else None, path, section, before,
                             config_section(path, section))
    except AuditUnavailable as exc:
        return _fail(str(exc))
    return path


def _unusable_before(path: Path) -> bool:
    """True when the file as it stands cannot be used (unreadable, not TOML, a key invalid), so
    a refused edit is an invalid configuration rather than bad arguments. The file alone, as
    the edit validates it: a bad ``MAMMOCAD_*`` variable does not turn a bad edit into one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False  # the edit creates it from the template
    except (OSError, UnicodeDecodeError):
        return True
    try:
        validate_config_data(tomllib.loads(text), path)
    except (tomllib.TOMLDecodeError, ConfigError):
        return True
    return False


def _aet_add(args: argparse.Namespace) -> int:
    path = _edit(args, "callers", editing.add_caller, args.ae_title, args.host, args.certificate_subject)
    if isinstance(path, int):
        return path
    where = f" from {args.host}" if args.host else " from any host"
    print(f"added caller {args.ae_title.strip()}{where} to {path}; {_NO_RESTART}")
    return 0


def _aet_remove(args: argparse.Namespace) -> int:
    path = _edit(args, "callers", editing.remove_caller, args.ae_title, args.host)
    if isinstance(path, int):
        return path
    print(f"removed caller {args.ae_title.strip()} from {path}; {_NO_RESTART}")
    return 0


# --------------------------------------------------------------------------- dest


def _dest_list(args: argparse.Namespace) -> int:
    """One line per destination, with its TLS settings: whether a PACS certificate must name
    the host (verify_hostname) and which CA file decides trust are what an admin checks when
    a delivery is refused, or when a hospital-wide CA signs other machines too."""
    settings = settings_for_command(getattr(args, "config", None))
    if settings is None:
        return EXIT_INVALID_CONFIG
    if not settings.destinations:
        print("no destinations configured: results are built but sent nowhere")
        return 0
    print(f"{'NAME':<16}  {'AE TITLE':<16}  {'ADDRESS':<22}  {'TLS':<3}  {'VERIFY HOSTNAME':<15}  "
          f"{'OUTPUTS':<33}  CA CERTIFICATES")
    for d in settings.destinations:
        outputs = ",".join(k.value for k in d.outputs)
        verify = ("yes" if d.verify_hostname else "no") if d.tls else "-"
        print(f"{d.name:<16}  {d.ae_title:<16}  {f'{d.host}:{d.port}':<22}  {'on' if d.tls else 'off':<3}  "
              f"{verify:<15}  {outputs:<33}  {d.ca_certificates or '-'}")
    return 0


def _dest_add(args: argparse.Namespace) -> int:
    tls = None
    if args.tls or args.ca_certificates or args.certificate or args.private_key or args.verify_hostname:
        # Absolute paths: the services do not run from the admin's folder. abspath, not
        # resolve(): a symlink such as certbot's live/ folder must stay, so renewals apply.
        tls = {key: os.path.abspath(value) if value else ""
               for key, value in (("ca_certificates", args.ca_certificates), ("certificate", args.certificate),
                                  ("private_key", args.private_key))}
    path = _edit(args, "destinations", editing.add_destination, args.name, args.ae_title, args.host, args.port,
                 args.outputs, args.associations, tls, args.verify_hostname)
    if isinstance(path, int):
        return path
    print(f"added destination {args.name} ({args.ae_title}@{args.host}:{args.port}) to {path}; {_DEST_RESTART}")
    print(f"test it with: mammocad dest echo {args.name}")
    return 0


def _dest_remove(args: argparse.Namespace) -> int:
    path = _edit(args, "destinations", editing.remove_destination, args.name)
    if isinstance(path, int):
        return path
    print(f"removed destination {args.name} from {path}; {_DEST_RESTART}")
    return 0


def _dest_echo(args: argparse.Namespace) -> int:
    from mammocad.config.echo import echo  # pynetdicom import only when needed

    settings = settings_for_command(getattr(args, "config", None))
    if settings is None:
        return EXIT_INVALID_CONFIG
    try:
        dest = settings.destination(args.name)
    except KeyError as exc:
        return _fail(str(exc.args[0]))
    timeout = args.timeout if args.timeout is not None else settings.delivery.network_timeout_s
    result = echo(dest, settings.node.ae_title, timeout)
    if result.ok:
        print(f"{result.message} (calling AE {settings.node.ae_title})")
        return 0
    return _fail(f"echo {args.name} failed [{result.kind}]: {result.message} "
                 f"(calling AE {settings.node.ae_title})")


# --------------------------------------------------------------------------- config


def _config_check(args: argparse.Namespace) -> int:
    path = resolve_config_path(args.config)
    settings = settings_for_command(getattr(args, "config", None))
    if settings is None:
        return EXIT_INVALID_CONFIG
    source = str(path) if path.exists() else f"built-in defaults ({path} not found)"
    node = settings.node
    print(f"configuration OK: {source}")
    print(f"node: AE {node.ae_title} on {node.host}:{node.port}, spool {node.spool_dir}")
    if node.tls.enabled:
        plain = "TLS only" if node.tls.port in (0, node.port) else f"plain on {node.port}, TLS on {node.tls.port}"
        print(f"node TLS: {plain}; client certificates "
              f"{'required' if node.tls.require_client_certificate else 'optional'}")
    callers = ", ".join(f"{c.ae_title}@{c.host}" if c.host else c.ae_title for c in settings.callers)
    print(f"callers ({len(settings.callers)}): {callers or 'none'}"
          + ("" if node.require_known_callers else " (not enforced: require_known_callers = false)"))
    dests = ", ".join(f"{d.name}={d.ae_title}@{d.host}:{d.port}{_tls_note(d)}" for d in settings.destinations)
    print(f"destinations ({len(settings.destinations)}): {dests or 'none'}")
    broker = _redact(settings.broker.url) if settings.broker.url else "private redis-server started by `mammocad serve`"
    print(f"broker: {broker}")
    audit = [f"file {settings.audit.file}"] if settings.audit.file else []
    audit += [f"syslog {settings.audit.syslog}"] if settings.audit.syslog else []
    print(f"audit trail: {', '.join(audit) or 'off (set [audit] file and/or syslog)'}")
    m = settings.metrics
    ports = [f"node {m.host}:{m.port}"] if m.port else []
    ports += [f"workers {m.host}:{m.worker_port} (results), {m.worker_port + 1} (analysis)"] if m.worker_port else []
    print(f"metrics: {'; '.join(ports) or 'off'}")
    for warning in advice.warnings(settings):
        print(f"warning: {warning}")
    return 0


def _tls_note(dest: Destination) -> str:
    if not dest.tls:
        return ""
    return " (TLS, hostname verified)" if dest.verify_hostname else " (TLS)"


def _redact(url: str) -> str:
    """Hide a password in redis://:secret@host URLs before printing."""
    return redact_url(url)


def _config_show(args: argparse.Namespace) -> int:
    settings = settings_for_command(getattr(args, "config", None))
    if settings is None:
        return EXIT_INVALID_CONFIG
    data = _drop_none(settings.model_dump(mode="json"))
    if data["broker"]["url"]:
        data["broker"]["url"] = _redact(data["broker"]["url"])
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"effective settings: {resolve_config_path(args.config)} + MAMMOCAD_* environment"))
    doc.add(tomlkit.comment("passwords in broker.url are shown as ***"))
    for key, value in data.items():
        if not isinstance(value, dict | list):
            doc.add(key, value)
    for key, value in data.items():
        if isinstance(value, dict):
            doc.add(key, value)
    for key, value in data.items():
        if isinstance(value, list):
            aot = tomlkit.aot()
            for item in value:
                aot.append(tomlkit.item(item))
            doc.add(key, aot)
    sys.stdout.write(tomlkit.dumps(doc))
    return 0


def _drop_none(value: Any) -> Any:
    """TOML has no null: an unset optional key (caller.host) is simply left out."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value
