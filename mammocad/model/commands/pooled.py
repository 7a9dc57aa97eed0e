"""Annotated images from one or more ``--data`` sets, as ``evaluate`` and ``calibrate`` take them."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mammocad.model.formats import READER_FORMATS as DATA_FORMATS

if TYPE_CHECKING:
    from mammocad.model.sources import DataSource


def add_data_arguments(p: argparse.ArgumentParser, *, data_help: str, option_example: str,
                       data_group: argparse._MutuallyExclusiveGroup | None = None) -> None:
    """``--data`` (repeatable), ``--data-format`` and ``--data-option``, read by :func:`load_pooled`.

    With ``data_group``, ``--data`` joins that (required) group instead of being required itself.
    """
    (data_group or p).add_argument("--data", required=data_group is None, type=Path, action="append",
                                   metavar="DIR_OR_MANIFEST", help=data_help)
    p.add_argument("--data-format", default="manifest", choices=DATA_FORMATS,
                   help="format of --data (default: manifest)")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                   help=f"reader option, repeatable (e.g. {option_example})")


def load_pooled(paths: list[Path], data_format: str, options: dict[str, Any]) -> list[Any]:
    """Every image of every ``--data`` set (see :func:`load_sources`)."""
    from mammocad.model.sources import DataSource

    return load_sources([DataSource(format=data_format, path=path, options=options) for path in paths])


def load_sources(sources: Sequence[DataSource]) -> list[Any]:
    """Every image of every source; with several sources each breast id is prefixed by its set.

    Pooled sets reuse patient ids (SYNTH_0001 in every synthetic set): without the prefix
    two different breasts would be scored as one. Raises ValueError for an empty set.
    """
    from mammocad.model.sources import load_source

    items: list[Any] = []
    for k, src in enumerate(sources, start=1):
        found = load_source(src)
        if not found:
            raise ValueError(f"{src.path}: the data set holds no images")
        items += ([dataclasses.replace(i, breast_id=f"set{k}:{i.breast_id}") for i in found]
                  if len(sources) > 1 else found)
    return items
