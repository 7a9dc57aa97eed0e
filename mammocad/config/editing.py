"""Edit the TOML config file in place for ``mammocad aet`` / ``mammocad dest``.

The file is the admin's document: comments, order and spacing must survive an edit,
so it is edited with tomlkit rather than re-serialised. Every edit is validated with
the typed settings *before* it is written, and written atomically (temp file, fsync,
rename in the same folder, folder fsync), so a running node that re-reads the file
sees either the old or the new version, never a half-written or invalid one.

tomlkit stores a comment written above ``[[callers]]`` number N+1 at the end of
table N, so adding or removing array-of-tables entries moves that trailing trivia
along with the position it visually belongs to (see :func:`_pop_trailing`).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Comment, Item, Table, Whitespace
from tomlkit.toml_document import TOMLDocument

from mammocad.config.security import host_networks
from mammocad.config.settings import (
    ConfigError,
    OutputKind,
    Settings,
    validate_ae_title,
    validate_config_data,
)
from mammocad.config.template import TEMPLATE

__all__ = [
    "EditError",
    "TEMPLATE",
    "add_caller",
    "add_destination",
    "remove_caller",
    "remove_destination",
]

_SECTION_HEADINGS = {
    "callers": "AEs allowed to send images (`mammocad aet add AE [--host H]`).",
    "destinations": "Where results are sent (`mammocad dest add NAME --ae AE --host H --port P`).",
}


class EditError(ConfigError):
    """An edit was refused (duplicate, unknown name, invalid value); the file is untouched."""


# --------------------------------------------------------------------------- public API


def add_caller(path: str | os.PathLike[str], ae_title: str, host: str | None = None,
               certificate_subject: str | None = None) -> Settings:
    """Allow ``ae_title`` (optionally only from ``host``: IP, CIDR or name; and only with a
    TLS client certificate whose subject holds ``certificate_subject``) to send images."""
    ae = _checked_ae(ae_title, "caller AE title")
    host = _checked_host(host)
    if host is not None:
        try:
            host_networks(host)
        except ValueError as exc:
            raise EditError(str(exc)) from exc

    def mutate(doc: TOMLDocument) -> None:
        for entry in _entries(doc, "callers"):
            if str(entry.get("ae_title", "")).strip() == ae and entry.get("host") == host:
                where = f" from host {host}" if host else ""
                raise EditError(f"caller {ae!r}{where} is already listed in {path}; nothing changed")
        fields: dict[str, Any] = {"ae_title": ae}
        if host:
            fields["host"] = host
        if certificate_subject:
            fields["certificate_subject"] = certificate_subject.strip()
        _append_entry(doc, "callers", fields)

    return _edit(Path(path), mutate, create=True)


def remove_caller(path: str | os.PathLike[str], ae_title: str, host: str | None = None) -> Settings:
    """Stop accepting images from ``ae_title`` (every listed host, or only ``host``)."""
    ae = _checked_ae(ae_title, "caller AE title")

    def mutate(doc: TOMLDocument) -> None:
        entries = _entries(doc, "callers")
        hits = [
            i for i, e in enumerate(entries)
            if str(e.get("ae_title", "")).strip() == ae and (host is None or e.get("host") == host)
        ]
        if not hits:
            known = ", ".join(sorted({str(e.get("ae_title")) for e in entries})) or "none"
            raise EditError(f"no caller {ae!r} in {path} (listed: {known}); nothing changed")
        _remove_entries(doc, "callers", hits)

    return _edit(Path(path), mutate, create=False)


def add_destination(
    path: str | os.PathLike[str],
    name: str,
    ae_title: str,
    host: str,
    port: int,
    outputs: list[str] | list[OutputKind] | None = None,
    associations: int | None = None,
    tls: dict[str, str] | None = None,
    verify_hostname: bool = False,
) -> Settings:
    """Add a DICOM peer that receives results; ``outputs`` None means every kind.

    ``associations`` None leaves the setting out of the file (the default applies).
    ``tls`` (``ca_certificates``, optional ``certificate`` and ``private_key``) turns on DICOM TLS;
    ``verify_hostname`` (with ``tls``) requires the peer's certificate to name ``host``.
    """
    ae = _checked_ae(ae_title, "destination AE title")
    host = _checked_host(host) or ""
    if not host:
        raise EditError("destination host must not be empty: give the peer's name or IP address")
    kinds = _checked_outputs(outputs)

    def mutate(doc: TOMLDocument) -> None:
        if any(e.get("name") == name for e in _entries(doc, "destinations")):
            raise EditError(
                f"destination {name!r} already exists in {path}; remove it first "
                f"(`mammocad dest remove {name}`) to change it"
            )
        entry: dict[str, Any] = {"name": name, "ae_title": ae, "host": host, "port": int(port), "outputs": kinds}
        if associations is not None:
            entry["associations"] = int(associations)
        if tls is not None:
            entry["tls"] = True
            entry.update({k: v for k, v in tls.items() if v})
        if verify_hostname:
            entry["verify_hostname"] = True  # without tls the load refuses it, naming the key
        _append_entry(doc, "destinations", entry)

    return _edit(Path(path), mutate, create=True)


def remove_destination(path: str | os.PathLike[str], name: str) -> Settings:
    """Stop sending results to destination ``name`` (queued items stay in the outbox)."""

    def mutate(doc: TOMLDocument) -> None:
        entries = _entries(doc, "destinations")
        hits = [i for i, e in enumerate(entries) if e.get("name") == name]
        if not hits:
            known = ", ".join(str(e.get("name")) for e in entries) or "none"
            raise EditError(f"no destination named {name!r} in {path} (configured: {known}); nothing changed")
        _remove_entries(doc, "destinations", hits)

    return _edit(Path(path), mutate, create=False)


# --------------------------------------------------------------------------- argument checks


def _checked_ae(value: str, what: str) -> str:
    try:
        return validate_ae_title(value)
    except ValueError as exc:
        raise EditError(f"{what}: {exc}") from exc


def _checked_host(host: str | None) -> str | None:
    if host is None:
        return None
    host = host.strip()
    if any(c.isspace() for c in host):
        raise EditError(f"host must be a name or an IP address without spaces, got {host!r}")
    return host or None


def _checked_outputs(outputs: list[str] | list[OutputKind] | None) -> list[str]:
    if outputs is None:
        return [k.value for k in OutputKind]
    kinds: list[str] = []
    for raw in outputs:
        value = raw.value if isinstance(raw, OutputKind) else str(raw).strip()
        try:
            kinds.append(OutputKind(value).value)
        except ValueError:
            allowed = ", ".join(k.value for k in OutputKind)
            raise EditError(f"unknown output kind {value!r}; choose from: {allowed}") from None
    if not kinds:
        raise EditError("a destination needs at least one output kind")
    return list(dict.fromkeys(kinds))


# --------------------------------------------------------------------------- read, validate, write


def _edit(path: Path, mutate: Callable[[TOMLDocument], None], create: bool) -> Settings:
    """Parse, apply ``mutate``, validate, then write atomically; return the new settings.

    A lock on the folder serialises concurrent admins; the rename keeps readers safe.
    Nothing is written when ``mutate`` or the validation raises. A file or folder this user
    may not read or write (an admin without sudo on /etc/mammocad) is an :class:`EditError`
    saying so, not a traceback.
    """
    try:
        return _edit_locked(path, mutate, create)
    except IsADirectoryError:
        raise EditError(f"configuration file {path} is a folder: give the file, e.g. "
                        f"--config {path / 'mammocad.toml'}; nothing changed") from None
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
        raise EditError(f"cannot edit configuration file {path}: {exc.strerror or exc}{where}; run the command "
                        "as a user who may read the file and write its folder (the edit replaces the file), "
                        "e.g. with sudo; nothing changed") from exc


def _edit_locked(path: Path, mutate: Callable[[TOMLDocument], None], create: bool) -> Settings:
    if not path.exists() and not create:
        raise EditError(f"configuration file {path} does not exist; nothing to remove")
    folder = path.resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        text = path.read_text(encoding="utf-8") if path.exists() else TEMPLATE
        try:
            doc = tomlkit.parse(text)
        except TOMLKitError as exc:
            raise EditError(f"{path} is not valid TOML ({exc}); fix it by hand first") from exc
        mutate(doc)
        new_text = tomlkit.dumps(doc)
        try:
            settings = validate_config_data(tomlkit.loads(new_text).unwrap(), path)
        except ConfigError as exc:
            raise EditError(f"edit refused, {path} left unchanged:\n{exc}") from exc
        _atomic_write(path, new_text)
        return settings
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)


#: Mode of a configuration file the CLI creates: what deploy/README.md installs
#: (``install -m 0664``): group members (the admins of group mammocad) may edit it, the services
#: read it; it holds no secret (the broker password is in the environment file, 0640). Set
#: with fchmod, so the admin's umask does not change it.
NEW_FILE_MODE = 0o664


def _atomic_write(path: Path, text: str) -> None:
    # Through a symlink the real file is replaced and the link stays a link (config
    # management often links /etc/mammocad.toml to a versioned file).
    path = path.resolve()
    folder = path.parent
    old = path.stat() if path.exists() else None
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), old.st_mode & 0o7777 if old else NEW_FILE_MODE)
            # A new file takes its folder's group, as in deploy's setgid /etc/mammocad (2775
            # root:mammocad) even where the folder lacks the setgid bit.
            _keep_owner(fh.fileno(), old if old is not None else _group_only(folder))
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _keep_owner(fd: int, old: os.stat_result | tuple[int, int]) -> None:
    """Keep the file's owner and group (root can; a group member can keep the group),
    so an admin's edit does not take the file away from the service that reads it.
    ``old`` is the replaced file's stat, or ``(uid, gid)`` (uid -1: keep the creator)."""
    old_uid, old_gid = (old.st_uid, old.st_gid) if isinstance(old, os.stat_result) else old
    for uid in (old_uid, -1):
        try:
            os.fchown(fd, uid, old_gid)
            return
        except PermissionError:
            continue


