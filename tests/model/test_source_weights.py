"""A data source's ``weight``: how often training draws its images (DataSource.weight)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mammocad.model import train
from mammocad.model.dataset import (
    AugmentConfig,
    Sample,
    TileConfig,
    TileSampler,
    image_probabilities,
)
from mammocad.model.sources import DataSource
from tests.model.test_train import tiny_config

PLAIN = AugmentConfig(hflip=0, vflip=0, gamma=(1, 1), contrast=(1, 1), noise_std=0)


def _flat(value: float, weight: float, lesion: bool = False) -> Sample:
    """A 200² image of one value (so a tile tells which image it came from), with one lesion if asked."""
    boxes = np.array([[90, 90, 110, 110]], np.float32) if lesion else np.zeros((0, 4), np.float32)
    labels = np.array([1], np.int64) if lesion else np.zeros(0, np.int64)
    return Sample(np.full((200, 200), value, np.float32), boxes, labels, f"b{value}", weight=weight)


def _share_of_first(sampler: TileSampler, draws: int = 1000) -> float:
    rng = np.random.default_rng(4)
    return sum(bool(np.isclose(sampler.draw(rng)[0], 0.3).all()) for _ in range(draws)) / draws


def test_random_tiles_come_from_each_image_in_proportion_to_its_weight() -> None:
    sampler = TileSampler([_flat(0.3, 9.0), _flat(0.7, 1.0)], TileConfig(size=64, positive_fraction=0.0), PLAIN)
    assert 0.87 <= _share_of_first(sampler) <= 0.93
    even = TileSampler([_flat(0.3, 1.0), _flat(0.7, 1.0)], TileConfig(size=64, positive_fraction=0.0), PLAIN)
    assert 0.45 <= _share_of_first(even) <= 0.55


def test_lesion_tiles_come_from_each_image_in_proportion_to_its_weight() -> None:
    tiles = TileConfig(size=64, positive_fraction=1.0, balance_classes=False)
    sampler = TileSampler([_flat(0.3, 1.0, lesion=True), _flat(0.7, 4.0, lesion=True)], tiles, PLAIN)
    assert 0.16 <= _share_of_first(sampler) <= 0.24  # 1 / (1 + 4)


def test_equal_weights_draw_the_tiles_drawn_before_weights_existed() -> None:
    """Configs without weights must reproduce their released weights' tiles: equal weights, however large,
    draw with the same rng calls as weight 1."""
    rng0 = np.random.default_rng(0)
    images = [rng0.random((300, 300)).astype(np.float32) for _ in range(3)]
    boxes = np.array([[100, 100, 120, 120]], np.float32)

    def sampler(weight: float) -> TileSampler:
        return TileSampler([Sample(im, boxes, np.array([2], np.int64), f"b{k}", weight=weight)
                            for k, im in enumerate(images)], TileConfig(size=64, positive_fraction=0.5))

    a, b = np.random.default_rng(9), np.random.default_rng(9)
    one, three = sampler(1.0), sampler(3.0)
    for _ in range(30):
        assert np.array_equal(one.draw(a)[0], three.draw(b)[0])
    assert image_probabilities(one.samples) is None


def test_probabilities_follow_the_weights() -> None:
    p = image_probabilities([_flat(0.3, 3.0), _flat(0.5, 1.0), _flat(0.7, 1.0)])
    assert p is not None and np.allclose(p, [0.6, 0.2, 0.2])


def test_a_source_weight_is_read_written_and_checked(tmp_path: Path) -> None:
    src = DataSource.from_dict({"format": "manifest", "path": str(tmp_path), "weight": 6})
    assert src.weight == 6.0 and src.to_dict()["weight"] == 6.0
    assert "weight" not in DataSource.from_dict({"format": "manifest", "path": str(tmp_path)}).to_dict()
    for bad in (0, -1, math.nan, math.inf):
        with pytest.raises(ValueError, match="weight must be a positive number"):
            DataSource.from_dict({"format": "manifest", "path": str(tmp_path), "weight": bad})


def test_training_gives_each_image_its_sources_weight(tiny_data: Path) -> None:
    raw = tiny_config(tiny_data)
    raw["split"] = {"val_fraction": 0.0}
    raw["data"] = [raw["data"], {**raw["data"], "weight": 3}]
    samples, _, _ = train.prepare_data(train.config_from_dict(raw), progress=False)
    half = len(samples) // 2
    assert half and [s.weight for s in samples] == [1.0] * half + [3.0] * half
    shares = train.source_shares(samples, ["src1"] * half + ["src2"] * half)
    assert shares == {"src1": 0.25, "src2": 0.75}
