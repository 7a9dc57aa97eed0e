"""Train the detector from a TOML config; resumable; ends with a self-describing checkpoint.

One call does everything a release needs, so ``mammocad model train --config X`` alone
reproduces a checkpoint: load (or generate) the data, split validation by patient, train
on tiles (``dataset.TileSampler``), then on validation choose the breast operating
threshold and the lesion score threshold, measure the held-out test set, and write
``model.pt`` (``checkpoint.save_checkpoint``, fp16 weights) whose metadata holds the
command, the config, the thresholds and the metrics.

Output folder: ``train.csv`` + ``loss.png`` (loss curves), ``state.pt`` (every
``checkpoint_every`` steps: model, optimizer, scheduler, AMP scaler, step and every RNG,
for ``--resume``), ``model.pt``, ``metrics.json`` and ``roc.png``/``froc.png`` of the
test set. The config's sections and the learning-rate schedule live in ``train_config.py``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import random
import shutil
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

import mammocad
from mammocad.logs import log_event
from mammocad.model.dataset import (
    Sample,
    TileSampler,
    load_samples,
    split_by_breast,
)
from mammocad.model.detector import DetectorSpec, build_detector
from mammocad.model.sources import load_source
from mammocad.model.train_config import (  # noqa: F401  (re-exported: the public names of training)
    OptimConfig,
    ThresholdConfig,
    TrainConfig,
    TrainError,
    config_from_dict,
    load_config,
    lr_factor,
)

if TYPE_CHECKING:
    from mammocad.model.mining import HardNegative, HardPositive

logger = logging.getLogger(__name__)


class LossNotFiniteError(TrainError):
    """The loss stayed NaN or infinite: the optimiser diverged (too high a learning rate, or a
    float16 overflow under AMP), not a mistake in the command; the command exits with its own status."""


LOSS_KEYS = ("loss", "loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg")
STATE_NAME, MODEL_NAME, CSV_NAME = "state.pt", "model.pt", "train.csv"


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> tuple[torch.optim.Optimizer, Any]:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(cfg, step))


def to_batch(draws: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], device: str
             ) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Tiles → the model's inputs: FloatTensor[3, T, T] (gray replicated) and targets."""
    images, targets = [], []
    for tile, boxes, labels in draws:
        t = torch.from_numpy(np.ascontiguousarray(tile)).to(device)
        images.append(t.unsqueeze(0).expand(3, -1, -1))
        targets.append({"boxes": torch.from_numpy(np.asarray(boxes, np.float32)).reshape(-1, 4).to(device),
                        "labels": torch.from_numpy(np.asarray(labels, np.int64)).to(device)})
    return images, targets