def _group_only(folder: Path) -> tuple[int, int]:
    """The creator as owner, the folder's group as group."""
    return -1, folder.stat().st_gid


# --------------------------------------------------------------------------- array-of-tables surgery


def _entries(doc: TOMLDocument, key: str) -> list[Table]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, AoT):
        raise EditError(
            f"{key} must be written as [[{key}]] tables to be edited by mammocad; "
            f"found {type(value).__name__}: edit it by hand"
        )
    return list(value)


def _pop_trailing(body: list[tuple[Any, Item]]) -> list[tuple[Any, Item]]:
    """Remove and return the comments/blank lines ending a table body.

    They are what the reader sees *above the next table*, so they move with that position.
    Only key-less items at the end are taken, so tomlkit's key index stays valid.
    """
    i = len(body)
    while i > 0 and body[i - 1][0] is None and isinstance(body[i - 1][1], (Whitespace, Comment)):
        i -= 1
    tail = body[i:]
    del body[i:]
    return tail


def _body(table: Table) -> list[tuple[Any, Item]]:
    container: Container = table.value
    return container.body


def _append_entry(doc: TOMLDocument, key: str, fields: dict[str, Any]) -> None:
    table = tomlkit.table()
    for name, value in fields.items():
        table.add(name, value)
    aot = doc.get(key)
    if aot is None:
        doc.add(tomlkit.nl())
        doc.add(tomlkit.comment(_SECTION_HEADINGS[key]))
        doc.add(key, tomlkit.aot())
        aot = doc[key]
    else:
        last_body = _body(aot[-1])
        tail = _pop_trailing(last_body)
        last_body.append((None, Whitespace("\n")))
        _body(table).extend(tail)
    aot.append(table)


