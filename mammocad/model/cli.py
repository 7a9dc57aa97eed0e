"""CLI for the model: ``mammocad analyze`` and ``mammocad model synth|train|evaluate|calibrate|realism``.

Each command lives in its own module under ``mammocad.model.commands`` with
``add_parser(subparsers)``; torch is imported only when a command runs.
"""

from __future__ import annotations

import argparse
import importlib

_MODEL_COMMANDS = ("synth", "train", "evaluate", "calibrate", "average", "realism")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    importlib.import_module("mammocad.model.commands.analyze").add_parser(subparsers)
    model = subparsers.add_parser("model", help="synthetic data, training and evaluation of the detector")
    model_sub = model.add_subparsers(dest="model_command", metavar="COMMAND")
    model_sub.required = True
    for name in _MODEL_COMMANDS:
        importlib.import_module(f"mammocad.model.commands.{name}").add_parser(model_sub)
