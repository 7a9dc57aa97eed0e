"""Drawing and decoding in worker processes gives the same data, in the same order, as one process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mammocad.cli import main
from mammocad.model.annotations import load_manifest
from mammocad.model.dataset import load_samples
from mammocad.model.parallel import check_workers
from mammocad.model.standardise import PreprocessSpec
from mammocad.model.synth import generate_dataset


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three studies of one seed (0.4 mm, small: fast), drawn in one process and in two."""
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    generate_dataset(one, 3, seed=31, spacing_mm=0.4, progress=False)
    generate_dataset(two, 3, seed=31, spacing_mm=0.4, progress=False, workers=2)
    return one, two


def test_drawing_in_two_processes_writes_the_same_files(drawn: tuple[Path, Path]) -> None:
    one, two = drawn
    files = sorted(p.relative_to(one) for p in one.rglob("*.dcm"))
    assert len(files) == 12
    assert files == sorted(p.relative_to(two) for p in two.rglob("*.dcm"))
    for rel in files:
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel
    a, b = load_manifest(one), load_manifest(two)
    assert [(i.image_path.relative_to(one), i.lesions, i.extra) for i in a] == \
           [(i.image_path.relative_to(two), i.lesions, i.extra) for i in b]


def test_decoding_in_two_processes_gives_the_same_samples_in_order(drawn: tuple[Path, Path]) -> None:
    items = load_manifest(drawn[0])
    spec = PreprocessSpec(working_spacing_mm=0.4)
    serial = load_samples(items, spec, progress=False)
    pooled = load_samples(items, spec, progress=False, workers=2)
    assert [s.breast_id for s in pooled] == [it.breast_id for it in items] == [s.breast_id for s in serial]
    assert sum(len(s.labels) for s in serial) > 0  # the comparison covers boxes too
    for a, b in zip(serial, pooled, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.labels, b.labels)


@pytest.mark.parametrize("bad", [0, -2, True, 1.5])
def test_workers_must_be_a_whole_number_of_at_least_one(bad: object) -> None:
    with pytest.raises(ValueError, match="workers must be"):
        check_workers(bad)  # type: ignore[arg-type]


def test_cli_says_what_is_wrong_with_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "synth", "--out", str(tmp_path / "x"), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["model", "train", "--config", "config/train-demo.toml", "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
