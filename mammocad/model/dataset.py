"""Training data: annotated images decoded once, standardised, and cut into tiles.

Why tiles: calcifications are a few pixels wide, so the detector sees the image at native
detail in fixed-size tiles (the same size inference tiles with). Positives are tiles
centred on a lesion with random jitter, so the model does not learn "lesions sit in the
middle"; negatives are random breast tiles from any image, lesion-free images included,
so it learns what normal tissue looks like. Augmentation flips and transposes the boxes
together with the pixels (the reference study's code flipped the pixels only).

Everything here is numpy; ``train.py`` turns tiles into tensors. Images are decoded and
standardised once and kept in memory: fine for the small sets CPU training can use.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from mammocad.model.annotations import AnnotatedImage
from mammocad.model.frame import flip_boxes
from mammocad.model.parallel import ordered_map

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from mammocad.model.mining import HardNegative, HardPositive


@dataclass(frozen=True)
class Sample:
    """One standardised image. boxes: float[M, 4] in model-frame pixels; labels: int[M] 1/2;
    ignore: float[K, 4], lesions taught neither as lesion nor as background (``TileConfig.ignore_lesions``)."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    breast_id: str
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    #: How often the sampler draws this image relative to the others (its source's
    #: ``DataSource.weight``).
    weight: float = 1.0


@dataclass(frozen=True)
class TileConfig:
    size: int = 256
    #: Share of tiles centred on a lesion; the rest are random breast tiles.
    positive_fraction: float = 0.6
    #: Lesion centre offset from the tile centre, as a fraction of half the tile size.
    jitter: float = 0.6
    #: Draw benign and malignant lesions equally often for positive tiles.
    balance_classes: bool = True
    #: A box cut by the tile edge is kept when this share of its area stays inside.
    min_visible: float = 0.5
    #: A random tile is redrawn (up to 10 times) when less of it than this is breast.
    min_breast: float = 0.3
    #: Share of tiles centred on a mined false positive (``mining.py``), once the pool has
    #: any; taken from the random tiles' share.
    hard_negative_fraction: float = 0.0
    #: Mine (false positives and misses alike) every this many steps (0: never), from step
    #: ``hard_negative_start`` on.
    hard_negative_every: int = 0
    hard_negative_start: int = 0
    #: Images looked at per mining round (0: all), and the lowest score that counts as a
    #: false positive.
    hard_negative_images: int = 0
    hard_negative_min_score: float = 0.3
    #: Share of the *lesion* tiles centred on a lesion the model missed at the last mining
    #: round (no box scoring ``hard_positive_max_score`` or more centred in it), once the
    #: pool has any (``mining.py``). 0 mines no misses.
    hard_positive_fraction: float = 0.0
    hard_positive_max_score: float = 0.5
    #: Lesions whose description holds one of these words (e.g. "amorphous") are left out of
    #: training: no tile is centred on them, no tile that overlaps them is drawn (up to 10 tries,
    #: then the tile is kept), and mining does not take the model's marks on them for false
    #: positives. For kinds the model cannot see at its working resolution: taught as lesions they
    #: teach it to mark plain tissue, taught as background they teach it to miss them. Evaluation
    #: still counts them, and counts their misses.
    ignore_lesions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.size < 32:
            raise ValueError(f"tiles.size must be >= 32, got {self.size}")
        if not 0.0 <= self.positive_fraction <= 1.0:
            raise ValueError(f"tiles.positive_fraction must be in [0, 1], got {self.positive_fraction}")
        if not 0.0 <= self.hard_negative_fraction <= 1.0 - self.positive_fraction:
            raise ValueError(f"tiles.hard_negative_fraction must be in [0, 1 - positive_fraction], got "
                             f"{self.hard_negative_fraction}")
        if self.hard_negative_every < 0 or self.hard_negative_start < 0 or self.hard_negative_images < 0:
            raise ValueError("tiles.hard_negative_every, hard_negative_start and hard_negative_images must be >= 0")
        if not 0.0 <= self.hard_positive_fraction <= 1.0:
            raise ValueError(f"tiles.hard_positive_fraction must be in [0, 1], got {self.hard_positive_fraction}")
        if not 0.0 < self.hard_positive_max_score <= 1.0:
            raise ValueError(f"tiles.hard_positive_max_score must be in (0, 1], got {self.hard_positive_max_score}")

    @property
    def mines(self) -> bool:
        """Whether a mining round has any pool to fill."""
        return self.hard_negative_every > 0 and (self.hard_negative_fraction > 0 or self.hard_positive_fraction > 0)


