"""CLI for the node: ``mammocad serve`` and ``mammocad node`` (filled in by the node work)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pass
