"""How big an image will be once decoded, read from its header and its compressed stream.

A 934-byte JPEG 2000 stream can declare 10,000 x 12,000 pixels; decoding it (and the
detector's working copies) took one worker to 15.6 GB. So before anything decodes pixel
data the worker checks, from bytes it already has:

- the decoded size the header declares (Rows x Columns x frames x samples x bytes)
  against a memory budget, and
- the image size the compressed stream itself declares (JPEG 2000 SIZ, JPEG/JPEG-LS SOF)
  against Rows and Columns: a decoder allocates what the stream says, not what the
  header says.

The node runs the same checks on what it receives (mammocad/node/header.py reads the first
fragment's head from the spooled file), so such an image is refused with a DICOM status
while the sender waits instead of being answered Success and reported "CAD failed".
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments

_JPEG2000 = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92",
             "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
             "1.2.840.10008.1.2.4.203"}
_JPEG = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
         "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
#: JPEG start-of-frame markers (baseline, extended, lossless, progressive...; JPEG-LS SOF55).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}
_SCAN_BYTES = 1 << 16


class DecodeBudgetError(ValueError):
    """The image would not fit the memory budget, or its stream disagrees with its header."""


def declared_bytes(ds: Dataset) -> int:
    """Bytes of the decoded pixel data the header declares (all frames)."""
    rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    frames = max(int(ds.get("NumberOfFrames") or 1), 1)
    samples = max(int(ds.get("SamplesPerPixel") or 1), 1)
    bits = int(ds.get("BitsAllocated") or 16)
    return rows * columns * frames * samples * max((bits + 7) // 8, 1)


def stream_size(transfer_syntax: str, fragment: bytes) -> tuple[int, int] | None:
    """(columns, rows) the first compressed fragment declares; None when not found or not known."""
    head = bytes(fragment[:_SCAN_BYTES])
    if transfer_syntax in _JPEG2000:
        at = head.find(b"\xff\x4f\xff\x51")  # SOC then SIZ (also inside a JP2 box file)
        if at < 0 or len(head) < at + 24:
            return None
        siz = head[at + 4:]
        x, y = int.from_bytes(siz[4:8], "big"), int.from_bytes(siz[8:12], "big")
        x0, y0 = int.from_bytes(siz[12:16], "big"), int.from_bytes(siz[16:20], "big")
        return max(x - x0, 0), max(y - y0, 0)
    if transfer_syntax in _JPEG:
        i = 2 if head[:2] == b"\xff\xd8" else -1
        while 0 <= i < len(head) - 9:
            if head[i] != 0xFF:
                return None
            marker = head[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            length = int.from_bytes(head[i + 2:i + 4], "big")
            if marker in _SOF:
                return int.from_bytes(head[i + 7:i + 9], "big"), int.from_bytes(head[i + 5:i + 7], "big")
            i += 2 + length
        return None
    return None


def check_budget(size: int, budget_mb: float) -> None:
    """Raise :class:`DecodeBudgetError` when ``size`` decoded bytes exceed ``budget_mb``."""
    if size > budget_mb * 1e6:
        raise DecodeBudgetError(f"decoded image would be {size / 1e6:.0f} MB (Rows x Columns x frames x samples), "
                                f"over worker.max_decoded_mb {budget_mb:g}")


def is_sized_stream(transfer_syntax: str) -> bool:
    """True for the compressed syntaxes whose stream declares its own image size."""
    return transfer_syntax in _JPEG2000 or transfer_syntax in _JPEG


def check_stream(transfer_syntax: str, fragment: bytes, rows: int, columns: int) -> None:
    """Raise :class:`DecodeBudgetError` when the first compressed fragment declares another
    image size than Rows x Columns (a decoder allocates what the stream says)."""
    check_stream_size(stream_size(transfer_syntax, fragment), rows, columns)


def check_stream_size(found: tuple[int, int] | None, rows: int, columns: int) -> None:
    """Raise :class:`DecodeBudgetError` when a stream's (columns, rows) is not the header's."""
    if found is not None and found != (columns, rows):
        raise DecodeBudgetError(f"compressed stream declares {found[0]} x {found[1]} pixels, "
                                f"the header {columns} x {rows}")


def check_decoded_size(ds: Dataset, budget_mb: float) -> None:
    """Raise :class:`DecodeBudgetError` unless ``ds`` may be decoded within ``budget_mb``.

    ``ds`` must still hold its pixel data undecoded (as read by ``dcmread``).
    """
    check_budget(declared_bytes(ds), budget_mb)
    meta = getattr(ds, "file_meta", None)
    syntax = str(getattr(meta, "TransferSyntaxUID", "") or "")
    if "PixelData" not in ds or not is_sized_stream(syntax):
        return
    try:
        fragments = generate_fragments(ds.PixelData)
        next(fragments)  # the Basic Offset Table item (always present, maybe empty)
        fragment = next(fragments)
    except (StopIteration, ValueError) as exc:
        raise DecodeBudgetError(f"encapsulated Pixel Data has no readable fragment: {type(exc).__name__}") from None
    check_stream(syntax, fragment, int(ds.get("Rows") or 0), int(ds.get("Columns") or 0))
