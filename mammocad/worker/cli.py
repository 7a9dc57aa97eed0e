"""CLI for the worker: ``mammocad worker`` and ``mammocad outbox``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pass
