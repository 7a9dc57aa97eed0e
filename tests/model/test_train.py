"""Training on a handful of tiny synthetic images: the loss falls, resume continues exactly.

Images are made by the real synthetic generator at 1 mm/pixel (200×160), the detector uses
64-px tiles, so each step takes a fraction of a second on 2 CPU cores.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mammocad.model import train
from mammocad.model.dataset import AugmentConfig, Sample, TileConfig, TileSampler, acquire
from mammocad.model.frame import FrameTransform, flip_boxes
from mammocad.model.orientations import Orientation


def tiny_config(data_dir: Path, test_dir: Path | None = None, steps: int = 6, **train_kw: Any) -> dict[str, Any]:
    """A complete training config (TOML-shaped dict) for tiny 1-mm synthetic images."""
    raw: dict[str, Any] = {
        "name": "tiny", "version": "0.0.1-test", "seed": 11,
        "data": {"format": "synthetic", "path": str(data_dir), "n_studies": 3, "seed": 7, "spacing_mm": 1.0},
        "split": {"val_fraction": 0.3},
        "preprocess": {"working_spacing_mm": 1.0, "crop_margin_mm": 2.0},
        "detector": {"returned_layers": [1, 2, 3], "anchor_sizes": [[8], [16], [32], [64]], "box_head_size": 32,
                     "tile_size": 64, "tile_overlap": 16, "rpn_post_nms_top_n_test": 50, "detections_per_img": 20},
        "train": {"steps": steps, "batch_size": 2, "lr": 1e-3, "warmup_steps": 2, "checkpoint_every": 2,
                  "roi_batch_size_per_image": 32, **train_kw},
        "tiles": {"size": 64, "positive_fraction": 0.7},
        "evaluation": {"n_bootstrap": 20},
    }
    if test_dir is not None:
        raw["test"] = {"format": "synthetic", "path": str(test_dir), "n_studies": 1, "seed": 1001, "spacing_mm": 1.0}
    return raw


def _state_and_sampler(cfg: train.TrainConfig) -> tuple[train.TrainState, TileSampler]:
    samples, _, _ = train.prepare_data(cfg)
    return train.make_state(cfg, "cpu"), TileSampler(samples, cfg.tiles, cfg.augment)


def _fixed_batch_loss(model: torch.nn.Module, draws: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> float:
    """Training loss of a copy of ``model`` on the same tiles, with the same proposal sampling."""
    probe = copy.deepcopy(model).train()
    images, targets = train.to_batch(draws, "cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        return float(sum(probe(images, targets).values()))


@pytest.mark.timeout(900)  # 40 CPU training steps: ~300 s when the 2 cores are shared with a training run
@pytest.mark.slow
def test_loss_falls_over_a_short_run(tiny_data: Path, tmp_path: Path) -> None:
    """Judged on one fixed set of 16 training tiles before and after: the loss of single steps swings
    with what each batch holds (at 1 mm a cluster is a few pixels), so the first and last steps'
    own losses can rise or fall by chance whatever the optimiser does."""
    cfg = train.config_from_dict(tiny_config(tiny_data, steps=40, checkpoint_every=40))
    state, sampler = _state_and_sampler(cfg)
    fixed_rng = np.random.default_rng(123)
    fixed = [sampler.draw(fixed_rng) for _ in range(16)]
    before = _fixed_batch_loss(state.model, fixed)
    rows = train.train_steps(state, sampler, cfg, tmp_path, "cpu", steps=40, progress=False)
    losses = np.array([r["loss"] for r in rows])
    assert len(losses) == 40 and np.isfinite(losses).all()
    after = _fixed_batch_loss(state.model, fixed)
    assert after < 0.7 * before, f"loss on 16 fixed training tiles {before:.3f} before, {after:.3f} after 40 steps"
    assert (tmp_path / "train.csv").read_text().count("\n") == 41  # header + one row per step
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_the_step_count_and_the_random_streams(tiny_data: Path, tmp_path: Path) -> None:
    cfg = train.config_from_dict(tiny_config(tiny_data, steps=6))
    straight, sampler = _state_and_sampler(cfg)
    ref = train.train_steps(straight, sampler, cfg, tmp_path / "a", "cpu", steps=6, progress=False)

    first, _ = _state_and_sampler(cfg)
    train.train_steps(first, sampler, cfg, tmp_path / "b", "cpu", steps=4, progress=False)
    assert (tmp_path / "b" / train.STATE_NAME).is_file()
    resumed, _ = _state_and_sampler(cfg)
    resumed.load(tmp_path / "b" / train.STATE_NAME)
    assert resumed.step == 4
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(cfg.optim.lr * train.lr_factor(cfg.optim, 4))
    rows = train.train_steps(resumed, sampler, cfg, tmp_path / "b", "cpu", steps=6, progress=False)
    assert [r["step"] for r in rows] == [5, 6]
    # Same tiles, same RoI sampling, same weights: the resumed steps repeat the straight run.
    np.testing.assert_allclose([r["loss"] for r in rows], [r["loss"] for r in ref[4:]], rtol=1e-4)
    assert [r["step"] for r in train.read_losses(tmp_path / "b" / train.CSV_NAME)] == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "b" / train.CSV_NAME).read_text().splitlines()[1].startswith("1,")  # not "1.0" after resume


def test_init_from_starts_from_a_checkpoints_weights_and_refuses_another_architecture(
        tiny_data: Path, tmp_path: Path) -> None:
    from mammocad.model.checkpoint import save_checkpoint

    cfg = train.config_from_dict(tiny_config(tiny_data))
    donor = train.make_state(cfg, "cpu").model
    with torch.no_grad():
        for p in donor.parameters():
            p.add_(torch.randn_like(p))  # far from any seeded initialisation
    donor.half()  # released checkpoints are fp16; training must continue in fp32
    saved = save_checkpoint(tmp_path / "donor.pt", donor, cfg.detector, cfg.preprocess,
                            {"model_name": "donor", "version": "9.9", "synthetic": True, "training": {}, "metrics": {}})

    # Preprocessing and tiling may change (the demo's second stage changes the spacing).
    raw = tiny_config(tiny_data)
    raw["init_from"] = str(saved)
    raw["preprocess"]["working_spacing_mm"] = 0.8
    raw["detector"]["tile_overlap"] = 24
    # Anchors are geometry: scaled with the spacing, the same count per place keeps every weight.
    raw["detector"]["anchor_sizes"] = [[2 * v for v in sizes] for sizes in raw["detector"]["anchor_sizes"]]
    fine = train.config_from_dict(raw)
    state = train.make_state(fine, "cpu")
    train.init_weights(state.model, fine)
    for (name, mine), theirs in zip(state.model.state_dict().items(), donor.state_dict().values(), strict=True):
        assert mine.dtype == (torch.float32 if theirs.is_floating_point() else theirs.dtype), name
        torch.testing.assert_close(mine, theirs.to(mine.dtype), msg=name)
    rows = train.train_steps(state, TileSampler(train.prepare_data(fine)[0], fine.tiles, fine.augment), fine,
                             tmp_path / "run", "cpu", steps=2, progress=False)
    assert np.isfinite([r["loss"] for r in rows]).all()

    raw["detector"]["box_head_size"] = 48
    with pytest.raises(train.TrainError, match="box_head_size"):
        train.init_weights(train.make_state(train.config_from_dict(raw), "cpu").model, train.config_from_dict(raw))
    raw["detector"]["box_head_size"] = 32
    raw["detector"]["anchor_sizes"] = [[*sizes, 3 * sizes[-1]] for sizes in raw["detector"]["anchor_sizes"]]
    with pytest.raises(train.TrainError, match="anchors_per_place"):
        train.init_weights(train.make_state(train.config_from_dict(raw), "cpu").model, train.config_from_dict(raw))
    raw["init_from"] = str(tmp_path / "missing.pt")
    with pytest.raises(train.TrainError, match="init_from.*does not exist"):
        train.init_weights(state.model, train.config_from_dict(raw))


def test_learning_rate_schedule_with_a_warm_restart() -> None:
    one = train.OptimConfig(steps=100, warmup_steps=10)
    two = train.OptimConfig(steps=160, warmup_steps=10, cycle_steps=(100, 60), restart_peak=0.5)
    # The first cycle is the plain cosine; the restart jumps to half the peak, then anneals.
    assert [train.lr_factor(two, s) for s in range(100)] == [train.lr_factor(one, s) for s in range(100)]
    assert train.lr_factor(one, 5) == pytest.approx(0.6 * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * 0.05))))
    assert train.lr_factor(two, 100) == pytest.approx(0.5)
    assert train.lr_factor(two, 159) == pytest.approx(0.5 * 0.05, rel=0.02)
    with pytest.raises(ValueError, match="sum to"):
        train.OptimConfig(steps=100, cycle_steps=(50, 40))


def test_resume_refuses_a_file_that_is_not_a_training_state(tiny_data: Path, tmp_path: Path) -> None:
    cfg = train.config_from_dict(tiny_config(tiny_data))
    state = train.make_state(cfg, "cpu")
    bogus = tmp_path / "model.pt"
    torch.save({"format": "something-else"}, bogus)
    with pytest.raises(train.TrainError, match="not a training state"):
        state.load(bogus)
    with pytest.raises(train.TrainError, match="no such file"):
        state.load(tmp_path / "missing.pt")


def test_config_errors_name_the_key(tiny_data: Path) -> None:
    raw = tiny_config(tiny_data)
    with pytest.raises(ValueError, match=r"\[train\]: unknown keys lr_typo"):
        train.config_from_dict({**raw, "train": {"lr_typo": 1}})
    with pytest.raises(ValueError, match="must equal"):
        train.config_from_dict({**raw, "tiles": {"size": 96}})
    with pytest.raises(ValueError, match="data format"):
        train.config_from_dict({**raw, "data": {"format": "dicomdir", "path": "x"}})


def _block_sample() -> Sample:
    """A 64-px image with a bright 4x6 block (rows 10-13, columns 40-45) and its box, the block's
    extent with pixel centres at integers (as ``FrameTransform`` and the readers write boxes)."""
    img = np.full((64, 64), 0.3, np.float32)
    img[10:14, 40:46] = 1.0
    return Sample(img, np.array([[39.5, 9.5, 45.5, 13.5]], np.float32), np.array([2]), "b")


def _extent(tile: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(tile == 1.0)
    return np.array([xs.min() - 0.5, ys.min() - 0.5, xs.max() + 0.5, ys.max() + 0.5])


def test_augmentation_moves_boxes_with_the_pixels() -> None:
    # After any flip or transpose the box must still be the block's extent.
    aug = AugmentConfig(hflip=0.5, vflip=0.5, transpose=0.5, gamma=(1.0, 1.0), contrast=(1.0, 1.0), noise_std=0)
    sampler = TileSampler([_block_sample()], TileConfig(size=64, positive_fraction=1.0, jitter=0.0), aug)
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(24):
        tile, boxes, labels = sampler.draw(rng)
        assert labels.tolist() == [2] and (tile == 1.0).sum() == 24
        np.testing.assert_allclose(boxes[0], _extent(tile))
        seen.add(tuple(boxes[0]))
    assert len(seen) >= 4  # several flips were drawn


@pytest.mark.parametrize(("hflip", "vflip"), [(True, False), (False, True), (True, True)])
def test_training_flips_a_box_as_standardisation_and_test_time_orientations_do(hflip: bool, vflip: bool) -> None:
    """Augmentation flipped boxes as x' = W - x (pixel edges), standardisation and the results as
    x' = W - 1 - x (pixel centres): the network learnt flipped lesions 1 px off. One function
    (``frame.flip_boxes``) now flips every box; flipped twice a box is itself."""
    rng = np.random.default_rng(0)
    corner = rng.uniform(0, 250, (20, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(1, 40, (20, 2))], axis=1)
    np.testing.assert_allclose(flip_boxes(flip_boxes(boxes, (300, 260), horizontal=hflip, vertical=vflip),
                                          (300, 260), horizontal=hflip, vertical=vflip), boxes)
    sample = _block_sample()
    aug = AugmentConfig(hflip=float(hflip), vflip=float(vflip), gamma=(1.0, 1.0), contrast=(1.0, 1.0), noise_std=0)
    tile, trained, _ = TileSampler([sample], TileConfig(size=64, positive_fraction=1.0, jitter=0.0), aug).draw(rng)
    np.testing.assert_allclose(trained[0], _extent(tile))  # the box frames the flipped pixels
    standardised = FrameTransform(original_shape=(64, 64), flip_h=hflip, flip_v=vflip, crop=(0, 0, 64, 64),
                                  scale=(1.0, 1.0), model_shape=(64, 64))
    np.testing.assert_allclose(standardised.to_model(sample.boxes), trained)
    back = Orientation(flip_h=hflip, flip_v=vflip).boxes_back(trained, (64, 64))
    np.testing.assert_allclose(back, sample.boxes)


def _fine_power(tile: np.ndarray) -> float:
    """Mean squared difference of neighbouring pixels: the grid's finest detail."""
    return float(np.mean(np.diff(tile, axis=0) ** 2) + np.mean(np.diff(tile, axis=1) ** 2))


