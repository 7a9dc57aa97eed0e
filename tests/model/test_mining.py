"""Hard-example mining: only boxes off the annotations are false positives, only lesions no
good box is centred in are misses, tiles centre on both, and a resumed run mines and draws
exactly as a straight one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torchvision.models.detection import FasterRCNN

from mammocad.model import mining, train
from mammocad.model.dataset import AugmentConfig, Sample, TileConfig, TileSampler
from mammocad.model.detector import DetectorSpec, build_detector
from mammocad.model.mining import false_positive_centres, missed_lesions
from mammocad.model.tiling import Detections
from tests.model.conftest import TINY_SPEC
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


def test_a_lesion_is_missed_unless_a_box_scoring_enough_is_centred_in_it() -> None:
    truth = np.array([[10, 10, 30, 30],     # a box centred in it scores 0.9: found
                      [50, 50, 70, 70],     # only a 0.4 box is centred in it: missed, best 0.4
                      [100, 100, 120, 120],  # a 0.95 box overlaps it, centred outside: missed, best 0
                      ], np.float32)
    boxes = np.array([[12, 12, 28, 28], [55, 55, 65, 65], [110, 110, 160, 160]])
    scores = np.array([0.9, 0.4, 0.95])
    assert missed_lesions(boxes, scores, truth, max_score=0.5) == [(1, pytest.approx(0.4)), (2, 0.0)]
    assert missed_lesions(boxes, scores, truth, max_score=0.3) == [(2, 0.0)]
    assert missed_lesions(np.zeros((0, 4)), np.zeros(0), truth, 0.5) == [(0, 0.0), (1, 0.0), (2, 0.0)]
    assert missed_lesions(boxes, scores, np.zeros((0, 4)), 0.5) == []


def test_sampler_centres_its_share_of_lesion_tiles_on_the_misses() -> None:
    image = np.full((400, 400), 0.5, np.float32)
    image[300:310, 300:310] = 1.0  # the missed lesion
    image[40:50, 40:50] = 0.9      # the lesion the model finds
    boxes = np.array([[40, 40, 50, 50], [300, 300, 310, 310]], np.float32)
    sample = Sample(image, boxes, np.array([1, 1], np.int64), "a")
    tiles = TileConfig(size=64, positive_fraction=1.0, hard_positive_fraction=0.8, jitter=0.5)
    sampler = TileSampler([sample], tiles, AugmentConfig(hflip=0, vflip=0, gamma=(1, 1), contrast=(1, 1),
                                                           noise_std=0))
    rng = np.random.default_rng(5)
    before = sum((sampler.draw(rng)[0] == 1.0).any() for _ in range(200))
    assert 70 <= before <= 130, before  # no pool: each lesion in about half the tiles
    sampler.hard_positives = [(0, 1, 0.1)]
    hits = sum((sampler.draw(rng)[0] == 1.0).any() for _ in range(200))
    assert 160 <= hits <= 195, hits  # 0.8 + 0.2 / 2 = 0.9 of the tiles hold the miss


def test_without_a_pool_the_sampler_draws_what_it_drew_before_misses_were_mined() -> None:
    """Old configs (no hard_positive_fraction) must reproduce their released weights' tiles."""
    image = np.random.default_rng(0).random((300, 300)).astype(np.float32)
    sample = Sample(image, np.array([[100, 100, 120, 120]], np.float32), np.array([2], np.int64), "a")
    plain = TileSampler([sample], TileConfig(size=64, positive_fraction=0.7))
    with_share = TileSampler([sample], TileConfig(size=64, positive_fraction=0.7, hard_positive_fraction=0.5))
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    for _ in range(20):
        assert np.array_equal(plain.draw(a)[0], with_share.draw(b)[0])


def test_shares_are_checked() -> None:
    with pytest.raises(ValueError, match="hard_positive_fraction"):
        TileConfig(hard_positive_fraction=1.5)
    with pytest.raises(ValueError, match="hard_positive_max_score"):
        TileConfig(hard_positive_max_score=0.0)


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


@pytest.mark.slow
def test_mining_runs_on_schedule_and_a_resume_repeats_it(tiny_data: Path, tmp_path: Path) -> None:
    raw = tiny_config(tiny_data, steps=6)
    raw["tiles"].update({"positive_fraction": 0.5, "hard_negative_fraction": 0.5, "hard_negative_every": 2,
                         "hard_negative_start": 2, "hard_negative_min_score": 0.0,
                         "hard_positive_fraction": 0.5, "hard_positive_max_score": 1.0})
    cfg = train.config_from_dict(raw)
    samples, _, _ = train.prepare_data(cfg)

    def fresh() -> tuple[train.TrainState, TileSampler]:
        return train.make_state(cfg, "cpu"), TileSampler(samples, cfg.tiles, cfg.augment)

    straight, sampler = fresh()
    ref = train.train_steps(straight, sampler, cfg, tmp_path / "a", "cpu", steps=6, progress=False)
    assert straight.mined_at == 4  # mined at steps 2 and 4 (6 is the end)
    assert straight.hard_negatives, "an untrained model fires everywhere: the pool cannot be empty"
    assert all(0 <= i < len(samples) for i, *_ in straight.hard_negatives)
    # No score reaches 1.0, so every lesion of the mined images is a miss.
    assert straight.hard_positives == [(i, j, best) for i, j, best in straight.hard_positives
                                       if j < len(samples[i].labels) and best < 1.0]
    assert len(straight.hard_positives) == sum(len(s.labels) for s in samples), "all images are mined here"

    first, sampler = fresh()
    train.train_steps(first, sampler, cfg, tmp_path / "b", "cpu", steps=3, progress=False)
    first.save(tmp_path / "b" / "state.pt", cfg)
    resumed, sampler = fresh()
    resumed.load(tmp_path / "b" / "state.pt")
    assert resumed.hard_negatives == first.hard_negatives and resumed.mined_at == 2
    assert resumed.hard_positives == first.hard_positives and resumed.hard_positives
    rows = train.train_steps(resumed, sampler, cfg, tmp_path / "b", "cpu", steps=6, progress=False)
    assert [round(r["loss"], 5) for r in rows] == [round(r["loss"], 5) for r in ref[3:]]
    assert resumed.hard_negatives == straight.hard_negatives
    assert resumed.hard_positives == straight.hard_positives


