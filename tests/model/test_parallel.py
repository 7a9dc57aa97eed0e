"""Drawing and decoding in worker processes gives the same data, in the same order, as one process.

The pools run in a child process (the CLI, or a small script): a spawn pool leaves
multiprocessing's resource tracker running until its parent exits, and the parent must not be
the test session.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from mammocad.cli import main
from mammocad.model.annotations import load_manifest
from mammocad.model.dataset import load_samples
from mammocad.model.parallel import check_workers
from mammocad.model.standardise import PreprocessSpec
from mammocad.model.synth import generate_dataset
from tests.model.test_analyze_cli import run_cli


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three studies of one seed (0.4 mm, small: fast), drawn in one process and, by the CLI, in two."""
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two") / "out"
    generate_dataset(one, 3, seed=31, spacing_mm=0.4, progress=False)
    proc = run_cli(["model", "synth", "--out", str(two), "--studies", "3", "--seed", "31", "--spacing", "0.4",
                    "--workers", "2", "--quiet"], one.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
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


_DECODE_IN_TWO = """
import sys
from pathlib import Path
import numpy as np
from mammocad.model.annotations import load_manifest
from mammocad.model.dataset import load_samples
from mammocad.model.standardise import PreprocessSpec

if __name__ == "__main__":  # spawned workers import this file again
    samples = load_samples(load_manifest(Path(sys.argv[1])), PreprocessSpec(working_spacing_mm=0.4),
                           progress=False, workers=2)
    arrays = {}
    for k, s in enumerate(samples):
        arrays.update({f"image{k}": s.image, f"boxes{k}": s.boxes, f"labels{k}": s.labels,
                       f"breast{k}": np.array(s.breast_id)})
    np.savez(sys.argv[2], **arrays)
"""


def test_decoding_in_two_processes_gives_the_same_samples_in_order(drawn: tuple[Path, Path], tmp_path: Path) -> None:
    items = load_manifest(drawn[0])
    serial = load_samples(items, PreprocessSpec(working_spacing_mm=0.4), progress=False)
    script = tmp_path / "decode.py"
    script.write_text(_DECODE_IN_TWO)
    proc = run_cli([str(script), str(drawn[0]), str(tmp_path / "pooled.npz")], tmp_path, program=(sys.executable,))
    assert proc.returncode == 0, proc.stderr[-2000:]
    pooled = np.load(tmp_path / "pooled.npz")
    assert len(pooled.files) == 4 * len(items) == 4 * len(serial)
    assert sum(len(s.labels) for s in serial) > 0  # the comparison covers boxes too
    for k, (item, a) in enumerate(zip(items, serial, strict=True)):
        assert str(pooled[f"breast{k}"]) == a.breast_id == item.breast_id
        np.testing.assert_array_equal(a.image, pooled[f"image{k}"])
        np.testing.assert_array_equal(a.boxes, pooled[f"boxes{k}"])
        np.testing.assert_array_equal(a.labels, pooled[f"labels{k}"])


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