def test_acquisition_augmentation_softens_sharpens_and_quantises() -> None:
    rng = np.random.default_rng(5)
    tile = np.clip(0.5 + 0.1 * rng.normal(size=(64, 64)), 0, 1).astype(np.float32)
    plain = AugmentConfig()
    assert np.array_equal(acquire(tile, plain, np.random.default_rng(0)), tile)  # off by default: old configs unchanged
    blurred = acquire(tile, AugmentConfig(blur=1.0), np.random.default_rng(0))
    sharpened = acquire(tile, AugmentConfig(sharpen=1.0), np.random.default_rng(0))
    assert _fine_power(blurred) < 0.7 * _fine_power(tile) < _fine_power(tile) < _fine_power(sharpened)
    coarse = acquire(tile, AugmentConfig(quantise=1.0, quantise_levels=(16, 16)), np.random.default_rng(0))
    assert len(np.unique(coarse)) <= 16 and np.abs(coarse - tile).max() <= 0.5 / 15 + 1e-6
    with pytest.raises(ValueError, match="quantise_levels"):
        AugmentConfig(quantise=0.5, quantise_levels=(1, 256))
    with pytest.raises(ValueError, match="blur is a probability"):
        AugmentConfig(blur=1.5)
    raw = tiny_config(Path("unused"))
    cfg = train.config_from_dict({**raw, "augment": {"blur": 0.2, "quantise": 0.3, "quantise_levels": [64, 256]}})
    assert cfg.augment.quantise_levels == (64, 256) and cfg.augment.blur == 0.2


