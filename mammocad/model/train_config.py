"""The training config: the TOML file's sections as typed, validated dataclasses.

Kept apart from the training loop (``train.py``) so a config can be read, checked and
documented without importing torch's optimisers, and so the schedule (``lr_factor``) can be
tested on its own. Errors name the TOML section and key.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mammocad
from mammocad.model.dataset import AugmentConfig, TileConfig
from mammocad.model.detector import DetectorSpec
from mammocad.model.sources import DataSource
from mammocad.model.standardise import PreprocessSpec

#: Data formats whose lesions are all simulated: a model trained only on them is "synthetic".
SIMULATED_LESION_FORMATS = ("synthetic", "real-background")


class TrainError(RuntimeError):
    """Training cannot go on; the message says what to change."""


@dataclass(frozen=True)
class OptimConfig:
    steps: int = 1000
    batch_size: int = 4
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 5e-4
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    schedule: str = "cosine"  # cosine | constant
    min_lr_fraction: float = 0.05
    #: Cosine with warm restarts (SGDR): lengths of the cycles, summing to ``steps``; cycle k
    #: peaks at ``lr * restart_peak**k``. Empty: one cosine over all steps.
    cycle_steps: tuple[int, ...] = ()
    restart_peak: float = 0.4
    #: Explicit peak of each cycle (overrides ``restart_peak**k``), e.g. to extend a run with
    #: a cycle that learns faster than the geometric rule allows.
    cycle_peaks: tuple[float, ...] = ()
    grad_clip: float = 10.0
    checkpoint_every: int = 200
    amp: bool = True  # used on CUDA only
    #: RoIs sampled per tile for the box head loss (torchvision 512; fewer is faster on CPU).
    roi_batch_size_per_image: int = 128

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"train.optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"train.schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError("train.steps, train.batch_size and train.checkpoint_every must be >= 1")
        if self.cycle_steps and (sum(self.cycle_steps) != self.steps or min(self.cycle_steps) < 1):
            raise ValueError(f"train.cycle_steps {list(self.cycle_steps)} must be positive and sum to "
                             f"train.steps ({self.steps})")
        if self.cycle_peaks and len(self.cycle_peaks) != len(self.cycle_steps):
            raise ValueError(f"train.cycle_peaks needs one value per cycle ({len(self.cycle_steps)}), "
                             f"got {list(self.cycle_peaks)}")


@dataclass(frozen=True)
class ThresholdConfig:
    method: str = "youden"  # youden | sensitivity (breast level)
    target_sensitivity: float = 0.9
    max_fp_per_image: float = 1.0  # lesion score threshold budget
    #: Choose the malignant cut-off on validation lesions (``metrics.choose_class_threshold``);
    #: false keeps 0.5.
    class_threshold: bool = True
    #: accuracy (best share of found lesions classed right) | sensitivity (the highest cut-off
    #: that calls ``class_target_sensitivity`` of the found malignant lesions malignant).
    class_method: str = "accuracy"
    class_target_sensitivity: float = 0.9

    def __post_init__(self) -> None:
        if self.method not in ("youden", "sensitivity"):
            raise ValueError(f"thresholds.method must be 'youden' or 'sensitivity', got {self.method!r}")
        if self.class_method not in ("accuracy", "sensitivity"):
            raise ValueError(f"thresholds.class_method must be 'accuracy' or 'sensitivity', got {self.class_method!r}")
        for name in ("target_sensitivity", "class_target_sensitivity"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"thresholds.{name} must be in (0, 1], got {value}")
        if self.max_fp_per_image < 0:
            raise ValueError(f"thresholds.max_fp_per_image must be >= 0, got {self.max_fp_per_image}")


@dataclass(frozen=True)
class TrainConfig:
    name: str
    version: str
    seed: int
    data: tuple[DataSource, ...]
    val_fraction: float
    test: DataSource | None
    detector: DetectorSpec
    preprocess: PreprocessSpec
    optim: OptimConfig
    tiles: TileConfig
    augment: AugmentConfig
    thresholds: ThresholdConfig
    n_bootstrap: int = 1000
    #: Images for validation only ([validation] or [[validation]]), added to the patients the
    #: split holds out: more validation data makes the thresholds steadier without taking
    #: images from training. Never trained on.
    validation: tuple[DataSource, ...] = ()
    #: Where the finished checkpoint is also copied (the demo config names the packaged
    #: ``mammocad/model/weights/demo.pt``, so its one command rebuilds the shipped file).
    release_path: Path | None = None
    #: Start from the weights of this checkpoint (a ``model.pt`` or released file) instead of a
    #: random initialisation: fine-tuning, e.g. the demo's second stage at a finer working
    #: spacing, or a user's own model on more data. Only the weights are taken; the
    #: architecture must match [detector], and preprocessing comes from this config.
    init_from: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return f"mammocad-frcnn-{self.detector.backbone}"

    @property
    def synthetic(self) -> bool:
        """Every lesion the model learned from was simulated (synthetic studies, or clusters inserted
        into real backgrounds): such weights must say so on every output, as the demo weights do."""
        return all(src.format in SIMULATED_LESION_FORMATS for src in self.data)


#: The tables and keys a training config may hold at its top level (anything else is a typo:
#: ``[optim]`` for ``[train]``, ``seeed``, which TOML parses happily and training ignored).
TOP_LEVEL_KEYS = ("name", "version", "seed", "init_from", "release_path", "data", "validation", "test", "split",
                  "preprocess", "detector", "train", "tiles", "augment", "thresholds", "evaluation")
#: Keys of the small tables read here directly, with the type their default has.
_SPLIT_DEFAULTS = {"val_fraction": 0.15}
_EVALUATION_DEFAULTS = {"n_bootstrap": 1000}
_TOP_DEFAULTS: dict[str, Any] = {"name": "run", "version": "", "seed": 0, "init_from": "", "release_path": ""}


def _kind(default: Any) -> str:
    """What a value must be to stand where ``default`` stands: TOML gives int, float, str, bool, list."""
    if isinstance(default, tuple):
        return f"a list of {_plural(default[0])}" if default else "a list"
    if isinstance(default, bool):
        return "true or false"
    return {int: "a whole number", float: "a number", str: "a string"}.get(type(default), "")


def _plural(default: Any) -> str:
    if isinstance(default, tuple):
        return "lists"
    if isinstance(default, bool):
        return "true/false values"
    return {int: "whole numbers", float: "numbers", str: "strings"}.get(type(default), "values")


def _fits(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, tuple):
        return isinstance(value, (list, tuple)) and (not default or all(_fits(v, default[0]) for v in value))
    return True  # None and other defaults: the section's own checks decide


def _check_table(where: str, values: Any, defaults: dict[str, Any]) -> None:
    """Unknown keys and values of the wrong type, named by section and key.

    Why: a misspelt key was ignored (``val_fration`` kept the default split), and a string for a
    number failed deep inside a dataclass ("'<' not supported between instances of 'str' and
    'int'") or only once training had started.
    """
    if not isinstance(values, dict):
        raise ValueError(f"{where} must be a table, got {values!r}")
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ValueError(f"{where}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(defaults))})")
    for name, value in values.items():
        default = defaults[name]
        if not _fits(value, default):
            raise ValueError(f"{where} {name}".strip() + f" must be {_kind(default)}, got {value!r}")


def _defaults(cls: type) -> dict[str, Any]:
    """A dataclass's fields and their defaults (``None`` for a field without one)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = None
    return out


def _section(raw: dict[str, Any], key: str, cls: type) -> Any:
    values = dict(raw.get(key, {}))
    _check_table(f"[{key}]", values, _defaults(cls))
    for name, value in values.items():
        if isinstance(value, list):
            values[name] = tuple(value)
    return cls(**values)


def _sources(raw: dict[str, Any], key: str) -> tuple[DataSource, ...]:
    """The data sources of a ``[key]`` table or ``[[key]]`` tables (none when absent)."""
    tables = raw.get(key) or []
    tables = tables if isinstance(tables, list) else [tables]
    out = []
    for k, table in enumerate(tables, start=1):
        where = f"[[{key}]] #{k}" if len(tables) > 1 else f"[{key}]"
        if not isinstance(table, dict):
            raise ValueError(f"{where} must be a table, got {table!r}")
        try:
            out.append(DataSource.from_dict(table))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: {exc}") from exc
    return tuple(out)


def config_from_dict(raw: dict[str, Any]) -> TrainConfig:
    """Validate a parsed TOML training config (errors name the section and key)."""
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ValueError(f"unknown top-level keys or tables {', '.join(unknown)} "
                         f"(known: {', '.join(TOP_LEVEL_KEYS)})")
    _check_table("", {k: v for k, v in raw.items() if k in _TOP_DEFAULTS}, _TOP_DEFAULTS)
    if raw.get("data") is None:
        raise ValueError("the training config needs a [data] table (or [[data]] tables)")
    sources = _sources(raw, "data")
    test = _sources(raw, "test")[0] if raw.get("test") else None
    validation = _sources(raw, "validation")
    split = raw.get("split", {})
    _check_table("[split]", split, _SPLIT_DEFAULTS)
    _check_table("[evaluation]", raw.get("evaluation", {}), _EVALUATION_DEFAULTS)
    _check_table("[detector]", raw.get("detector", {}), _defaults(DetectorSpec))
    _check_table("[preprocess]", raw.get("preprocess", {}), _defaults(PreprocessSpec))
    detector = DetectorSpec.from_dict(dict(raw.get("detector", {})))
    tiles = _section(raw, "tiles", TileConfig)
    if tiles.size != detector.tile_size:
        raise ValueError(f"[tiles] size ({tiles.size}) must equal [detector] tile_size ({detector.tile_size}): "
                         "the model is trained on the tiles inference will cut")
    return TrainConfig(
        name=str(raw.get("name", "run")), version=str(raw.get("version", mammocad.__version__)),
        seed=int(raw.get("seed", 0)), data=sources, val_fraction=float(split.get("val_fraction", 0.15)),
        test=test, detector=detector, preprocess=PreprocessSpec.from_dict(dict(raw.get("preprocess", {}))),
        optim=_section(raw, "train", OptimConfig), tiles=tiles,
        augment=_section(raw, "augment", AugmentConfig), thresholds=_section(raw, "thresholds", ThresholdConfig),
        n_bootstrap=int(raw.get("evaluation", {}).get("n_bootstrap", 1000)), validation=validation,
        release_path=Path(raw["release_path"]) if raw.get("release_path") else None,
        init_from=Path(raw["init_from"]) if raw.get("init_from") else None, raw=raw)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise TrainError(f"training config {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise TrainError(f"training config {path} is not valid TOML: {exc}") from exc


def load_config(path: Path) -> TrainConfig:
    raw = _read_toml(path)
    try:
        return config_from_dict(raw)
    except (ValueError, TypeError) as exc:
        raise TrainError(f"training config {path}: {exc}") from exc


def check_inputs(cfg: TrainConfig, config_path: Path | str, resume: Path | None = None) -> None:
    """Raise TrainError naming the first input file or folder that is not there.

    Why before the run: the run drew the config's synthetic sets and read every other source
    first, so a mistyped folder or ``init_from`` was reported minutes (hours, for a large
    synthetic set) after the command started. Synthetic sources are drawn where they are absent.
    """
    named = [("data", s) for s in cfg.data] + [("validation", s) for s in cfg.validation]
    named += [("test", cfg.test)] if cfg.test is not None else []
    for key, src in named:
        if src.format != "synthetic" and not src.path.exists():
            raise TrainError(f"training config {config_path}: [{key}] path {src.path} does not exist "
                             f"(format {src.format}); check the path, relative to where you run the command")
    if cfg.init_from is not None and not cfg.init_from.is_file():
        raise TrainError(f"training config {config_path}: init_from {cfg.init_from} does not exist; train that "
                         "checkpoint first or point init_from at a model.pt")
    if resume is not None and not resume.is_file():
        raise TrainError(f"--resume {resume}: no such file (a run folder's state.pt)")


def load_validation_sources(path: Path) -> tuple[DataSource, ...]:
    """The ``[[validation]]`` sets of a training config, or of a file that holds only those.

    ``calibrate`` reads them so that thresholds can be chosen again on exactly the sets a
    training run chose them on, with each set's own format, seed and reader options.
    """
    raw = _read_toml(path)
    try:
        sources = _sources(raw, "validation")
    except (ValueError, TypeError) as exc:
        raise TrainError(f"training config {path}: {exc}") from exc
    if not sources:
        raise TrainError(f"training config {path} has no [[validation]] tables")
    return sources


def lr_factor(cfg: OptimConfig, step: int) -> float:
    """Multiplier of ``lr`` at ``step``: linear warm-up, then cosine (per cycle when restarting)."""
    warm = min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
    if cfg.schedule == "constant":
        return warm
    start, length, peak = 0, cfg.steps, 1.0
    for k, cycle in enumerate(cfg.cycle_steps):
        length, peak = cycle, cfg.cycle_peaks[k] if cfg.cycle_peaks else cfg.restart_peak ** k
        if step < start + cycle or k == len(cfg.cycle_steps) - 1:
            break
        start += cycle
    progress = min(1.0, (step - start) / max(length, 1))
    cosine = cfg.min_lr_fraction + (1 - cfg.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress))
    return warm * peak * cosine