@dataclass(frozen=True)
class AugmentConfig:
    """Per-tile augmentation. ``blur``, ``sharpen`` and ``quantise`` are probabilities of an
    acquisition change: a softer or a crisper 0.2 mm grid than the training image's (Gaussian
    blur of ``blur_sigma`` px; else, with ``sharpen``, an unsharp mask of ``sharpen_amount`` at
    1 px) and a coarse digitiser
    (intensities rounded to ``quantise_levels`` levels: an 8-bit film scan stretched by the
    window). The same films scanned differently drew different marks from 0.7.0-demo."""

    hflip: float = 0.5
    vflip: float = 0.5
    transpose: float = 0.0
    gamma: tuple[float, float] = (0.8, 1.25)
    contrast: tuple[float, float] = (0.9, 1.1)
    noise_std: float = 0.01
    blur: float = 0.0
    blur_sigma: tuple[float, float] = (0.3, 0.8)
    sharpen: float = 0.0
    sharpen_amount: tuple[float, float] = (0.3, 1.0)
    quantise: float = 0.0
    quantise_levels: tuple[int, int] = (64, 256)

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip", "transpose", "blur", "sharpen", "quantise"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"[augment] {name} is a probability in [0, 1], got {getattr(self, name)}")
        if not 2 <= self.quantise_levels[0] <= self.quantise_levels[1]:
            raise ValueError(f"[augment] quantise_levels must be [low, high] with 2 <= low <= high, "
                             f"got {list(self.quantise_levels)}")
        if not 0.0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"[augment] blur_sigma must be [low, high] px with 0 < low <= high, got {list(self.blur_sigma)}")


def decode_image(item: AnnotatedImage, preprocess: Any) -> Any:
    """Read one image from disk and standardise it (DICOM, or PNG/PGM for mini-MIAS)."""
    from mammocad.model import standardise as st

    path = Path(item.image_path)
    if not path.exists():
        raise FileNotFoundError(f"image {path} listed in the data set does not exist")
    if path.suffix.lower() in (".png", ".pgm", ".jpg", ".jpeg", ".tif", ".tiff"):
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im)
        return st.standardise_array(arr, laterality=item.laterality, spacing_mm=item.pixel_spacing_mm,
                                    view=item.view, spec=preprocess)
    # A reader that knows the pixel size of header-less files (digitised film) says so per item;
    # it must not become the checkpoint's fallback for every other image at inference.
    declared = item.pixel_spacing_mm or item.extra.get("spacing_mm")
    known = float(declared) if declared else None
    return st.standardise(image_dataset(item, known), preprocess, spacing_mm=known)


def image_dataset(item: AnnotatedImage, spacing_mm: float | None = None) -> Dataset:
    """The DICOM data set the model learns from: the file, with a real background's inserted
    clusters pasted in, rendered as its source's options asked (``spacing_mm``: the item's
    declared pitch, for files without one in the header)."""
    import pydicom

    if item.extra.get("real_background"):
        from mammocad.model.readers.real_background import dataset_with_inserts

        return dataset_with_inserts(item)
    from mammocad.model.readers.film_rendering import RENDER_KEY, render_coarser

    ds: Dataset = pydicom.dcmread(item.image_path)
    render = item.extra.get(RENDER_KEY)
    if render:  # a synthetic view shown as public film sets ship theirs (film_rendering.SourceRendering)
        ds = render_coarser(ds, np.array(ds.pixel_array, copy=True), int(render["factor"]), render.get("bits"),
                            spacing_mm=spacing_mm)
    return ds