def test_negative_tiles_come_from_lesion_free_images() -> None:
    empty = Sample(np.full((100, 100), 0.5, np.float32), np.zeros((0, 4), np.float32), np.zeros(0, np.int64), "n")
    sampler = TileSampler([empty], TileConfig(size=64), AugmentConfig())
    tile, boxes, labels = sampler.draw(np.random.default_rng(0))
    assert tile.shape == (64, 64) and boxes.shape == (0, 4) and len(labels) == 0
    model_cfg = train.config_from_dict(tiny_config(Path("unused")))
    model = train.make_state(model_cfg, "cpu").model
    images, targets = train.to_batch([(tile, boxes, labels)], "cpu")
    losses = copy.deepcopy(model)(images, targets)
    assert losses["loss_box_reg"].item() == 0.0 and losses["loss_classifier"].item() > 0


def test_the_validation_split_tells_apart_patients_of_different_sources(tiny_data: Path) -> None:
    """Two synthetic sets both have SYNTH_0001..3: six patients, each wholly on one side."""
    raw = tiny_config(tiny_data)
    raw["data"] = [raw["data"], {**raw["data"], "path": str(tiny_data)}]  # the same ids (and images) twice
    raw["split"] = {"val_fraction": 0.5}
    cfg = train.config_from_dict(raw)
    items = [it for src in cfg.data for it in train.load_source(src, progress=False)]
    _, val_items, _ = train.prepare_data(cfg, progress=False)
    val_patients = {it.breast_id[:-2] for it in val_items}  # SYNTH_0001_L: patient SYNTH_0001
    assert all(p.startswith(("src1:", "src2:")) for p in val_patients)
    # 0.5 of six patients: some, not all, and not the same choice in both sources (seeded by name)
    assert 0 < len(val_patients) < 6
    assert len(val_items) == 4 * len(val_patients) and len(items) == 24
    # one id may go to validation in one source and train in the other: they are different women
    assert {p.split(":")[1] for p in val_patients if p.startswith("src1:")} != \
        {p.split(":")[1] for p in val_patients if p.startswith("src2:")}


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "config").glob("train-*.toml")),
                         ids=lambda p: p.name)
