"""Real mammograms with no annotation + simulated calcification clusters = training data.

``read(path, seed=..., ...)`` takes any folder of unannotated real mammograms (DICOM: DR "For
Presentation" or "For Processing", MONOCHROME1/2, digitised film) and inserts simulated clusters
into a share of the breasts through ``mammocad.model.synth.insertion`` (the same physics as the
synthetic generator). Everything already in an image is background: a real calcification there
stays unlabelled, so use normal screening studies. A site adapts the detector to its own
scanners this way without annotating anything (docs/DATASETS.md, "Real backgrounds").

What is written: nothing next to the images. A cache folder (option ``cache``, default
``var/real-background/<digest of folder, seed and options>``) receives ``manifest.json`` and one
small ``patches/*.npz`` per changed image holding only the rectangles the clusters changed, so
a site's archive is not copied. ``dataset.decode_image`` pastes the patches back over the
decoded original (:func:`dataset_with_inserts`). Same folder + seed + options → same clusters;
breast k's clusters do not depend on the other breasts.

Breasts are grouped by Patient ID (a trailing ``_RIGHT_MLO``-style suffix removed, as CBIS-DDSM
writes it; the folder name when empty) and laterality: export pseudonymised IDs that stay distinct
per woman. Per breast: with probability ``lesion_fraction`` it gets 1..``max_clusters``
clusters (malignant with probability ``malignant_fraction``), the same 3-D clusters projected into
each of its views at a position drawn per view; the other breasts stay negative. Positions lie
inside the breast at least 6 mm from the skin line, 10 mm from other bright objects (film labels,
markers), off the pectoral muscle of MLO views and apart from each other.

``render_spacing_mm`` / ``render_bits`` show each image, after the insertion, as public film sets
ship their scans (mini-MIAS: 0.2 mm, 8 bits): means over blocks of whole pixels down to about
that spacing, then the stored values rounded to that many bits. The clusters go in at the scan's
own resolution first, so they are digitised with the film. Truth boxes and specks are in the
rendered image's pixels. A detector trained only on the full scans marks such renderings
differently (docs/DATASETS.md); this lets training see both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from tqdm import tqdm

from mammocad.dicom import header as dicom_header
from mammocad.logs import log_event
from mammocad.model.annotations import (
    MANIFEST_NAME,
    AnnotatedImage,
    AnnotatedLesion,
    load_manifest,
    save_manifest,
)
from mammocad.model.readers.background_maps import BreastMaps, breast_maps, pick_centre
from mammocad.model.readers.common import header_laterality_view, name_laterality_view, require
from mammocad.model.readers.film_rendering import (
    SPACING_KEYWORDS,
    block_factor,
    render_coarser,
    rendered_coordinate,
    rendered_lesions,
    rendered_specks,
)
from mammocad.model.synth import insertion
from mammocad.model.synth.calcifications import ClusterSpec, sample_cluster
from mammocad.model.synth.raster import speck_truth

logger = logging.getLogger(__name__)

#: Bump when the insertion changes, so an old cache is not reused.
INSERTION_VERSION = 8
#: Key of AnnotatedImage.extra that makes ``decode_image`` paste the patches.
EXTRA_KEY = "real_background"
_SC_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_FILM_DIGITISERS = ("HOWTEK", "LUMISYS", "DBA", "VIDAR", "ARRAY")
_TRAILING_VIEW = re.compile(r"[_ -](LEFT|RIGHT|L|R)[_ -](CC|MLO|ML|LM|XCCL)$", re.IGNORECASE)


class MissingSpacingError(ValueError):
    """An image has no pixel spacing and no ``fallback_spacing_mm`` was given: a config error."""


@dataclass(frozen=True)
class Options:
    """The reader's options (``[data] options`` in a training config)."""

    seed: int = 0
    lesion_fraction: float = 0.5
    malignant_fraction: float = 0.5
    max_clusters: int = 2
    acquisition: str = "auto"
    fallback_spacing_mm: float | None = None
    psf_sigma_mm: tuple[float, float] | None = None
    render_spacing_mm: float | None = None
    render_bits: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.lesion_fraction <= 1 or not 0 <= self.malignant_fraction <= 1:
            raise ValueError("lesion_fraction and malignant_fraction must be within 0..1")
        if self.max_clusters < 1:
            raise ValueError(f"max_clusters must be >= 1, got {self.max_clusters}")
        if self.acquisition not in ("auto", *insertion.ACQUISITIONS):
            raise ValueError(f"acquisition must be auto, film, dr or raw, got {self.acquisition!r}")
        if self.fallback_spacing_mm is not None and not 0.01 <= self.fallback_spacing_mm <= 1.0:
            raise ValueError(f"fallback_spacing_mm must be 0.01..1.0 mm, got {self.fallback_spacing_mm}")
        if self.render_spacing_mm is not None and not 0.01 <= self.render_spacing_mm <= 1.0:
            raise ValueError(f"render_spacing_mm must be 0.01..1.0 mm, got {self.render_spacing_mm}")
        if self.render_bits is not None and not 6 <= self.render_bits <= 16:
            raise ValueError(f"render_bits must be 6..16, got {self.render_bits}")

    def digest_items(self) -> dict[str, Any]:
        return {"seed": self.seed, "lesion_fraction": self.lesion_fraction,
                "malignant_fraction": self.malignant_fraction, "max_clusters": self.max_clusters,
                "acquisition": self.acquisition, "fallback_spacing_mm": self.fallback_spacing_mm,
                "psf_sigma_mm": list(self.psf_sigma_mm) if self.psf_sigma_mm else None,
                "version": INSERTION_VERSION,
                # Only when set, so caches built before these options still match.
                **({"render_spacing_mm": self.render_spacing_mm} if self.render_spacing_mm else {}),
                **({"render_bits": self.render_bits} if self.render_bits else {})}


