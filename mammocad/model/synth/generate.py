"""Synthetic 4-view screening studies with calcification ground truth.

``generate_study`` builds one study in memory (pydicom datasets + AnnotatedImage);
``generate_dataset`` writes N studies as DICOM files plus a ``manifest.json``. Every
random draw comes from ``numpy.random.default_rng([seed, study_index, ...])``, so the
same seed gives byte-identical files and study k does not depend on how many are made.
Images are synthetic only: weights trained on them are demo weights, not a diagnosis.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from tqdm import tqdm

from mammocad import NOT_FOR_DIAGNOSIS, __version__
from mammocad.logs import log_event
from mammocad.model.annotations import AnnotatedImage, AnnotatedLesion, save_manifest
from mammocad.model.parallel import ordered_map
from mammocad.model.results import LesionClass
from mammocad.model.synth import physics
from mammocad.model.synth.acquisition import DrSettings, detect_dr, present
from mammocad.model.synth.anatomy import Breast
from mammocad.model.synth.calcifications import ClusterSpec, sample_cluster, sample_unlabelled
from mammocad.model.synth.confusers import add_confusers
from mammocad.model.synth.dicom_writer import (
    ImageIds,
    VendorProfile,
    build_dataset,
    sample_profile,
    to_stored,
)
from mammocad.model.synth.film import FilmSettings, acquire_film
from mammocad.model.synth.film_marks import FilmLabel
from mammocad.model.synth.mtf import resampling_mtf
from mammocad.model.synth.raster import Box, SpeckTruth, speck_truth
from mammocad.model.synth.soft_tissue import (
    AXILLARY_NODE_RATE,
    SoftFinding,
    sample_breast_findings,
    sample_finding,
    sample_host,
)
from mammocad.model.synth.views import project_view

logger = logging.getLogger(__name__)

#: Detector field (height, width) in mm and default pixel spacing per size.
FIELDS_MM = {"small": (200.0, 160.0), "full": (297.5, 238.0)}
SMALL_SPACING_MM = 0.2
VIEWS = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))
DENSITIES = {"A": 0.1, "B": 0.3, "C": 0.55, "D": 0.8}
#: Generator version recorded in manifests (2: physical projection, DR and film acquisition;
#: 3: blurs exact at every spacing, and drawings coarser than the detector's pitch resized as the
#: standardiser resizes real images; 4: tissue contrast at 2.5–5 mm periods nearer the
#: CBIS-DDSM films'; 5: fibrous strands and a steeper, finer cloud: texture of strands, not clouds;
#: 6: lead skin markers (BBs) among the unlabelled confusers; 7: gland contrast 0.7× (the films'
#: tissue power and β on a larger drawing) and scatter made by tissue, not by the breast's outline;
#: 8: film exposure ended by a photo-timer under the breast, and one film, processor and
#: digitiser per exam; 9: soft-tissue findings with no truth: lymph nodes in the breast and the
#: axilla, cysts, fibroadenomas, spiculated masses; 10: masses around clusters: a cancer's
#: calcifications in a spiculated or ill-defined mass, popcorn in a fibroadenoma; 11: the gland
#: gathered into dense regions with fatty ones between, from a stream of each view's own;
#: 12: fibrous septa between the fat lobules, fewer straight strands, drawn from that stream too;
#: 13: the film digitiser's aperture a box as wide as its pitch, not a Gaussian of σ = pitch/2;
#: 14: hydroxyapatite's attenuation from its composition, 2.01/mm at 20 keV, not 2.45;
#: 15: DR detectors of the two published kinds, a-Se or CsI, with their pixel aperture, and DR
#: scatter from the compressed thickness behind the grid, and the heel effect a flat-field leaves;
#: film scatter from the compressed thickness behind the grid too, the whole heel on film, and
#: film marks drawn before the grain, which now covers them, and the film digitiser's optical spread;
#: under that scatter the gland's, septa's and strands' contrast refitted to the CBIS-DDSM films;
#: 16: each DR image's detector (kind and del pitch) the one its header's vendor profile names,
#: Fujifilm's pixels 50 µm, and DR quanta from the detector's air kerma, the beam's energy and the DQE).
SYNTH_VERSION = 16
#: Chance that a breast carries unlabelled vascular or skin calcifications (common in screening
#: populations; a detector never shown them marks them on real images).
UNLABELLED_RATE = 0.3


@dataclass
class SynthStudy:
    """One study: the four datasets and their annotations (image_path relative)."""

    patient_id: str
    study_uid: str
    datasets: list[Dataset] = field(default_factory=list)
    annotations: list[AnnotatedImage] = field(default_factory=list)


@dataclass(frozen=True)
class _Lesion:
    spec: ClusterSpec
    position: tuple[float, float, float]  # depth from nipple, lateral, superior (mm)
    views: tuple[str, ...]


def _write_study(index: int, *, out_dir: Path, seed: int, size: str, spacing_mm: float | None) -> list[AnnotatedImage]:
    """Draw study ``index`` and write its four files; its annotations with their written paths."""
    study = generate_study(index, seed=seed, size=size, spacing_mm=spacing_mm)
    images = []
    for ds, ann in zip(study.datasets, study.annotations, strict=True):
        path = out_dir / ann.image_path
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        images.append(AnnotatedImage(image_path=path, laterality=ann.laterality, view=ann.view,
                                     breast_id=ann.breast_id, lesions=ann.lesions,
                                     breast_malignant=ann.breast_malignant, extra=ann.extra))
    return images


def _check_drawing(size: str, spacing_mm: float | None) -> None:
    if size not in FIELDS_MM:
        raise ValueError(f"size must be one of {sorted(FIELDS_MM)}, got {size!r}")
    if spacing_mm is not None and not 0.03 <= spacing_mm <= 1.0:
        raise ValueError(f"spacing_mm must be between 0.03 and 1.0 mm, got {spacing_mm}")


def drawing_spacing(size: str, spacing_mm: float | None, profile: VendorProfile) -> float:
    """The pixel size (mm) a study is drawn at; its header states this, whatever the unit's own pitch.

    A caller's ``spacing_mm`` wins: training draws at 0.1 mm, so a Fujifilm AMULET's 50 µm pixels
    (four times the 0.1 mm pixel count) cost nothing there, and its header then says 0.1, with the
    drawing carrying the resize from 50 µm (``mtf.resampling_mtf``) as the standardiser would leave a
    real one. Otherwise a small field is drawn at ``SMALL_SPACING_MM`` and a full one at the unit's
    own pitch (``VendorProfile.full_spacing_mm``: up to 4760 x 5950 px for the AMULET's 50 µm).
    """
    if spacing_mm is not None:
        return float(spacing_mm)
    return SMALL_SPACING_MM if size == "small" else profile.full_spacing_mm


def generate_study(index: int, *, seed: int, size: str = "small",
                   spacing_mm: float | None = None) -> SynthStudy:
    """Study number ``index`` of the data set made with ``seed`` (4 views, R/L × CC/MLO)."""
    _check_drawing(size, spacing_mm)
    rng = np.random.default_rng([seed, index])
    profile = sample_profile(rng)
    spacing = drawing_spacing(size, spacing_mm, profile)
    field_mm = FIELDS_MM[size]
    shape = (int(round(field_mm[0] / spacing)), int(round(field_mm[1] / spacing)))
    density_letter = str(rng.choice(list(DENSITIES), p=[0.1, 0.4, 0.4, 0.1]))
    patient_id = f"SYNTH_{index + 1:04d}"
    breasts, lesions = {}, {}
    for lat in ("R", "L"):
        density = float(np.clip(DENSITIES[density_letter] + rng.normal(0, 0.04), 0.03, 0.95))
        breasts[lat] = Breast.sample(rng, field_mm, density,
                                     compression_rng=np.random.default_rng([seed, index, ord(lat), 3]))
        lesions[lat] = _sample_lesions(rng, breasts[lat], field_mm)
    # Their own stream, so adding them left every earlier draw of a seed as it was.
    unlabelled = {lat: _sample_unlabelled(np.random.default_rng([seed, index, ord(lat), 11]), breasts[lat], field_mm)
                  for lat in breasts}
    # Soft-tissue findings (no truth) from streams of their own, for the same reason.
    findings = {lat: _place_findings(np.random.default_rng([seed, index, ord(lat), 17]), breasts[lat], field_mm)
                for lat in breasts}
    # Masses around clusters (no truth of their own: the cluster's box is the truth), likewise.
    for lat in breasts:
        findings[lat] += _host_masses(np.random.default_rng([seed, index, ord(lat), 23]), breasts[lat],
                                      lesions[lat], field_mm)
    # One film box, processor, exposure setting and digitiser for the exam's four films, from a
    # stream of its own so that the breasts and clusters of a seed stay as they were.
    film = FilmSettings.sample(np.random.default_rng([seed, index, 13])) if profile.secondary_capture else None
    study = SynthStudy(patient_id=patient_id, study_uid="")
    malignant = {lat: any(x.spec.lesion_class is LesionClass.MALIGNANT for x in lesions[lat]) for lat in breasts}
    for number, (lat, view) in enumerate(VIEWS, start=1):
        ids = ImageIds(seed=seed, index=index, patient_id=patient_id, laterality=lat, view=view, instance=number)
        view_rng = np.random.default_rng([seed, index, number, 7])
        drawn = [x for x in lesions[lat] if view in x.views]
        centres = [(x.spec, breasts[lat].to_view_mm(view, x.position)) for x in drawn]
        background = [(x.spec, breasts[lat].to_view_mm(view, x.position)) for x in unlabelled[lat]]
        soft = [(f, breasts[lat].to_view_mm(view, position)) for f, position in findings[lat]]
        if view == "MLO":
            soft += _axillary_nodes(np.random.default_rng([seed, index, number, 19]), breasts[lat], field_mm)
        img, all_boxes = render_view(breasts[lat], lat, view, shape, spacing, view_rng, centres + background, profile,
                                     film=film, findings=soft,
                                     layout_rng=np.random.default_rng([seed, index, number, 29]))
        boxes = all_boxes[:len(centres)]
        ds = build_dataset(to_stored(img, profile), ids, profile, spacing)
        ann_lesions = tuple(AnnotatedLesion(box=b, lesion_class=x.spec.lesion_class, description=x.spec.description)
                            for x, b in zip(drawn, boxes, strict=True) if b is not None)
        specks = [t.to_dict() for (spec, centre), b in zip(centres, boxes, strict=True) if b is not None
                  for t in _view_specks(spec, view, centre, spacing, lat, shape)]
        study.datasets.append(ds)
        study.annotations.append(AnnotatedImage(
            image_path=Path(patient_id) / f"{lat}_{view}.dcm", laterality=lat, view=view,
            breast_id=f"{patient_id}_{lat}", lesions=ann_lesions, breast_malignant=malignant[lat],
            extra={"study_uid": ds.StudyInstanceUID, "sop_instance_uid": ds.SOPInstanceUID,
                   "sop_class_uid": ds.SOPClassUID, "manufacturer": profile.manufacturer,
                   "density": density_letter, "acquisition": "film" if profile.secondary_capture else "dr",
                   "kinds": [x.spec.kind for x in drawn], "specks": specks,
                   "unlabelled": [x.spec.kind for x in unlabelled[lat]],
                   "soft_tissue": [f.kind for f, _ in soft],
                   "calcified_masses": [f.kind for f, _ in soft if f.holds_cluster], "synthetic": True}))
    study.study_uid = study.datasets[0].StudyInstanceUID
    return study


def render_view(breast: Breast, laterality: str, view: str, shape: tuple[int, int], spacing: float,
                rng: np.random.Generator, clusters: list[tuple[ClusterSpec, tuple[float, float]]],
                profile: VendorProfile, *, film: FilmSettings | None = None,
                findings: list[tuple[SoftFinding, tuple[float, float]]] | None = None,
                layout_rng: np.random.Generator | None = None,
                ) -> tuple[np.ndarray, list[Box | None]]:
    """Display image 0..1 (bright = dense, as stored) of one view and its cluster boxes.

    The view is projected in the canonical frame, turned to its stored orientation (right
    breasts flipped so the chest wall is on the image's right), then acquired: digitised film
    for Secondary Capture profiles, a DR detector with vendor processing otherwise. Labels on
    film are drawn after the flip so that they read the right way round. film: the exam's film
    settings (``generate_study`` shares one per exam); a lone view draws its own. findings:
    soft-tissue findings ((finding, centre (row, col) mm) pairs), drawn with no truth box.
    layout_rng: the stream of the view's dense regions (``tissue.build_tissue``).
    """
    energy = float(rng.uniform(*physics.ENERGY_RANGE_KEV))
    proj = project_view(breast, view, shape, spacing, rng, clusters, energy, findings or (), layout_rng)
    line, mask, boxes = proj.line_integral, proj.maps.mask, proj.boxes
    if laterality == "R":
        line, mask = np.ascontiguousarray(line[:, ::-1]), np.ascontiguousarray(mask[:, ::-1])
        boxes = [_flip(b, shape[1]) for b in boxes]
    # Unlabelled look-alikes: fibrous crossings and paddle dust join the line integral, dust,
    # lint and film or pixel defects the detector layer (applied after the detector's blur).
    at_detector = np.zeros_like(line)
    add_confusers(rng, line, at_detector, mask, spacing, "film" if profile.secondary_capture else "dr",
                  energy_kev=energy)
    if profile.secondary_capture:
        return acquire_film(line, mask, spacing, FilmLabel(laterality, view), rng, film or FilmSettings.sample(rng),
                            at_detector, thickness_mm=breast.thickness), boxes
    settings = DrSettings.sample(rng, thickness_mm=breast.thickness, detector=profile.detector,
                                 pitch_mm=profile.full_spacing_mm, energy_kev=energy)
    shown = present(detect_dr(line, mask, spacing, settings, rng, at_detector), mask, spacing, settings)
    return resampling_mtf(shown, spacing, profile.full_spacing_mm), boxes


def _view_specks(spec: ClusterSpec, view: str, centre_mm: tuple[float, float], spacing: float, laterality: str,
                 shape: tuple[int, int]) -> list[SpeckTruth]:
    """The cluster's specks in stored pixels (right breasts flipped like their image)."""
    truth = speck_truth(spec, view, (centre_mm[0] / spacing - 0.5, centre_mm[1] / spacing - 0.5), spacing)
    if laterality == "R":
        truth = [dataclasses.replace(t, col=shape[1] - 1 - t.col) for t in truth]
    return truth


def _flip(box: Box | None, columns: int) -> Box | None:
    if box is None:
        return None
    x1, y1, x2, y2 = box
    return (columns - 1 - x2, y1, columns - 1 - x1, y2)


def _sample_lesions(rng: np.random.Generator, breast: Breast, field_mm: tuple[float, float]) -> list[_Lesion]:
    """0 lesions for most breasts, else 1-3; malignant ones are always seen on both views."""
    count = int(rng.choice(4, p=[0.55, 0.28, 0.12, 0.05]))
    out = []
    for _ in range(count):
        spec = sample_cluster(rng, malignant=bool(rng.random() < 0.45))
        position = _place(rng, breast, spec.extent_mm(), field_mm)
        if position is None:
            continue
        views: tuple[str, ...] = ("CC", "MLO")
        if spec.lesion_class is LesionClass.BENIGN and rng.random() < 0.15:
            views = (str(rng.choice(["CC", "MLO"])),)
        out.append(_Lesion(spec, position, views))
    return out


def _sample_unlabelled(rng: np.random.Generator, breast: Breast, field_mm: tuple[float, float]) -> list[_Lesion]:
    """Vascular or skin calcifications drawn into both views with no truth box.

    Dermal calcifications project anywhere over the breast (the skin covers both compressed
    surfaces), so both kinds are placed like a cluster.
    """
    if rng.random() >= UNLABELLED_RATE:
        return []
    spec = sample_unlabelled(rng, "vascular" if rng.random() < 0.6 else "skin")
    position = _place(rng, breast, spec.extent_mm(), field_mm)
    return [] if position is None else [_Lesion(spec, position, ("CC", "MLO"))]


def _place_findings(rng: np.random.Generator, breast: Breast,
                    field_mm: tuple[float, float]) -> list[tuple[SoftFinding, tuple[float, float, float]]]:
    """The breast's soft-tissue findings, each where it fits inside the breast on both views."""
    out = []
    for finding in sample_breast_findings(rng, 0.45 * breast.thickness):
        position = _place(rng, breast, finding.extent_mm(), field_mm)
        if position is not None:
            out.append((finding, position))
    return out


def _host_masses(rng: np.random.Generator, breast: Breast, lesions: list[_Lesion],
                 field_mm: tuple[float, float]) -> list[tuple[SoftFinding, tuple[float, float, float]]]:
    """Masses that hold the breast's clusters seen on both views (``soft_tissue.sample_host``).

    Centred near the cluster (within a fifth of the mass's shorter half-axis in each direction)
    and only where the mass's core fits inside the breast on both views.
    """
    out = []
    for lesion in lesions:
        host = sample_host(rng, lesion.spec.kind, lesion.spec.lesion_class is LesionClass.MALIGNANT,
                           lesion.spec.extent_mm(), 0.45 * breast.thickness)
        if host is None or len(lesion.views) < 2:
            continue
        shift = rng.uniform(-0.2, 0.2, 3) * min(host.semi_axes_mm)
        position = (lesion.position[0] + shift[0], lesion.position[1] + shift[1], lesion.position[2] + shift[2])
        core = max(host.semi_axes_mm) * (1.0 + 2 * host.lobulation)
        if all(_fits(breast, view, position, core, field_mm) for view in ("CC", "MLO")):
            out.append((host, position))
    return out


def _axillary_nodes(rng: np.random.Generator, breast: Breast,
                    field_mm: tuple[float, float]) -> list[tuple[SoftFinding, tuple[float, float]]]:
    """Nodes of the axilla on an oblique view: high up, over or just beyond the pectoral's edge."""
    if rng.random() >= AXILLARY_NODE_RATE:
        return []
    out = []
    for _ in range(int(rng.integers(1, 4))):
        node = sample_finding(rng, "axillary_node", 0.45 * breast.thickness)
        half = max(node.semi_axes_mm)
        row = float(rng.uniform(0.08, 0.5) * breast.pectoral_height)
        col = float(breast.pectoral_edge(np.array([row]))[0] * rng.uniform(0.6, 1.4) + half)
        if row - half > 3 and col + half + 3 < float(breast.width_profile("MLO", np.array([row]))[0]):
            out.append((node, (row, col)))
    return out


def _place(rng: np.random.Generator, breast: Breast, ext: float,
           field_mm: tuple[float, float]) -> tuple[float, float, float] | None:
    """A position whose projection lies well inside the breast (and off the pectoral) on both
    views, for anything of radius ``ext`` (mm): a cluster, a soft-tissue finding."""
    for _ in range(80):
        point = (float(rng.uniform(0.1, 0.85) * breast.depth_cc),
                 float(rng.uniform(-0.75, 0.75) * breast.half_height_cc),
                 float(rng.uniform(-0.75, 0.75) * breast.half_height_mlo))
        if all(_fits(breast, view, point, ext, field_mm) for view in ("CC", "MLO")):
            return point
    return None


def _fits(breast: Breast, view: str, point: tuple[float, float, float], ext: float,
          field_mm: tuple[float, float]) -> bool:
    row, col = breast.to_view_mm(view, point)
    if row - ext < 3 or row + ext > field_mm[0] - 3 or col - ext < 8:
        return False
    rows = np.array([row - ext, row, row + ext])
    if np.any(breast.width_profile(view, rows) < col + ext + 4):
        return False
    if view == "MLO":
        if col - ext < float(breast.pectoral_edge(np.array([row - ext]))[0]) + 4:
            return False
    return True


def generate_dataset(out_dir: Path, n_studies: int, seed: int, size: str = "small",
                     spacing_mm: float | None = None, *, progress: bool = True, workers: int = 1) -> list[AnnotatedImage]:
    """Write ``n_studies`` studies under ``out_dir`` (DICOM + manifest.json); return the images.

    workers: draw in that many processes; every study depends only on (seed, index), so the
    files are the same whatever the number.
    """
    if n_studies < 1:
        raise ValueError(f"n_studies must be at least 1, got {n_studies}")
    _check_drawing(size, spacing_mm)  # here too: before any worker process starts
    out_dir = Path(out_dir)
    draw = functools.partial(_write_study, out_dir=out_dir, seed=seed, size=size, spacing_mm=spacing_mm)
    images: list[AnnotatedImage] = []
    for written in tqdm(ordered_map(draw, range(n_studies), workers), total=n_studies, desc="synthetic studies",
                        unit="study", disable=not progress):
        images += written
    info = {"generator": "mammocad.model.synth", "synth_version": SYNTH_VERSION, "mammocad_version": __version__, "seed": seed,
            "size": size, "spacing_mm": spacing_mm, "n_studies": n_studies, "synthetic": True,
            "note": f"synthetic data only; {NOT_FOR_DIAGNOSIS}"}
    save_manifest(out_dir, images, info)
    n_lesions = sum(len(i.lesions) for i in images)
    log_event(logger, "synth_done", studies=n_studies, images=len(images), lesions=n_lesions, out=str(out_dir))
    return images
