"""Checkpoints that carry their own description, loaded without running pickled code.

A checkpoint is a ``torch.save`` of a plain dict (tensors, strings, numbers, lists):
``format``, ``detector_spec`` (DetectorSpec.to_dict), ``preprocess`` (PreprocessSpec.to_dict),
``metadata`` and ``state_dict``. It loads with ``torch.load(weights_only=True)``, so a
hostile file cannot execute code, and loading checks the format and classes so a wrong
file fails with a message instead of a shape mismatch deep inside torch.

Required metadata: ``model_name`` (str), ``version`` (str), ``synthetic`` (bool: trained
on synthetic data only, as the demo weights are). Recommended: ``training`` (command and
config), ``metrics``, ``created``. ``classes`` is filled from the spec.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchvision.models.detection import FasterRCNN

import mammocad.model
from mammocad.model.detector import CLASSES, DetectorSpec, build_detector
from mammocad.model.standardise import PreprocessSpec

FORMAT = "mammocad-detector/1"
DEMO_WEIGHTS = Path(mammocad.model.__file__).resolve().parent / "weights" / "demo.pt"
DEMO_HOWTO = "make demo-weights"
REQUIRED_METADATA = {"model_name": str, "version": str, "synthetic": bool}


class CheckpointError(RuntimeError):
    """The checkpoint is missing, of the wrong kind or inconsistent; the message says what to do."""


@dataclass
class LoadedCheckpoint:
    model: FasterRCNN
    spec: DetectorSpec
    preprocess: PreprocessSpec
    metadata: dict[str, Any]


def default_weights_path() -> Path:
    """The demo weights shipped inside the package (``mammocad/model/weights/demo.pt``)."""
    return DEMO_WEIGHTS


def resolve_weights(weights: str | Path | None) -> Path:
    """``None``/"" → the demo weights; raise :class:`CheckpointError` when the file is missing."""
    path = Path(weights) if weights else default_weights_path()
    if not path.is_file():
        if not weights:
            raise CheckpointError(
                f"the demo weights {path} are missing: produce them with `{DEMO_HOWTO}` "
                "(trains on synthetic data: about two hours on a 2-core CPU) or pass --weights PATH")
        raise CheckpointError(f"weights file {path} does not exist: check the path (--weights / worker.weights)")
    return path


def save_checkpoint(path: str | Path, model: torch.nn.Module, spec: DetectorSpec, preprocess: PreprocessSpec,
                    metadata: dict[str, Any]) -> Path:
    """Write a checkpoint; metadata must be JSON-serialisable and hold the required keys."""
    _check_metadata(metadata, where="save_checkpoint")
    try:
        json.dumps(metadata)
    except TypeError as exc:
        raise CheckpointError(f"checkpoint metadata must be JSON-serialisable: {exc}") from exc
    meta = dict(metadata)
    meta["classes"] = list(spec.classes)
    payload = {
        "format": FORMAT,
        "detector_spec": spec.to_dict(),
        "preprocess": preprocess.to_dict(),
        "metadata": meta,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def save_release_checkpoint(path: str | Path, model: torch.nn.Module, spec: DetectorSpec,
                            preprocess: PreprocessSpec, metadata: dict[str, Any]) -> Path:
    """:func:`save_checkpoint` of a half-precision CPU copy (``model`` itself is not changed).

    Released weights are fp16: half the file (the demo file must stay small), no measurable
    change in detections; loading builds the model in fp32 again.
    """
    half = copy.deepcopy(model).cpu().half()
    return save_checkpoint(path, half, spec, preprocess, metadata)


def read_header(path: str | Path) -> tuple[DetectorSpec, PreprocessSpec, dict[str, Any], dict[str, Any]]:
    """Check a checkpoint and return (spec, preprocess, metadata, payload) without building the model."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not a mammocad checkpoint (torch could not load it as weights-only: "
            f"{type(exc).__name__}); produce one with `mammocad model train`") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path} is not a mammocad checkpoint: format is {found!r}, expected {FORMAT!r}")
    try:
        spec = DetectorSpec.from_dict(payload["detector_spec"])
        preprocess = PreprocessSpec.from_dict(payload["preprocess"])
        metadata = dict(payload["metadata"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid checkpoint header: {exc}") from exc
    _check_metadata(metadata, where=str(path))
    if tuple(spec.classes) != CLASSES or tuple(metadata.get("classes", CLASSES)) != CLASSES:
        raise CheckpointError(f"{path}: classes {list(spec.classes)} differ from this version's {list(CLASSES)}")
    return spec, preprocess, metadata, payload


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Load, check and build the model in eval mode on ``device``."""
    spec, preprocess, metadata, payload = read_header(path)
    model = build_detector(spec)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: weights do not match the architecture in its spec: {exc}") from exc
    model.to(device).eval()
    return LoadedCheckpoint(model=model, spec=spec, preprocess=preprocess, metadata=metadata)


def _check_metadata(metadata: dict[str, Any], where: str) -> None:
    for key, kind in REQUIRED_METADATA.items():
        if not isinstance(metadata.get(key), kind):
            raise CheckpointError(f"{where}: metadata[{key!r}] must be a {kind.__name__}, got {metadata.get(key)!r}")
