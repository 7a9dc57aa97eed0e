"""Readers of public mammography annotation formats → AnnotatedImage lists.

``read_dataset(fmt, path, **opts)`` dispatches on ``FORMATS``; each reader's options are
documented on its ``read`` function and in docs/DATASETS.md. Every reader sets
breast-level truth (any malignant lesion on any view of the breast).
"""

from __future__ import annotations

import importlib
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


def read_dataset(fmt: str, path: Path, **opts: Any) -> list[AnnotatedImage]:
    """Read a data set of format ``fmt`` (see FORMATS) at ``path`` into AnnotatedImage objects."""
    return reader(fmt)(Path(path), **opts)


__all__ = ["ALIASES", "FORMATS", "read_dataset", "reader"]