@dataclass(frozen=True)
class _Image:
    path: Path
    rel: str
    patient: str
    laterality: str
    view: str


def read(path: Path, *, seed: int = 0, cache: str | Path | None = None, lesion_fraction: float = 0.5,
         malignant_fraction: float = 0.5, max_clusters: int = 2, acquisition: str = "auto",
         fallback_spacing_mm: float | None = None, psf_sigma_mm: list[float] | None = None,
         render_spacing_mm: float | None = None, render_bits: int | None = None,
         progress: bool = True) -> list[AnnotatedImage]:
    """Images of the folder ``path`` with clusters inserted (built once into the cache)."""
    opts = Options(seed=int(seed), lesion_fraction=float(lesion_fraction),
                   malignant_fraction=float(malignant_fraction), max_clusters=int(max_clusters),
                   acquisition=str(acquisition),
                   fallback_spacing_mm=None if fallback_spacing_mm is None else float(fallback_spacing_mm),
                   psf_sigma_mm=(float(psf_sigma_mm[0]), float(psf_sigma_mm[1])) if psf_sigma_mm else None,
                   render_spacing_mm=None if render_spacing_mm is None else float(render_spacing_mm),
                   render_bits=None if render_bits is None else int(render_bits))
    root = require(Path(path), "folder of real mammograms").resolve()
    images = _scan(root)
    if not images:
        raise ValueError(f"{root}: no DICOM mammograms found (any *.dcm / *.dicom or extension-less DICOM file)")
    folder = Path(cache) if cache is not None else Path("var/real-background") / _digest(root, images, opts)
    info = {"generator": "mammocad.model.readers.real_background", "source": str(root),
            "options": opts.digest_items(), "images": len(images),
            "note": "real backgrounds with simulated calcifications"}
    if _cache_matches(folder, info):
        return load_manifest(folder)
    if (folder / "patches").is_dir():  # built with other options or another folder: rebuild
        shutil.rmtree(folder / "patches")
    out = _build(images, opts, folder, progress)
    if not out:
        raise ValueError(f"{root}: no image could take inserted clusters (see the real_background_skipped log lines)")
    save_manifest(folder, out, info)
    log_event(logger, "real_background_built", images=len(out), inserted=sum(bool(i.lesions) for i in out),
              cache=str(folder))
    return load_manifest(folder)


def _cache_matches(folder: Path, info: dict[str, Any]) -> bool:
    """The cache holds a build of this folder with these options (by this insertion version)."""
    try:
        saved = json.loads((folder / MANIFEST_NAME).read_text()).get("info", {})
    except (OSError, ValueError):
        return False
    return all(saved.get(key) == info[key] for key in ("generator", "source", "options", "images"))


