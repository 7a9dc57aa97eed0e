"""CLI for the model: ``mammocad analyze`` and ``mammocad model ...``.

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pass