@dataclass
class TrainState:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    rng: np.random.Generator
    step: int = 0
    #: Mined false positives and misses, and the step they were mined at (-1: never); see mining.py.
    hard_negatives: list[HardNegative] = field(default_factory=list)
    hard_positives: list[HardPositive] = field(default_factory=list)
    mined_at: int = -1

    def save(self, path: Path, cfg: TrainConfig) -> Path:
        payload = {
            "format": "mammocad-train-state/1", "step": self.step, "config": cfg.raw,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "hard_negatives": [list(h) for h in self.hard_negatives],
            "hard_positives": [list(h) for h in self.hard_positives], "mined_at": self.mined_at,
            "rng": {"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state(),
                    "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(path)
        return path

    def load(self, path: Path) -> None:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError as exc:
            raise TrainError(f"--resume {path}: no such file (the run folder holds {STATE_NAME})") from exc
        if not isinstance(payload, dict) or payload.get("format") != "mammocad-train-state/1":
            raise TrainError(f"--resume {path}: not a training state file (expected {STATE_NAME} of a run folder)")
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        self.rng.bit_generator.state = payload["rng"]["numpy"]
        self.hard_negatives = [(int(i), float(x), float(y), float(sc))
                               for i, x, y, sc in payload.get("hard_negatives", [])]
        self.hard_positives = [(int(i), int(j), float(sc)) for i, j, sc in payload.get("hard_positives", [])]
        self.mined_at = int(payload.get("mined_at", -1))
        torch.set_rng_state(payload["rng"]["torch"])
        random.setstate(payload["rng"]["python"])
        if payload["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(payload["rng"]["cuda"])
        self.step = int(payload["step"])
        # The learning rate follows the schedule of *this* config at the resumed step, so a
        # resumed run with a longer schedule equals a straight run with that schedule.
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * self.scheduler.lr_lambdas[0](self.step)


def prepare_data(cfg: TrainConfig, *, progress: bool = True, workers: int = 1) -> tuple[list[Any], list[Any], list[Any]]:
    """(train samples, validation items, test items); validation split by patient.

    Patients are told apart per data source: synthetic sets reuse their ids (SYNTH_0001 in
    each), and a split on the bare ids once drew 10 % of 40 ids instead of 10 % of 320
    patients (none at all for one seed) and merged the breasts of eight patients into one.
    """
    items = [dataclasses.replace(it, breast_id=f"src{k}:{it.breast_id}")
             for k, src in enumerate(cfg.data, start=1) for it in load_source(src, progress=progress, workers=workers)]
    train_items, val_items = split_by_breast(items, cfg.val_fraction, cfg.seed)
    if not train_items:
        raise TrainError(f"no training images left after the validation split ({len(items)} images in total)")
    for k, src in enumerate(cfg.validation, start=1):
        # Synthetic sets reuse patient ids (SYNTH_0001 in each): keep their breasts apart.
        val_items += [dataclasses.replace(it, breast_id=f"val{k}:{it.breast_id}")
                      for it in load_source(src, progress=progress, workers=workers)]
    test_items = load_source(cfg.test, progress=progress, workers=workers) if cfg.test else []
    log_event(logger, "train_data", images=len(items), train=len(train_items), val=len(val_items),
              test=len(test_items), lesions=sum(len(i.lesions) for i in train_items))
    samples = load_samples(train_items, cfg.preprocess, desc="decode train", progress=progress, workers=workers,
                           ignore_lesions=cfg.tiles.ignore_lesions)
    # Each item's source is the "srcK" its breast id was given above.
    weight_of = {f"src{k}": src.weight for k, src in enumerate(cfg.data, start=1)}
    sources = [it.breast_id.split(":", 1)[0] for it in train_items]
    samples = [dataclasses.replace(s, weight=weight_of[k]) for s, k in zip(samples, sources, strict=True)]
    log_event(logger, "train_data_shares", shares=source_shares(samples, sources))
    return samples, val_items, test_items


def source_shares(samples: Sequence[Sample], sources: Sequence[str]) -> dict[str, float]:
    """Each source's share of the images the tile sampler draws, by weight (srcK: k-th [[data]])."""
    total = sum(s.weight for s in samples)
    shares: dict[str, float] = {}
    for s, k in zip(samples, sources, strict=True):
        shares[k] = shares.get(k, 0.0) + s.weight / total
    return {k: round(v, 4) for k, v in shares.items()}


def make_state(cfg: TrainConfig, device: str) -> TrainState:
    set_seed(cfg.seed)
    model = build_detector(cfg.detector).to(device)
    model.roi_heads.fg_bg_sampler.batch_size_per_image = cfg.optim.roi_batch_size_per_image
    model.train()
    optimizer, scheduler = build_optimizer(model, cfg.optim)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.optim.amp and device.startswith("cuda"))
    return TrainState(model, optimizer, scheduler, scaler, np.random.default_rng(cfg.seed))


def init_weights(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """Copy a checkpoint's weights into the fresh model (``init_from``); a resume overrides it.

    The checkpoint's architecture must equal [detector]'s, or fine-tuning would silently
    start from a half-random model; its thresholds and preprocessing are not taken (they are
    chosen again on validation data for this run's config).
    """
    from mammocad.model.checkpoint import CheckpointError, load_checkpoint

    assert cfg.init_from is not None
    try:
        source = load_checkpoint(cfg.init_from, "cpu")
    except CheckpointError as exc:
        raise TrainError(f"init_from: {exc}") from exc
    mine, theirs = _architecture(cfg.detector), _architecture(source.spec)
    if mine != theirs:
        diff = {k: (theirs[k], mine[k]) for k in mine if mine[k] != theirs[k]}
        raise TrainError(f"init_from {cfg.init_from}: its architecture differs from [detector] "
                         f"(checkpoint, config): {diff}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in source.model.state_dict().items()})
    log_event(logger, "train_init_from", checkpoint=str(cfg.init_from),
              version=str(source.metadata.get("version", "")))


def _architecture(spec: DetectorSpec) -> dict[str, Any]:
    """The spec fields that shape the weights (tiling, thresholds and NMS do not).

    Anchor sizes are geometry: only the number of anchors per place on each level shapes the
    RPN head, so a fine-tune to another working spacing may scale them (0.2 -> 0.1 mm doubles
    them) and keep every weight.
    """
    keys = ("backbone", "norm_layer", "returned_layers", "box_head_size", "classes", "image_mean", "image_std")
    d = spec.to_dict()
    arch = {k: d.get(k) for k in keys}
    arch["anchors_per_place"] = [len(sizes) * len(spec.aspect_ratios) for sizes in spec.anchor_sizes]
    return arch


def train_steps(state: TrainState, sampler: TileSampler, cfg: TrainConfig, out: Path, device: str,
                *, steps: int, progress: bool = True) -> list[dict[str, float]]:
    """Run the optimisation from ``state.step`` to ``steps``; returns the loss rows written."""
    amp = cfg.optim.amp and device.startswith("cuda")
    rows: list[dict[str, float]] = []
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / CSV_NAME
    _truncate_csv(csv_path, state.step)
    bar = tqdm(total=steps, initial=state.step, desc="train", unit="step", disable=not progress)
    started, bad = time.perf_counter(), 0
    state.model.train()
    while state.step < steps:
        _mine_if_due(state, sampler, cfg, device)
        draws = [sampler.draw(state.rng) for _ in range(cfg.optim.batch_size)]
        images, targets = to_batch(draws, device)
        with torch.autocast("cuda", dtype=torch.float16) if amp else nullcontext():
            losses = state.model(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            bad += 1
            if bad > 10:
                raise LossNotFiniteError(
                    f"the loss was not finite {bad} times (last at step {state.step}): the training diverged; "
                    f"lower train.lr (now {cfg.optim.lr:g}, try a tenth), set train.amp = false when training on "
                    "CUDA (float16 overflows), or check the data's boxes"
                    + (f"; {out / STATE_NAME} keeps the last good steps (--resume)" if (out / STATE_NAME).is_file()
                       else ""))
            state.optimizer.zero_grad(set_to_none=True)
            continue
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        state.scaler.unscale_(state.optimizer)
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.optim.grad_clip)
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.scheduler.step()
        state.step += 1
        row = {"step": state.step, "loss": loss.item(), **{k: v.item() for k, v in losses.items()},
               "lr": state.optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - started, 2)}
        rows.append(row)
        _append_csv(csv_path, row)
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.3f}")
        if state.step % cfg.optim.checkpoint_every == 0 or state.step == steps:
            state.save(out / STATE_NAME, cfg)
            _plot_losses(csv_path, out)
            log_event(logger, "train_checkpoint", step=state.step, loss=round(row["loss"], 4))
    bar.close()
    return rows


def _mine_if_due(state: TrainState, sampler: TileSampler, cfg: TrainConfig, device: str) -> None:
    """Refresh the mined pools at their steps (seeded by step, so a resume repeats it)."""
    t = cfg.tiles
    due = (t.mines and state.step >= t.hard_negative_start
           and (state.step - t.hard_negative_start) % t.hard_negative_every == 0 and state.mined_at != state.step)
    if due:
        from mammocad.model.mining import mine

        started = time.perf_counter()
        mined = mine(state.model, sampler.samples, cfg.detector, device=device,
                     rng=np.random.default_rng([cfg.seed, state.step]), n_images=t.hard_negative_images,
                     min_score=t.hard_negative_min_score,
                     positive_max_score=t.hard_positive_max_score if t.hard_positive_fraction > 0 else 0.0)
        state.hard_negatives = mined.negatives if t.hard_negative_fraction > 0 else []
        state.hard_positives = mined.positives
        state.mined_at = state.step
        log_event(logger, "hard_examples_mined", step=state.step, false_positives=len(state.hard_negatives),
                  misses=len(state.hard_positives), seconds=round(time.perf_counter() - started, 1))
    sampler.hard_negatives = state.hard_negatives
    sampler.hard_positives = state.hard_positives


def _append_csv(path: Path, row: dict[str, float]) -> None:
    fields = ["step", *LOSS_KEYS, "lr", "seconds"]
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        # Rows read back on resume hold floats: keep the step an integer in the file.
        writer.writerow({k: int(row[k]) if k == "step" and k in row else row.get(k, "") for k in fields})


def _truncate_csv(path: Path, step: int) -> None:
    """On resume, drop rows logged after the state that is resumed (they will be redone)."""
    if not path.exists():
        return
    rows = read_losses(path)
    path.unlink()
    for row in rows:
        if row["step"] <= step:
            _append_csv(path, row)


def read_losses(path: Path) -> list[dict[str, float]]:
    with path.open() as fh:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


def _plot_losses(csv_path: Path, out: Path) -> None:
    from mammocad.model.plots import loss_png

    rows = read_losses(csv_path)
    if rows:
        loss_png(rows, out / "loss.png", [k for k in LOSS_KEYS if k in rows[0]])


def finalize(state: TrainState, cfg: TrainConfig, out: Path, device: str, val_items: list[Any],
             test_items: list[Any], command: str, *, progress: bool = True) -> Path:
    """Thresholds on validation, metrics on test, then the release checkpoint (fp16)."""
    from mammocad.model import calibrate as calibration
    from mammocad.model.checkpoint import save_release_checkpoint
    from mammocad.model.evaluate import compute_report, predict_items
    from mammocad.model.inference import Detector

    spec = cfg.detector
    metadata: dict[str, Any] = {
        "model_name": cfg.model_name, "version": cfg.version, "synthetic": cfg.synthetic,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "training": {"command": command, "config": _jsonable(cfg.raw), "steps": state.step,
                     "data": [s.to_dict() for s in cfg.data], "test": cfg.test.to_dict() if cfg.test else None,
                     "validation": [s.to_dict() for s in cfg.validation],
                     "mammocad_version": mammocad.__version__, "torch_version": str(torch.__version__)},
        "lesion_score_threshold": 0.5,
        "not_for_diagnosis": "research use only; not for diagnostic use"
        + ("; trained on synthetic data only (simulated calcifications"
           + ("; some backgrounds are real images)" if any(s.format != "synthetic" for s in cfg.data) else ")")
           if cfg.synthetic else ""),
    }
    path = out / MODEL_NAME
    save_release_checkpoint(path, state.model, spec, cfg.preprocess, metadata)
    report: dict[str, Any] = {}
    if val_items:
        det = Detector.load(path, device)
        cal = calibration.calibrate(predict_items(det, val_items, desc="validate", progress=progress), risk_method=spec.risk_method,
                                    rules=cfg.thresholds, fallback_operating_threshold=spec.operating_threshold,
                                    seed=cfg.seed)
        spec, metadata = calibration.apply(spec, metadata, cal, rules=cfg.thresholds)
        report["validation"] = cal.report
        save_release_checkpoint(path, state.model, spec, cfg.preprocess, metadata)
    if test_items:
        det = Detector.load(path, device)
        ev_test = predict_items(det, test_items, desc="test", progress=progress)
        report["test"] = compute_report(ev_test, breast_threshold=spec.operating_threshold,
                                        lesion_threshold=metadata["lesion_score_threshold"],
                                        risk_method=spec.risk_method, n_bootstrap=cfg.n_bootstrap, seed=cfg.seed)
        _write_plots(report["test"], out)
    metadata["metrics"] = {k: {"metrics": v["metrics"], "ci95": v["ci95"], "counts": v["counts"],
                               "froc": v["froc"]["sensitivity_at_fp_per_image"]} for k, v in report.items()}
    save_release_checkpoint(path, state.model, spec, cfg.preprocess, metadata)
    (out / "metrics.json").write_text(json.dumps(report, indent=1))
    log_event(logger, "train_done", checkpoint=str(path), steps=state.step,
              operating_threshold=spec.operating_threshold)
    return path


def _write_plots(report: dict[str, Any], out: Path) -> None:
    from mammocad.model.plots import froc_png, roc_png

    roc_png(report, out / "roc.png")
    froc_png(report, out / "froc.png")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def run(cfg: TrainConfig, out: Path, *, device: str, resume: Path | None = None, steps: int | None = None,
        command: str = "", progress: bool = True, workers: int = 1) -> Path:
    """The whole training run (see module doc); returns the release checkpoint path.

    workers: processes that draw missing synthetic sets and decode the training images
    (the same data whatever the number; :mod:`mammocad.model.parallel`).
    """
    samples, val_items, test_items = prepare_data(cfg, progress=progress, workers=workers)
    sampler = TileSampler(samples, cfg.tiles, cfg.augment)
    state = make_state(cfg, device)
    if cfg.init_from is not None and resume is None:
        init_weights(state.model, cfg)
    if resume is not None:
        state.load(resume)
        log_event(logger, "train_resumed", step=state.step, state=str(resume))
    # Written only once the data, the model and the state it starts from were read: a refusal
    # before this point leaves no run folder behind.
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(_jsonable(cfg.raw), indent=1))
    train_steps(state, sampler, cfg, out, device, steps=steps or cfg.optim.steps, progress=progress)
    path = finalize(state, cfg, out, device, val_items, test_items, command, progress=progress)
    if cfg.release_path is not None:
        cfg.release_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, cfg.release_path)
        log_event(logger, "train_released", checkpoint=str(cfg.release_path))
        return cfg.release_path
    return path
