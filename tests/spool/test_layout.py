"""The spool's durable write and UID checks (the part other components reuse)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammocad.spool.layout import InvalidUIDError, Spool, atomic_write_bytes, validate_uid


@pytest.mark.parametrize("bad", ["", "../../etc", "1.2/3", "1..2", ".1.2", "1.2.", "1.2.a", "1" * 65, None])
def test_invalid_uids_refused(bad: object) -> None:
    with pytest.raises(InvalidUIDError):
        validate_uid(bad)


def test_uid_padding_stripped() -> None:
    assert validate_uid("1.2.840.10008\x00") == "1.2.840.10008"


def test_atomic_write_chunks_and_replace(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool").create()
    target = spool.image_path("1.2.3", "1.2.3.4")
    n = atomic_write_bytes(target, [b"ab", bytearray(b"cd"), memoryview(b"ef")], spool.tmp)
    assert n == 6 and target.read_bytes() == b"abcdef"
    atomic_write_bytes(target, b"new", spool.tmp)
    assert target.read_bytes() == b"new"
    assert list(spool.tmp.iterdir()) == []


def test_failed_write_leaves_target_and_tmp_clean(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool").create()
    target = spool.image_path("1.2.3", "1.2.3.4")
    atomic_write_bytes(target, b"old", spool.tmp)

    def chunks():  # a sender's data that fails half-way (like ENOSPC would)
        yield b"partial"
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write_bytes(target, chunks(), spool.tmp)
    assert target.read_bytes() == b"old"
    assert list(spool.tmp.iterdir()) == []


def test_report_matching(tmp_path: Path) -> None:
    spool = Spool(tmp_path).create()
    reports = spool.reports_dir("1.2")
    reports.mkdir(parents=True)
    (reports / "a.json").write_text('{"sop_uids": ["1.3", "1.1"]}')
    assert spool.has_report_for("1.2", ["1.1", "1.3"])
    assert not spool.has_report_for("1.2", ["1.1", "1.3", "1.4"])