def test_mining_runs_the_model_in_the_layout_inference_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mining built its copy of the model in the training layout, while ``Detector.load`` puts the
    backbone in channels-last (``detector.inference_layout``): mining then measured a network laid
    out unlike the one the node runs, and slower. The copy is now laid out as inference's; the
    model being trained keeps its own."""
    torch.manual_seed(0)
    model = build_detector(TINY_SPEC)
    image = np.full((128, 128), 0.4, np.float32)
    image[60:64, 60:64] = 1.0
    sample = Sample(image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), "b")
    layouts: list[bool] = []
    real = mining.detect_tiled

    def spy(net: torch.nn.Module, image: np.ndarray, spec: DetectorSpec, **kwargs: Any) -> Detections:
        assert isinstance(net, FasterRCNN)
        conv = next(m for m in net.backbone.modules() if isinstance(m, torch.nn.Conv2d))
        layouts.append(conv.weight.is_contiguous(memory_format=torch.channels_last))
        return real(net, image, spec, **kwargs)

    monkeypatch.setattr(mining, "detect_tiled", spy)
    mining.mine(model, [sample], TINY_SPEC, device="cpu", rng=np.random.default_rng(0))
    assert layouts == [True]
    assert model.training and next(m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d)
                                   ).weight.is_contiguous()  # the trained model keeps its layout


def test_cycle_peaks_override_the_geometric_rule() -> None:
    cfg = train.OptimConfig(steps=30, warmup_steps=1, cycle_steps=(10, 10, 10), cycle_peaks=(1.0, 0.4, 0.3),
                            min_lr_fraction=0.0)
    assert train.lr_factor(cfg, 20) == pytest.approx(0.3)
    assert train.lr_factor(cfg, 10) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="cycle_peaks"):
        train.OptimConfig(steps=20, cycle_steps=(10, 10), cycle_peaks=(1.0,))


def test_ignored_lesions_are_neither_lesion_nor_background(tiny_data: Path) -> None:
    """[tiles] ignore_lesions: the lesions named go to Sample.ignore (not taught as boxes), no tile
    overlaps them while another can be drawn, and the model's marks on them are not false positives."""
    import dataclasses

    from mammocad.model.annotations import AnnotatedLesion, LesionClass
    from mammocad.model.dataset import to_sample
    from mammocad.model.mining import mine
    from mammocad.model.sources import load_source

    raw = tiny_config(tiny_data)
    raw["tiles"]["ignore_lesions"] = ["Amorphous"]
    cfg = train.config_from_dict(raw)
    assert cfg.tiles.ignore_lesions == ("Amorphous",)
    item = next(it for it in load_source(cfg.data[0], progress=False) if it.lesions)
    faint = AnnotatedLesion(box=item.lesions[0].box, lesion_class=LesionClass.MALIGNANT,
                            description="amorphous calcifications, grouped distribution (BI-RADS 4B)")
    item = dataclasses.replace(item, lesions=(*item.lesions, faint))
    taught = to_sample(item, cfg.preprocess)
    split = to_sample(item, cfg.preprocess, ignore_lesions=cfg.tiles.ignore_lesions)
    assert len(split.boxes) == len(taught.boxes) - 1 and split.labels.tolist() == taught.labels[:-1].tolist()
    assert np.array_equal(split.ignore, taught.boxes[-1:])  # the same place, in the same frame

    # Tiles: a lesion to centre on at (100, 100), an ignored one (marked 1.0) at (300, 300).
    image = np.full((400, 400), 0.5, np.float32)
    image[295:305, 295:305] = 1.0
    sample = Sample(image, np.array([[95, 95, 105, 105]], np.float32), np.array([1], np.int64), "a",
                    ignore=np.array([[295, 295, 305, 305]], np.float32))
    plain_aug = AugmentConfig(hflip=0, vflip=0, gamma=(1, 1), contrast=(1, 1), noise_std=0)
    sampler = TileSampler([sample], TileConfig(size=64, positive_fraction=0.5, jitter=0.6), plain_aug)
    rng = np.random.default_rng(4)
    random_tiles = [sampler._negative_origin(rng)[1] for _ in range(300)]
    assert any(sampler._overlaps_ignored(sample, o) for o in random_tiles), "random tiles do fall on it"
    draws = [sampler.draw(rng) for _ in range(300)]
    assert not any((tile == 1.0).any() for tile, _, _ in draws)  # the redraw keeps every tile off it
    assert 100 <= sum(len(boxes) for _, boxes, _ in draws) <= 200  # half the tiles still hold the lesion

    # Mining: an untrained model fires everywhere, but not "falsely" inside an ignored region.
    state = train.make_state(cfg, "cpu")
    everywhere = Sample(image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), "a")
    found = mine(state.model, [everywhere], cfg.detector, device="cpu", rng=np.random.default_rng(0), min_score=0.0)
    assert found.negatives, "an untrained model marks a blank image"
    covered = dataclasses.replace(everywhere, ignore=np.array([[0, 0, 400, 400]], np.float32))
    assert mine(state.model, [covered], cfg.detector, device="cpu", rng=np.random.default_rng(0),
                min_score=0.0).negatives == []
