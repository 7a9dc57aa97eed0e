"""Annotated images from one or more ``--data`` sets, as ``evaluate`` and ``calibrate`` take them."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

#: As ``mammocad.model.dataset.FORMATS`` minus "synthetic" (kept here so --help imports no numpy).
DATA_FORMATS = ("manifest", "coco", "cbis-ddsm", "inbreast", "vindr", "mias", "real-background")


def add_data_arguments(p: argparse.ArgumentParser, *, data_help: str, option_example: str) -> None:
    """``--data`` (repeatable), ``--data-format`` and ``--data-option``, read by :func:`load_pooled`."""
    p.add_argument("--data", required=True, type=Path, action="append", metavar="DIR_OR_MANIFEST", help=data_help)
    p.add_argument("--data-format", default="manifest", choices=DATA_FORMATS,
                   help="format of --data (default: manifest)")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                   help=f"reader option, repeatable (e.g. {option_example})")


def load_pooled(paths: list[Path], data_format: str, options: dict[str, Any]) -> list[Any]:
    """Every image of every set; with several sets each breast id is prefixed by its set.

    Pooled sets reuse patient ids (SYNTH_0001 in every synthetic set): without the prefix
    two different breasts would be scored as one. Raises ValueError for an empty set.
    """
    from mammocad.model.dataset import DataSource, load_source

    items: list[Any] = []
    for k, path in enumerate(paths, start=1):
        found = load_source(DataSource(format=data_format, path=path, options=options))
        if not found:
            raise ValueError(f"{path}: the data set holds no images")
        items += [dataclasses.replace(i, breast_id=f"set{k}:{i.breast_id}") for i in found] if len(paths) > 1 else found
    return items