def _scan(root: Path) -> list[_Image]:
    found = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in (".dcm", ".dicom", "") or p.name == MANIFEST_NAME:
            continue
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception:  # not DICOM: skipped, the folder may hold other files
            continue
        if "Rows" not in ds:
            continue
        if int(ds.get("NumberOfFrames", 1) or 1) > 1 or int(ds.get("SamplesPerPixel", 1)) != 1:
            log_event(logger, "real_background_skipped", path=p.name, reason="not a single-frame grayscale image")
            continue
        lat, view = _laterality_view(ds, p)
        if lat not in ("L", "R"):
            log_event(logger, "real_background_skipped", path=p.name, reason="no laterality")
            continue
        patient = _TRAILING_VIEW.sub("", str(ds.get("PatientID", "") or p.parent.name))
        found.append(_Image(p, str(p.relative_to(root)), patient, lat, view))
    return found


def _laterality_view(ds: Dataset, path: Path) -> tuple[str, str]:
    """Header first; digitised-film archives hide the view in PatientOrientation or the Patient ID."""
    lat, view = header_laterality_view(path)
    if view not in ("CC", "MLO"):
        orientation = ds.get("PatientOrientation")
        words = [str(v).upper() for v in (orientation if isinstance(orientation, list | tuple) else [orientation])]
        view = next((w for w in words if w in ("CC", "MLO")), "")
    if not view or lat not in ("L", "R"):
        id_lat, id_view = name_laterality_view(str(ds.get("PatientID", "")))
        lat, view = lat if lat in ("L", "R") else id_lat, view or id_view
    return lat, "MLO" if view == "ML" else view


def _digest(root: Path, images: list[_Image], opts: Options) -> str:
    h = hashlib.sha256(json.dumps(opts.digest_items(), sort_keys=True).encode())
    h.update(str(root).encode())
    for im in images:
        h.update(f"{im.rel}:{im.path.stat().st_size}".encode())
    return h.hexdigest()[:16]


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _build(images: list[_Image], opts: Options, folder: Path, progress: bool) -> list[AnnotatedImage]:
    breasts: dict[str, list[_Image]] = {}
    for im in images:
        breasts.setdefault(f"{im.patient}_{im.laterality}", []).append(im)
    out = []
    bar = tqdm(total=len(images), desc="real backgrounds", unit="img", disable=not progress, leave=False)
    for breast_id, views in sorted(breasts.items()):
        rng = np.random.default_rng([opts.seed, _stable(breast_id)])
        specs: list[ClusterSpec] = []
        if rng.random() < opts.lesion_fraction:
            n = int(rng.integers(1, opts.max_clusters + 1))
            specs = [sample_cluster(rng, malignant=bool(rng.random() < opts.malignant_fraction)) for _ in range(n)]
        done = []
        for im in views:
            try:
                done.append(_insert_into(im, breast_id, specs, opts, folder))
            except MissingSpacingError:
                raise
            except ValueError as exc:  # no breast found, a flat image...: left out, said why
                log_event(logger, "real_background_skipped", logging.WARNING, path=im.rel, reason=str(exc))
            bar.update()
        # Breast truth is the breast's: a view where a cluster found no room still belongs to it.
        malignant = any(les.lesion_class.value == "malignant" for item in done for les in item.lesions)
        out += [replace(item, breast_malignant=malignant) for item in done]
    bar.close()
    return out


