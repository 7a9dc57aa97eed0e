"""Readers of public mammography annotation formats → AnnotatedImage lists.

``read_dataset(fmt, path, **opts)`` dispatches on ``FORMATS``; each reader's options are
documented on its ``read`` function and in docs/DATASETS.md. Every reader sets
breast-level truth (any malignant lesion on any view of the breast).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mammocad.model.annotations import AnnotatedImage, load_manifest
from mammocad.model.formats import READER_MODULES

#: format name → module under mammocad.model.readers (its ``read(path, **opts)``).
FORMATS: dict[str, str] = READER_MODULES
ALIASES = {"synth": "manifest", "synthetic": "manifest", "mammocad": "manifest", "cbis_ddsm": "cbis-ddsm", "cbis": "cbis-ddsm",
           "vindr-mammo": "vindr", "vindr_mammo": "vindr", "mini-mias": "mias", "minimias": "mias",
           "real_background": "real-background"}


def reader(fmt: str) -> Callable[..., list[AnnotatedImage]]:
    name = ALIASES.get(fmt.lower(), fmt.lower())
    if name not in FORMATS:
        raise ValueError(f"unknown data format {fmt!r}; choose one of {sorted(FORMATS)}")
    if name == "manifest":
        return lambda path, **opts: load_manifest(Path(path))
    module = importlib.import_module(f"mammocad.model.readers.{FORMATS[name]}")
    return module.read  # type: ignore[no-any-return]


def check_options(fmt: str, options: dict[str, Any]) -> None:
    """Raise ValueError naming any option the format's reader does not take.

    Why here and not at read time: a misspelt option (``splt=test``) reached ``read(**opts)``
    as a TypeError traceback, after a training run had already drawn its synthetic sets; a
    manifest took any option and ignored it. The config and the command line are checked
    before any work starts.
    """
    known = sorted(_option_names(fmt))
    unknown = sorted(set(options) - set(known))
    if unknown:
        takes = f"its options are {', '.join(known)}" if known else "it takes no options"
        raise ValueError(f"unknown option {', '.join(repr(u) for u in unknown)} for data format {fmt!r}: {takes} "
                         "(docs/DATASETS.md)")


def _option_names(fmt: str) -> set[str]:
    read = reader(fmt)
    if ALIASES.get(fmt.lower(), fmt.lower()) == "manifest":
        return set()
    params = inspect.signature(read).parameters.values()
    return {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "progress"}


def read_dataset(fmt: str, path: Path, **opts: Any) -> list[AnnotatedImage]:
    """Read a data set of format ``fmt`` (see FORMATS) at ``path`` into AnnotatedImage objects."""
    return reader(fmt)(Path(path), **opts)


__all__ = ["ALIASES", "FORMATS", "check_options", "read_dataset", "reader"]
