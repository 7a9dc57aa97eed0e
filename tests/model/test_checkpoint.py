"""Checkpoints round-trip with their metadata; wrong files fail with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mammocad.model import checkpoint as ckpt
from mammocad.model.checkpoint import CheckpointError, load_checkpoint, resolve_weights, save_checkpoint
from mammocad.model.detector import DetectorSpec, build_detector
from mammocad.model.standardise import PreprocessSpec
from tests.model.conftest import TINY_META, TINY_SPEC


def test_round_trip_keeps_weights_specs_and_metadata(tiny_checkpoint: Path) -> None:
    loaded = load_checkpoint(tiny_checkpoint, device="cpu")
    assert loaded.spec == TINY_SPEC and loaded.preprocess == PreprocessSpec()
    assert loaded.metadata["model_name"] == TINY_META["model_name"] and loaded.metadata["synthetic"] is True
    assert loaded.metadata["classes"] == ["background", "benign", "malignant"]
    assert loaded.metadata["training"] == TINY_META["training"]
    assert not loaded.model.training
    torch.manual_seed(0)
    reference = build_detector(TINY_SPEC).state_dict()
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, reference[key]), key
    assert DetectorSpec.from_dict(TINY_SPEC.to_dict()) == TINY_SPEC


def test_wrong_files_fail_clearly(tmp_path: Path) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a mammocad checkpoint"):
        load_checkpoint(text)
    other = tmp_path / "other.pt"
    torch.save({"model": {"w": torch.zeros(2)}}, other)
    with pytest.raises(CheckpointError, match="format is None"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_classes_and_metadata_are_checked(tmp_path: Path, tiny_checkpoint: Path) -> None:
    model = build_detector(TINY_SPEC)
    with pytest.raises(CheckpointError, match="synthetic"):
        save_checkpoint(tmp_path / "x.pt", model, TINY_SPEC, PreprocessSpec(), {"model_name": "m", "version": "1"})
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["metadata"]["classes"] = ["background", "mass", "calcification"]
    bad = tmp_path / "classes.pt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="classes"):
        load_checkpoint(bad)
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["detector_spec"]["backbone"] = "resnet50"
    arch = tmp_path / "arch.pt"
    torch.save(payload, arch)
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(arch)


def test_missing_demo_weights_say_how_to_make_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ckpt, "DEMO_WEIGHTS", tmp_path / "weights" / "demo.pt")
    with pytest.raises(CheckpointError, match="make demo-weights"):
        resolve_weights(None)
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_weights(tmp_path / "nope.pt")
