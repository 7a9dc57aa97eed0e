"""Path-valued settings, and where a relative one points.

A relative path written in a config FILE is relative to that file's folder, so every process
that reads the file (node, workers, an admin's command, each started from its own working
directory) finds the same spool, certificates and audit file. A relative path set in the
environment or by a command-line option stays relative to the working directory, as a shell
user expects of a path they type.

The folder is the one the file is named in (``/etc/mammocad`` for
``/etc/mammocad/mammocad.toml``), symlinks not followed: config management that links the file
to a versioned copy keeps the paths next to the link, as ``dest add`` keeps certificate
symlinks.

Path fields are marked in the schema (``Annotated[str, CONFIG_PATH]``), so a new path setting
is resolved by marking it; :func:`path_keys` walks the models to find them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

__all__ = ["CONFIG_PATH", "FilePath", "FolderPath", "path_keys", "resolve_file_paths"]


class _ConfigPath:
    """Marker in a field's ``Annotated`` metadata: the value is a file or folder path."""

    def __repr__(self) -> str:
        return "CONFIG_PATH"


CONFIG_PATH = _ConfigPath()
#: A file setting (certificate, key, checkpoint, audit file); empty means none.
FilePath = Annotated[str, CONFIG_PATH]
#: A folder setting (the spool).
FolderPath = Annotated[Path, CONFIG_PATH]

#: Stands for "every entry" of a list section (``destinations.*.certificate``).
EACH = "*"


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models a field holds: ``NodeTLSSettings``, ``list[Destination]``, ``X | None``..."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = get_origin(annotation)
    if origin in (list, Union, UnionType):
        return [m for arg in get_args(annotation) for m in _models(arg)]
    return []


def path_keys(model: type[BaseModel]) -> list[tuple[str, ...]]:
    """Every marked path field under ``model``, as key paths: ``("node", "spool_dir")``,
    ``("destinations", "*", "certificate")``."""
    keys: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        if any(meta is CONFIG_PATH for meta in field.metadata):
            keys.append((name,))
        each = (EACH,) if get_origin(field.annotation) is list else ()
        for sub in _models(field.annotation):
            keys.extend((name, *each, *rest) for rest in path_keys(sub))
    return keys


def _resolved(value: Any, base: Path) -> Any:
    """``value`` joined to ``base`` when it is a relative path; anything else as it is (empty
    means "none", and a wrong type is for validation to name)."""
    if isinstance(value, str | os.PathLike) and str(value) and not os.path.isabs(value):
        return str(base / value)
    return value


def _resolve(data: Any, key: tuple[str, ...], base: Path) -> Any:
    if not key:
        return _resolved(data, base)
    head, *rest = key
    if head == EACH:
        return [_resolve(item, tuple(rest), base) for item in data] if isinstance(data, list) else data
    if not isinstance(data, Mapping) or head not in data:
        return data
    return {**data, head: _resolve(data[head], tuple(rest), base)}


def resolve_file_paths(data: Mapping[str, Any], config_file: str | os.PathLike[str],
                       model: type[BaseModel]) -> dict[str, Any]:
    """A copy of ``data`` (a config file's content) with each relative path of ``model``'s
    path fields made absolute against ``config_file``'s folder; ``data`` is left as it was
    (an edit writes the file back as the admin wrote it)."""
    base = Path(os.path.abspath(config_file)).parent
    out: Any = dict(data)
    for key in path_keys(model):
        out = _resolve(out, key, base)
    return dict(out)
