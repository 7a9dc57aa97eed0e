"""The decoded-size check that runs before any pixel decoding (JPEG 2000 bomb, issue 12)."""

from __future__ import annotations

import pytest
from pydicom.uid import JPEG2000Lossless

from mammocad.dicom.frame_size import DecodeBudgetError, check_decoded_size, declared_bytes, stream_size
from tests.factories import make_mammogram
from tests.faults.raw_send import declare_stream_size


def _j2k(rows: int = 64, columns: int = 48):
    ds = make_mammogram(rows=rows, columns=columns)
    ds.compress(JPEG2000Lossless)
    return ds


def test_a_normal_compressed_image_passes_and_its_stream_size_is_read() -> None:
    ds = _j2k()
    check_decoded_size(ds, budget_mb=128)
    from pydicom.encaps import generate_fragments

    frags = generate_fragments(ds.PixelData)
    next(frags)  # Basic Offset Table
    assert stream_size(JPEG2000Lossless, next(frags)) == (48, 64)
    assert declared_bytes(ds) == 64 * 48 * 2


def test_a_stream_declaring_more_pixels_than_the_header_is_refused() -> None:
    ds = _j2k()
    declare_stream_size(ds, 10_000, 12_000)
    with pytest.raises(DecodeBudgetError, match="declares 10000 x 12000"):
        check_decoded_size(ds, budget_mb=128)


def test_a_header_over_the_budget_is_refused_before_decoding() -> None:
    ds = _j2k()
    declare_stream_size(ds, 10_000, 12_000)
    ds.Rows, ds.Columns = 12_000, 10_000  # inside node.max_pixels (120 M), 240 MB decoded
    assert len(ds.PixelData) < 4000
    with pytest.raises(DecodeBudgetError, match="240 MB"):
        check_decoded_size(ds, budget_mb=128)
