"""Hard-negative mining: only boxes off the annotations are kept, tiles centre on them, and
a resumed run mines and draws exactly as a straight one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mammocad.model import train
from mammocad.model.dataset import AugmentConfig, Sample, TileConfig, TileSampler
from mammocad.model.hard_negatives import false_positive_centres
from tests.model.test_train import tiny_config


def test_only_boxes_centred_off_every_lesion_are_false_positives() -> None:
    truth = np.array([[10, 10, 30, 30]], np.float32)
    boxes = np.array([[12, 12, 28, 28],    # on the lesion
                      [25, 25, 60, 60],    # overlaps it, centre (42.5, 42.5) outside: a false positive
                      [70, 70, 80, 80],    # elsewhere
                      [90, 90, 99, 99]])   # elsewhere but below min_score
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    got = false_positive_centres(boxes, scores, truth, min_score=0.3)
    assert got == [(42.5, 42.5, pytest.approx(0.8)), (75.0, 75.0, pytest.approx(0.7))]
    assert false_positive_centres(boxes, scores, np.zeros((0, 4)), 0.3)[0][:2] == (20.0, 20.0)


def test_sampler_centres_its_share_of_tiles_on_the_pool() -> None:
    image = np.zeros((400, 400), np.float32)
    image[300:310, 300:310] = 1.0  # the "structure" that fooled the model
    sample = Sample(image + 0.5 * (image == 0), np.zeros((0, 4), np.float32), np.zeros(0, np.int64), "a")
    tiles = TileConfig(size=64, positive_fraction=0.0, hard_negative_fraction=0.5, jitter=0.5)
    sampler = TileSampler([sample], tiles, AugmentConfig(hflip=0, vflip=0, gamma=(1, 1), contrast=(1, 1),
                                                           noise_std=0))
    rng = np.random.default_rng(3)
    assert sum((sampler.draw(rng)[0] == 1.0).any() for _ in range(200)) < 20  # no pool: random tiles
    sampler.hard_negatives = [(0, 305.0, 305.0, 0.9)]
    hits = sum((sampler.draw(rng)[0] == 1.0).any() for _ in range(200))
    assert 70 <= hits <= 130, hits  # about half the tiles hold the mined spot


def test_hard_negative_share_is_checked() -> None:
    with pytest.raises(ValueError, match="hard_negative_fraction"):
        TileConfig(positive_fraction=0.8, hard_negative_fraction=0.3)


def test_mining_runs_on_schedule_and_a_resume_repeats_it(tiny_data: Path, tmp_path: Path) -> None:
    raw = tiny_config(tiny_data, steps=6)
    raw["tiles"].update({"positive_fraction": 0.5, "hard_negative_fraction": 0.5, "hard_negative_every": 2,
                         "hard_negative_start": 2, "hard_negative_min_score": 0.0})
    cfg = train.config_from_dict(raw)
    samples, _, _ = train.prepare_data(cfg)

    def fresh() -> tuple[train.TrainState, TileSampler]:
        return train.make_state(cfg, "cpu"), TileSampler(samples, cfg.tiles, cfg.augment)

    straight, sampler = fresh()
    ref = train.train_steps(straight, sampler, cfg, tmp_path / "a", "cpu", steps=6, progress=False)
    assert straight.mined_at == 4  # mined at steps 2 and 4 (6 is the end)
    assert straight.hard_negatives, "an untrained model fires everywhere: the pool cannot be empty"
    assert all(0 <= i < len(samples) for i, *_ in straight.hard_negatives)

    first, sampler = fresh()
    train.train_steps(first, sampler, cfg, tmp_path / "b", "cpu", steps=3, progress=False)
    first.save(tmp_path / "b" / "state.pt", cfg)
    resumed, sampler = fresh()
    resumed.load(tmp_path / "b" / "state.pt")
    assert resumed.hard_negatives == first.hard_negatives and resumed.mined_at == 2
    rows = train.train_steps(resumed, sampler, cfg, tmp_path / "b", "cpu", steps=6, progress=False)
    assert [round(r["loss"], 5) for r in rows] == [round(r["loss"], 5) for r in ref[3:]]
    assert resumed.hard_negatives == straight.hard_negatives


def test_cycle_peaks_override_the_geometric_rule() -> None:
    cfg = train.OptimConfig(steps=30, warmup_steps=1, cycle_steps=(10, 10, 10), cycle_peaks=(1.0, 0.4, 0.3),
                            min_lr_fraction=0.0)
    assert train.lr_factor(cfg, 20) == pytest.approx(0.3)
    assert train.lr_factor(cfg, 10) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="cycle_peaks"):
        train.OptimConfig(steps=20, cycle_steps=(10, 10), cycle_peaks=(1.0,))