def test_every_training_config_in_the_repository_is_valid(path: Path) -> None:
    """`make demo-weights` runs these one after another for an hour or more: a typo in the
    last stage must fail here, not at its end."""
    cfg = train.load_config(path)
    assert cfg.optim.steps > 0 and cfg.data
    if cfg.tiles.hard_positive_fraction > 0:
        assert cfg.tiles.mines, "misses are only mined when a mining schedule is set"


@pytest.mark.parametrize("name", ["calibrate-demo.toml", "calibrate-v13.toml"])
def test_the_calibration_sets_of_the_demo_weights_are_valid(name: str) -> None:
    """config/calibrate-*.toml are read by `calibrate --validation-of`, not by train: they hold
    only [[validation]] tables, none of them a set any training config trains on."""
    from mammocad.model.train_config import load_validation_sources

    root = Path(__file__).parents[2] / "config"
    sources = load_validation_sources(root / name)
    assert {s.format for s in sources} == {"synthetic", "real-background"}
    trained_on = {(d.format, d.seed, str(d.path)) for p in root.glob("train-*.toml") for d in train.load_config(p).data}
    assert not trained_on & {(s.format, s.seed, str(s.path)) for s in sources}
    tested_on = {(t.format, t.seed, str(t.path)) for p in root.glob("train-*.toml")
                 if (t := train.load_config(p).test) is not None}
    assert not tested_on & {(s.format, s.seed, str(s.path)) for s in sources}
    with pytest.raises(train.TrainError, match="no \\[\\[validation\\]\\] tables"):
        load_validation_sources(root / "mammocad.toml")