def _insert_into(im: _Image, breast_id: str, specs: list[ClusterSpec], opts: Options, folder: Path) -> AnnotatedImage:
    ds = pydicom.dcmread(im.path)
    pitch, declared = _spacing(ds, im, opts)
    spacing = float(np.sqrt(pitch[0] * pitch[1]))  # where one size is needed: placement margins, rendering
    acquisition = _acquisition(ds) if opts.acquisition == "auto" else opts.acquisition
    render = _render(spacing, opts)
    # The pitch the header lacks, for dataset_with_inserts to write into it (only when not square:
    # a square one reaches the standardiser as the item's spacing_mm).
    header = {"pixel_spacing_mm": list(pitch)} if declared and pitch[0] != pitch[1] else {}
    info = {**({"render": render} if render else {}), **header}
    base = AnnotatedImage(image_path=im.path, laterality=im.laterality, view=im.view, breast_id=breast_id,
                          lesions=(), breast_malignant=False,
                          extra={"source": im.rel, "spacing_mm": spacing * render["factor"] if render else spacing,
                                 "acquisition": acquisition, **({EXTRA_KEY: info} if info else {})})
    if not specs:
        return base
    stored = _pixels(ds)
    rng = np.random.default_rng([opts.seed, _stable(im.rel), 1])
    acq = insertion.Acquisition.sample(rng, acquisition, opts.psf_sigma_mm)
    inverted = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1"
    vmax = float(2 ** int(ds.get("BitsStored", 16)) - 1)
    maps = breast_maps(stored, spacing, invert=inverted or acquisition == "raw", vmax=vmax, view=im.view)
    model = insertion.estimate_value_model(maps.reduced, maps.interior, acquisition, acq, inverted=inverted, vmax=vmax)
    projection = "MLO" if im.view == "MLO" else "CC"  # an unknown view is projected as CC
    lesions, patches, clusters = _insert_specs(specs, stored, model, maps, acq, projection, pitch, rng, im.rel)
    if not lesions:
        return base
    if render:
        lesions, clusters = _rendered_truth(lesions, clusters, render["factor"])
    patch_file = (folder / "patches" / f"{_stable(im.rel):016x}.npz").resolve()
    patch_file.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(patch_file, shape=np.array(stored.shape), **patches)
    malignant = any(les.lesion_class.value == "malignant" for les in lesions)
    # Top-level "specks" (x, y, diameter_mm in this image's pixels) is what the realism report reads.
    specks = [speck for cluster in clusters for speck in cluster["specks"]]
    extra = {**base.extra, "specks": specks, EXTRA_KEY: {"patches": str(patch_file), "clusters": clusters,
                                       "value_model": model.to_dict(), "physics": asdict(acq), **info}}
    return AnnotatedImage(image_path=im.path, laterality=im.laterality, view=im.view, breast_id=breast_id,
                          lesions=tuple(lesions), breast_malignant=malignant, extra=extra)


def _insert_specs(specs: list[ClusterSpec], stored: np.ndarray, model: insertion.ValueModel, maps: BreastMaps,
                  acq: insertion.Acquisition, projection: str, pitch: tuple[float, float], rng: np.random.Generator,
                  rel: str) -> tuple[list[AnnotatedLesion], dict[str, Any], list[dict[str, Any]]]:
    """Place and insert each cluster (``stored`` is updated in place); its truth, patches and record.
    pitch: (row, column) mm per pixel."""
    spacing = float(np.sqrt(pitch[0] * pitch[1]))
    lesions: list[AnnotatedLesion] = []
    patches: dict[str, Any] = {}
    clusters: list[dict[str, Any]] = []
    taken: list[tuple[tuple[float, float], float]] = []
    for k, spec in enumerate(specs):
        centre = pick_centre(maps, spec.extent_mm(), taken, rng)
        if centre is None:
            log_event(logger, "real_background_no_room", image=rel, kind=spec.kind)
            continue
        done = insertion.insert_cluster(stored, model, spec, projection, centre, pitch, acq, rng)
        if done is None:
            continue
        r0, c0 = done.origin
        h, w = done.values.shape
        stored[r0:r0 + h, c0:c0 + w] = done.values  # later clusters see the earlier ones
        taken.append((centre, spec.extent_mm() / spacing))
        patches[f"origin_{k}"] = np.array(done.origin)
        patches[f"values_{k}"] = done.values
        lesions.append(AnnotatedLesion(box=done.box, lesion_class=spec.lesion_class,
                                       description=f"simulated: {spec.description}"))
        clusters.append({"kind": spec.kind, "distribution": spec.distribution, "centre": [round(c, 1) for c in centre],
                         "peak_delta_l": round(done.peak_delta_l, 4),
                         "specks": _speck_truth(spec, projection, centre, pitch)})
    return lesions, patches, clusters


def _speck_truth(spec: ClusterSpec, projection: str, centre: tuple[float, float],
                 pitch: tuple[float, float]) -> list[dict[str, Any]]:
    """Every speck's truth in the image's pixels, drawn as ``insertion.render_calcium`` draws
    them (on square pixels of the column pitch when the pixels are taller)."""
    ratio = pitch[0] / pitch[1]
    square = (insertion.square_row(centre[0], ratio), centre[1])
    return [{**t.to_dict(), "y": round(insertion.tall_row(t.row, ratio), 2)}
            for t in speck_truth(spec, projection, square, pitch[1])]


def _render(spacing: float, opts: Options) -> dict[str, int] | None:
    """Block size and bit depth of the rendering (``Options``); None when the scan is shown as it is."""
    factor = block_factor(spacing, opts.render_spacing_mm) if opts.render_spacing_mm else 1
    if factor == 1 and not opts.render_bits:
        return None
    return {"factor": factor, **({"bits": opts.render_bits} if opts.render_bits else {})}


