"""What the model commands may write: never over a previous run, never over the shipped weights.

A run folder or a calibrated checkpoint is a record (its header names the data and thresholds
it was chosen on); a second command with the same ``--out`` replaced it without a word, and
``calibrate``/``average`` would write over ``mammocad/model/weights/demo.pt`` itself, the file
every node analyses with by default. The commands check here before they start any work.
Imports nothing heavy: the parsers use it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

#: The package's weights folder (``demo.pt`` and its model card); no command writes into it.
SHIPPED_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


def add_overwrite_argument(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace {what} when --out holds one already (default: refuse, so that no run is lost)")


def shipped(path: Path) -> bool:
    """Whether ``path`` lies in the package's weights folder."""
    return path.resolve().is_relative_to(SHIPPED_WEIGHTS_DIR)


def check_new_file(path: Path, *, overwrite: bool, flag: str = "--out") -> None:
    """Raise ValueError unless a checkpoint may be written at ``path``."""
    if shipped(path):
        raise ValueError(f"{flag} {path} is in the package's weights folder {SHIPPED_WEIGHTS_DIR}, which no command "
                         "writes: write the checkpoint elsewhere (e.g. runs/site.pt) and give it to the node as "
                         "worker.weights")
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder: give a file name, e.g. {path / 'model-site.pt'}")
    if path.exists() and not overwrite:
        raise ValueError(f"{flag} {path} exists already: choose a new file name, or pass --overwrite to replace it")


def check_run_folder(folder: Path, names: Iterable[str], *, overwrite: bool, flag: str = "--out") -> None:
    """Raise ValueError when ``folder`` holds any of ``names`` from an earlier run (unless ``overwrite``)."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{flag} {folder} is a file: give a folder")
    found = [name for name in names if (folder / name).exists()]
    if found and not overwrite:
        raise ValueError(f"{flag} {folder} holds a previous run ({', '.join(found)}): choose another folder, "
                         "or pass --overwrite to replace it")