def to_sample(item: AnnotatedImage, preprocess: Any, ignore_lesions: Sequence[str] = ()) -> Sample:
    """The image standardised, its boxes in the model's frame; lesions whose description holds a
    word of ``ignore_lesions`` go to ``Sample.ignore`` instead of the boxes."""
    std = decode_image(item, preprocess)
    image = np.asarray(std.image, dtype=np.float32)
    words = [w.lower() for w in ignore_lesions]
    ignored = [any(w in les.description.lower() for w in words) for les in item.lesions]
    taught = [les for les, skip in zip(item.lesions, ignored, strict=True) if not skip]
    boxes = _model_boxes(std, [les.box for les in taught], image.shape)
    labels = np.array([les.lesion_class.label for les in taught], dtype=np.int64)
    ok = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    skipped = [les.box for les, skip in zip(item.lesions, ignored, strict=True) if skip]
    return Sample(image, boxes[ok], labels[ok], item.breast_id, ignore=_model_boxes(std, skipped, image.shape))


def _model_boxes(std: Any, boxes: Sequence[Sequence[float]], shape: tuple[int, ...]) -> np.ndarray:
    """Original-pixel boxes in the standardised image's frame, clipped to it (float32[N, 4])."""
    if not boxes:
        return np.zeros((0, 4), np.float32)
    out = std.transform.to_model(np.array(boxes, dtype=np.float64)).copy()
    h, w = shape
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w - 1)  # pixel centres at integers: a flip keeps the range
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h - 1)
    return out.astype(np.float32)


def load_samples(items: Sequence[AnnotatedImage], preprocess: Any, *, desc: str = "decode",
                 progress: bool = True, workers: int = 1, ignore_lesions: Sequence[str] = ()) -> list[Sample]:
    """Decode and standardise every image once (progress bar: this is the slow part), in
    ``workers`` processes (:mod:`mammocad.model.parallel`: the same samples in the same order)."""
    decode = functools.partial(to_sample, preprocess=preprocess, ignore_lesions=tuple(ignore_lesions))
    return list(tqdm(ordered_map(decode, items, workers), total=len(items), desc=desc, unit="img", leave=False,
                     disable=not progress))


def image_probabilities(samples: Sequence[Sample]) -> np.ndarray | None:
    """Each sample's share of the draws by its weight, or None when all weights are equal
    (then callers draw uniformly, with the calls they made before weights existed)."""
    w = np.array([s.weight for s in samples], dtype=np.float64)
    if not len(w) or np.all(w == w[0]):
        return None
    return w / w.sum()


def _index(rng: np.random.Generator, n: int, p: np.ndarray | None) -> int:
    """One of ``range(n)``: uniform (``rng.integers``, the call made before weights existed) or by ``p``."""
    return int(rng.integers(n)) if p is None else int(rng.choice(n, p=p))


