"""``mammocad train``: placeholder until its implementation lands."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("train", help="(not implemented yet)")
    p.set_defaults(handler=lambda args: 2)