def _remove_entries(doc: TOMLDocument, key: str, indexes: list[int]) -> None:
    aot = doc[key]
    for i in sorted(indexes, reverse=True):
        tail = _pop_trailing(_body(aot[i]))
        if i > 0:
            # Table i's tail is the heading of table i+1 (or of the next section): it now
            # follows table i-1, replacing the separator that introduced table i.
            prev = _body(aot[i - 1])
            _pop_trailing(prev)
            prev.extend(tail)
        elif len(aot) == 1:
            _drop_empty_aot(doc, key, tail)
            return
        del aot[i]


def _drop_empty_aot(doc: TOMLDocument, key: str, tail: list[tuple[Any, Item]]) -> None:
    """Remove the last entry: delete the key (an empty list is the default) and keep the
    blank line/comment that followed it by appending it to whatever preceded it."""
    keys = [k.key if k is not None else None for k, _ in doc.body]
    pos = keys.index(key)
    del doc[key]
    prev_items = [item for k, item in doc.body[:pos] if k is not None]
    if tail and prev_items and isinstance(prev_items[-1], (Table, AoT)):
        prev = prev_items[-1]
        target = _body(prev[-1] if isinstance(prev, AoT) else prev)
        ends_blank = any(isinstance(item, Whitespace) for _, item in target[-1:])
        if not ends_blank or any(isinstance(item, Comment) for _, item in tail):
            target.extend(tail)
