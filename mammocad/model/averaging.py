"""The uniform average of fine-tuned checkpoints' weights (a "model soup", Wortsman et al. 2022).

Why: fine-tunes of one checkpoint that differ only in their seed land in the same basin, and the
average of their weights is usually steadier than any one of them at no extra cost per image;
on this project's CPU budget a second seed is affordable and a larger data set is not. Only
checkpoints of the same architecture and preprocessing can be averaged, and the result's
thresholds are those of the first ingredient: calibrate it before anything reports with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mammocad.model.checkpoint import CheckpointError, LoadedCheckpoint, load_checkpoint
from mammocad.model.detector import NETWORK_SPEC_FIELDS, DetectorSpec


def average_checkpoints(paths: Sequence[str | Path]) -> LoadedCheckpoint:
    """The first checkpoint with every floating-point tensor replaced by the mean over ``paths``.

    Integer buffers (BatchNorm's batch counters) are the first checkpoint's. The metadata says
    what went in and drops the ingredients' metrics, which do not describe the average; the
    average is "synthetic" only when every ingredient was.
    """
    if len(paths) < 2:
        raise CheckpointError(f"averaging needs at least two checkpoints, got {len(paths)}")
    loaded = [load_checkpoint(p) for p in paths]
    first = loaded[0]
    network = _network(first.spec)
    for path, other in zip(paths[1:], loaded[1:], strict=True):
        differ = sorted(k for k, v in _network(other.spec).items() if v != network[k])
        if differ:
            raise CheckpointError(f"{path}: detector spec differs from {paths[0]}'s in {', '.join(differ)}: only "
                                  "fine-tunes of one architecture can be averaged")
        if other.preprocess.to_dict() != first.preprocess.to_dict():
            raise CheckpointError(f"{path}: preprocessing differs from {paths[0]}'s: the weights saw other images")
    states = [c.model.state_dict() for c in loaded]
    averaged: dict[str, torch.Tensor] = {}
    for key, value in states[0].items():
        if not value.is_floating_point():
            averaged[key] = value
            continue
        mean = torch.stack([s[key].float() for s in states]).mean(dim=0)
        if not torch.isfinite(mean).all():
            raise CheckpointError(f"tensor {key} is not finite in the average: one of the checkpoints is broken")
        averaged[key] = mean.to(value.dtype)
    first.model.load_state_dict(averaged)
    first.metadata = _metadata(paths, loaded)
    return first


def _network(spec: DetectorSpec) -> dict[str, Any]:
    """The spec's fields that shape the network; thresholds and test-time settings may differ."""
    return {k: v for k, v in spec.to_dict().items() if k in NETWORK_SPEC_FIELDS}


def _metadata(paths: Sequence[str | Path], loaded: Sequence[LoadedCheckpoint]) -> dict[str, Any]:
    meta = {k: v for k, v in loaded[0].metadata.items() if k not in ("metrics", "calibration")}
    meta["synthetic"] = all(bool(c.metadata.get("synthetic")) for c in loaded)
    meta["averaged_from"] = [{"path": str(p), "version": c.metadata.get("version"),
                              "training": c.metadata.get("training")} for p, c in zip(paths, loaded, strict=True)]
    meta["metrics"] = {}
    return meta