def split_by_breast(items: Sequence[AnnotatedImage], val_fraction: float, seed: int
                    ) -> tuple[list[AnnotatedImage], list[AnnotatedImage]]:
    """Deterministic split that keeps all views of a breast (and its patient) on one side.

    The patient is the breast_id without its trailing laterality, so both breasts of a
    woman land together: no patient contributes to both training and validation.
    """
    def key(item: AnnotatedImage) -> float:
        bid = item.breast_id
        patient = bid[:-2] if len(bid) > 2 and bid[-2] in "-_ " and bid[-1] in "LR" else bid
        digest = hashlib.sha256(f"{seed}:{patient}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    train = [it for it in items if key(it) >= val_fraction]
    val = [it for it in items if key(it) < val_fraction]
    return train, val


@dataclass
class TileSampler:
    """Draws (tile, boxes, labels) triples from in-memory samples; seeded by the caller's rng."""

    samples: Sequence[Sample]
    tiles: TileConfig = field(default_factory=TileConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    #: Mined false positives (image index, x, y, score) in the working frame; see mining.py.
    hard_negatives: list[HardNegative] = field(default_factory=list)
    #: Mined misses (image index, lesion index, best score); see mining.py.
    hard_positives: list[HardPositive] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("no training images: check the data source in the training config")
        self._lesions = [(i, j) for i, s in enumerate(self.samples) for j in range(len(s.labels))]
        self._by_class = {c: [(i, j) for i, j in self._lesions if self.samples[i].labels[j] == c] for c in (1, 2)}
        # Probabilities only when the weights differ: equal weights draw with rng.integers, as
        # before weights existed, so a config without them draws the same tiles. The pools are
        # fixed, so their lesions' probabilities (by their images' weights) are worked out once.
        self._image_p = image_probabilities(self.samples)
        self._pool_p = {id(pool): self._lesion_probabilities(pool)
                        for pool in (self._lesions, *self._by_class.values())}

    def _lesion_probabilities(self, pool: Sequence[tuple[int, int]]) -> np.ndarray | None:
        if self._image_p is None or not pool:
            return None
        w = np.array([self.samples[i].weight for i, _ in pool], dtype=np.float64)
        return w / w.sum()

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = rng.random()
        if self._lesions and r < self.tiles.positive_fraction:
            pick = self._positive_origin
        elif self.hard_negatives and r < self.tiles.positive_fraction + self.tiles.hard_negative_fraction:
            pick = self._hard_negative_origin
        else:
            pick = self._negative_origin
        image_idx, origin = pick(rng)
        # Ignored lesions (TileConfig.ignore_lesions) would be taught as background: draw again.
        # Images without any draw nothing more, so runs without the option draw the same tiles.
        for _ in range(10):
            if not self._overlaps_ignored(self.samples[image_idx], origin):
                break
            image_idx, origin = pick(rng)
        tile, boxes, labels = self._cut(self.samples[image_idx], origin)
        return self._augment(tile, boxes, labels, rng)

    def _overlaps_ignored(self, s: Sample, origin: tuple[int, int]) -> bool:
        if not len(s.ignore):
            return False
        x0, y0 = origin
        t = self.tiles.size
        b = s.ignore
        return bool(((b[:, 0] < x0 + t) & (b[:, 2] > x0) & (b[:, 1] < y0 + t) & (b[:, 3] > y0)).any())

    def _positive_origin(self, rng: np.random.Generator) -> tuple[int, tuple[int, int]]:
        # rng is drawn from only when there is a pool, so a run without misses mined draws
        # exactly the tiles it drew before hard positives existed.
        if self.hard_positives and rng.random() < self.tiles.hard_positive_fraction:
            i, j, _ = self.hard_positives[int(rng.integers(len(self.hard_positives)))]
        else:
            pool = self._lesions
            if self.tiles.balance_classes:
                classes = [c for c in (1, 2) if self._by_class[c]]
                pool = self._by_class[classes[int(rng.integers(len(classes)))]]
            i, j = pool[_index(rng, len(pool), self._pool_p[id(pool)])]
        x1, y1, x2, y2 = self.samples[i].boxes[j]
        half = self.tiles.size / 2
        cx = (x1 + x2) / 2 + rng.uniform(-1, 1) * self.tiles.jitter * half
        cy = (y1 + y2) / 2 + rng.uniform(-1, 1) * self.tiles.jitter * half
        return i, self._clamp(self.samples[i], cx - half, cy - half)

    def _hard_negative_origin(self, rng: np.random.Generator) -> tuple[int, tuple[int, int]]:
        i, cx, cy, _ = self.hard_negatives[int(rng.integers(len(self.hard_negatives)))]
        half = self.tiles.size / 2
        cx += rng.uniform(-1, 1) * self.tiles.jitter * half
        cy += rng.uniform(-1, 1) * self.tiles.jitter * half
        return i, self._clamp(self.samples[i], cx - half, cy - half)

    def _negative_origin(self, rng: np.random.Generator) -> tuple[int, tuple[int, int]]:
        i = _index(rng, len(self.samples), self._image_p)
        s = self.samples[i]
        h, w = s.image.shape
        origin = (0, 0)
        for _ in range(10):
            origin = self._clamp(s, rng.uniform(0, max(w - self.tiles.size, 0) + 1),
                                 rng.uniform(0, max(h - self.tiles.size, 0) + 1))
            x0, y0 = origin
            patch = s.image[y0:y0 + self.tiles.size, x0:x0 + self.tiles.size]
            if patch.size and (patch > 0.02).mean() >= self.tiles.min_breast:
                break
        return i, origin

    def _clamp(self, s: Sample, x0: float, y0: float) -> tuple[int, int]:
        h, w = s.image.shape
        t = self.tiles.size
        return int(np.clip(round(x0), 0, max(w - t, 0))), int(np.clip(round(y0), 0, max(h - t, 0)))

    def _cut(self, s: Sample, origin: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = self.tiles.size
        x0, y0 = origin
        tile = np.zeros((t, t), dtype=np.float32)  # zero-padded where the image is smaller
        patch = s.image[y0:y0 + t, x0:x0 + t]
        tile[:patch.shape[0], :patch.shape[1]] = patch
        if len(s.boxes) == 0:
            return tile, np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        b = s.boxes - np.array([x0, y0, x0, y0], dtype=np.float32)
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        c = b.clip(0, [patch.shape[1] - 1, patch.shape[0] - 1] * 2)  # as _model_boxes clips
        visible = (c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])
        keep = (visible >= self.tiles.min_visible * area) & (c[:, 2] - c[:, 0] >= 1) & (c[:, 3] - c[:, 1] >= 1)
        return tile, c[keep].astype(np.float32), s.labels[keep]

    def _augment(self, tile: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = self.augment
        boxes = boxes.copy()
        if rng.random() < a.hflip:
            tile = tile[:, ::-1]
            boxes = flip_boxes(boxes, tile.shape, horizontal=True).astype(np.float32)
        if rng.random() < a.vflip:
            tile = tile[::-1, :]
            boxes = flip_boxes(boxes, tile.shape, vertical=True).astype(np.float32)
        if rng.random() < a.transpose:
            tile = tile.T
            boxes = boxes[:, [1, 0, 3, 2]]
        tile = np.ascontiguousarray(tile)
        gamma = rng.uniform(*a.gamma)
        contrast = rng.uniform(*a.contrast)
        tile = np.clip(tile, 0, 1) ** gamma * contrast
        if a.noise_std > 0:
            tile = tile + rng.normal(0, a.noise_std, tile.shape).astype(np.float32) * (tile > 0)
        return np.clip(acquire(tile, a, rng), 0, 1).astype(np.float32), boxes, labels


def acquire(tile: np.ndarray, a: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """The tile as another digitiser or detector would have given it (``AugmentConfig``)."""
    from scipy import ndimage

    if a.blur > 0 and rng.random() < a.blur:
        tile = ndimage.gaussian_filter(tile, rng.uniform(*a.blur_sigma), mode="nearest")
    elif a.sharpen > 0 and rng.random() < a.sharpen:
        tile = tile + rng.uniform(*a.sharpen_amount) * (tile - ndimage.gaussian_filter(tile, 1.0, mode="nearest"))
    if a.quantise > 0 and rng.random() < a.quantise:
        levels = int(rng.integers(a.quantise_levels[0], a.quantise_levels[1] + 1)) - 1
        tile = np.round(np.clip(tile, 0, 1) * levels) / levels
    return tile