def _rendered_truth(lesions: list[AnnotatedLesion], clusters: list[dict[str, Any]], factor: int
                    ) -> tuple[list[AnnotatedLesion], list[dict[str, Any]]]:
    """Truth in the rendered image's pixels: a block of ``factor`` pixels becomes one."""
    if factor == 1:
        return lesions, clusters
    out = [{**cluster, "centre": [round(rendered_coordinate(c, factor), 1) for c in cluster["centre"]],
            "specks": rendered_specks(cluster["specks"], factor)} for cluster in clusters]
    return list(rendered_lesions(lesions, factor)), out


def _spacing(ds: Dataset, im: _Image, opts: Options) -> tuple[tuple[float, float], bool]:
    """((row, column) mm per pixel, whether it is the fallback rather than the header's).

    The fallback is the pixel's width; Pixel Aspect Ratio (vertical \\ horizontal, PS3.3
    C.7.6.3.1.7: present when pixels are not square and no spacing says so) makes it that much
    taller, as the standardiser reads the same image. Taken square, a film scanned 2:1 had its
    clusters inserted squashed to half their height.
    """
    (row_mm, col_mm), source = dicom_header.spacing_from_header(ds, opts.fallback_spacing_mm or 0.0)
    if source != "fallback":
        return (float(row_mm), float(col_mm)), False
    if opts.fallback_spacing_mm is None:
        raise MissingSpacingError(f"{im.rel} has no pixel spacing (Imager Pixel Spacing, Pixel Spacing or Nominal "
                                  "Scanned Pixel Spacing); set the option fallback_spacing_mm (DDSM scans: 0.05) and "
                                  "the same [preprocess] fallback_spacing_mm")
    return (opts.fallback_spacing_mm * dicom_header.pixel_aspect_ratio(ds), opts.fallback_spacing_mm), True



def _acquisition(ds: Dataset) -> str:
    """raw (For Processing), film (digitised: Secondary Capture, DF conversion, film digitisers) or dr."""
    if "PROCESSING" in str(ds.get("PresentationIntentType", "")).upper() or str(ds.get("SOPClassUID", "")).endswith(
            ".1.2.1"):
        return "raw"
    manufacturer = str(ds.get("Manufacturer", "")).upper()
    if (str(ds.get("SOPClassUID", "")).startswith(_SC_PREFIX) or str(ds.get("ConversionType", "")).upper() == "DF"
            or any(name in manufacturer for name in _FILM_DIGITISERS)):
        return "film"
    return "dr"


def _pixels(ds: Dataset) -> np.ndarray:
    arr = ds.pixel_array
    if arr.ndim != 2:
        raise ValueError(f"only single-frame grayscale images can take inserted clusters, got shape {arr.shape}")
    return np.array(arr, copy=True)


def dataset_with_inserts(item: AnnotatedImage) -> Dataset:
    """The image's DICOM data set with the cached cluster patches pasted into its pixels, rendered
    as the options asked (``render_spacing_mm``, ``render_bits``)."""
    info = item.extra[EXTRA_KEY]
    ds = pydicom.dcmread(item.image_path)
    stored = _pixels(ds)
    if info.get("pixel_spacing_mm") and not any(keyword in ds for keyword in SPACING_KEYWORDS):
        # The non-square pitch the clusters went in at; the item's one spacing_mm would read square.
        ds.NominalScannedPixelSpacing = [float(v) for v in info["pixel_spacing_mm"]]
    if info.get("patches"):
        _paste(stored, info["patches"], item)
    if info.get("render"):
        return render_coarser(ds, stored, int(info["render"]["factor"]), info["render"].get("bits"))
    ds.set_pixel_data(stored, str(ds.PhotometricInterpretation), int(ds.BitsStored), generate_instance_uid=False)
    return ds


def _paste(stored: np.ndarray, patches: str, item: AnnotatedImage) -> None:
    with np.load(patches) as data:
        if tuple(int(v) for v in data["shape"]) != stored.shape:
            raise ValueError(f"{item.image_path} changed since its clusters were inserted; delete the cache "
                             f"{Path(patches).parent.parent} to rebuild it")
        for key in data.files:
            if key.startswith("origin_"):
                r0, c0 = (int(v) for v in data[key])
                values = data["values_" + key.split("_", 1)[1]]
                stored[r0:r0 + values.shape[0], c0:c0 + values.shape[1]] = values


__all__ = ["EXTRA_KEY", "BreastMaps", "MissingSpacingError", "Options", "dataset_with_inserts", "read"]
