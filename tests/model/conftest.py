"""Fixtures of the detector core: one tiny randomly initialised checkpoint per session.

resnet18 with 128-px tiles keeps a forward pass well under a second on 2 CPU cores; the
weights are random, so tests check geometry and contracts, never what the model finds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mammocad.model.checkpoint import save_checkpoint
from mammocad.model.detector import DetectorSpec, build_detector
from mammocad.model.standardise import PreprocessSpec

TINY_SPEC = DetectorSpec(backbone="resnet18", tile_size=128, tile_overlap=16, detections_per_img=20,
                         inference_tile_size=256, box_head_size=64, rpn_pre_nms_top_n_test=200,
                         rpn_post_nms_top_n_test=50)
TINY_META = {"model_name": "mammocad-test-tiny", "version": "0.0.1-test", "synthetic": True,
             "training": {"command": "none: random initialisation for tests"}, "metrics": {}}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = build_detector(TINY_SPEC)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    return save_checkpoint(path, model, TINY_SPEC, PreprocessSpec(), TINY_META)


@pytest.fixture(scope="session")
def tiny_detector(tiny_checkpoint: Path):  # type: ignore[no-untyped-def]
    from mammocad.model.inference import Detector

    return Detector.load(str(tiny_checkpoint), device="cpu")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny synthetic studies at 1 mm/pixel (200x160) for training tests."""
    from mammocad.model.synth import generate_dataset

    torch.set_num_threads(min(2, torch.get_num_threads()))
    folder = tmp_path_factory.mktemp("synth") / "train"
    generate_dataset(folder, 3, seed=7, spacing_mm=1.0, progress=False)
    return folder


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """For tests that run a command in this process (``mammocad.cli.main``): the commands install
    their log handler on the root logger and set logger levels; the tests that follow get back
    the handlers and levels they had."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    levels = {name: logging.getLogger(name).level for name in [None, *logging.Logger.manager.loggerDict]}
    yield
    root.handlers[:] = handlers
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
