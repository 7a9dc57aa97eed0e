"""Putting a pruned folder back on a filesystem without hard links.

``merge_back`` hard-links each old copy into place (which never replaces a file there) and
unlinks it. Some SMB and FUSE mounts have no hard links: ``os.link`` raises there, and the
study stayed in ``spool/tmp/`` for good. No such filesystem runs on this machine, so these
tests make ``os.link`` raise as one does (monkeypatched: the only way to reach the fallback
here), and the rest (renameat2, rename, the files) is real.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from mammocad.spool import retention_moves
from mammocad.spool.layout import Spool


def _refuse_links(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    def link(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise OSError(code, os.strerror(code), str(src), None, str(dst))

    monkeypatch.setattr(os, "link", link)


def _moved_study(spool: Spool, uid: str) -> tuple[Path, Path]:
    """(the study folder, its copy renamed into tmp/), the node having re-created the folder."""
    folder = spool.studies / uid
    for sub, name, data in (("images", f"{uid}.0.dcm", b"old 0"), ("images", f"{uid}.1.dcm", b"old 1"),
                            ("reports", f"key-{uid}.json", b"{}")):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / sub / name).write_bytes(data)
    doomed = spool.tmp / f".pruned-{uid}-0a1b2c3d"
    folder.rename(doomed)
    (folder / "images").mkdir(parents=True)
    (folder / "images" / f"{uid}.9.dcm").write_bytes(b"new study image")
    return folder, doomed


@pytest.mark.parametrize(("code", "noreplace"), [(errno.EPERM, True), (errno.EXDEV, True),
                                                 (errno.EOPNOTSUPP, False)])
def test_a_folder_goes_back_without_hard_links_and_the_nodes_copy_still_wins(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, code: int,
        noreplace: bool) -> None:
    spool = Spool(tmp_path / "spool").create()
    folder, doomed = _moved_study(spool, "1.1")
    _refuse_links(monkeypatch, code)
    if not noreplace:  # no renameat2 either (not Linux, old glibc): the look-then-rename fallback
        monkeypatch.setattr(retention_moves, "_renameat2", lambda: None)
    real_ensure_dir = retention_moves.ensure_dir

    def node_commits_meanwhile(path: Path) -> None:  # the same instance sent again, before the move
        real_ensure_dir(path)
        if path == folder / "images" and not (path / "1.1.0.dcm").exists():
            (path / "1.1.0.dcm").write_bytes(b"sent again")

    monkeypatch.setattr(retention_moves, "ensure_dir", node_commits_meanwhile)
    with caplog.at_level(logging.INFO, logger=retention_moves.logger.name):
        retention_moves.merge_back(doomed, folder)
    held = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert held == {"images/1.1.0.dcm": b"sent again", "images/1.1.1.dcm": b"old 1",
                    "images/1.1.9.dcm": b"new study image", "reports/key-1.1.json": b"{}"}
    assert not doomed.exists()
    (line,) = [r for r in caplog.records if r.getMessage() == "prune_no_hardlinks"]  # one, not one per file
    assert line.levelno == logging.WARNING and errno.errorcode[code] in str(getattr(line, "error", ""))
    assert getattr(line, "fallback", None) == ("renameat2_noreplace" if noreplace else "check_then_rename")


def test_a_pass_says_once_that_its_filesystem_has_no_hard_links(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / "spool").create()
    moved = [_moved_study(spool, uid) for uid in ("1.1", "1.2")]
    _refuse_links(monkeypatch, errno.EPERM)
    links = retention_moves.LinkFallback()
    with caplog.at_level(logging.INFO, logger=retention_moves.logger.name):
        for folder, doomed in moved:
            retention_moves.merge_back(doomed, folder, links=links)
    assert [r.getMessage() for r in caplog.records].count("prune_no_hardlinks") == 1
    assert all(len(list(folder.rglob("*.dcm"))) == 3 for folder, _ in moved) and not any(spool.tmp.iterdir())


def test_put_back_still_fails_loudly_on_other_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An I/O error is not a missing feature: it is raised, and the folder waits in tmp/."""
    spool = Spool(tmp_path / "spool").create()
    folder, doomed = _moved_study(spool, "1.1")
    _refuse_links(monkeypatch, errno.EIO)
    with pytest.raises(OSError, match="Input/output error"):
        retention_moves.merge_back(doomed, folder)
    assert (doomed / "images" / "1.1.0.dcm").read_bytes() == b"old 0"


def test_a_prune_pass_putting_back_several_folders_says_it_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Through ``prune`` itself: a killed pass's two moved folders go back in the next pass's
    recovery, which shares the pass's one :class:`LinkFallback` (it once logged per folder)."""
    from mammocad.spool.retention import DAY_S, prune

    spool = Spool(tmp_path / "spool").create()
    moved = [_moved_study(spool, uid) for uid in ("1.1", "1.2")]
    _refuse_links(monkeypatch, errno.EPERM)
    with caplog.at_level(logging.INFO, logger=retention_moves.logger.name):
        report = prune(spool.root, 30 * DAY_S)
    assert sorted(report.recovered) == [("1.1", "put back"), ("1.2", "put back")]
    assert [r.getMessage() for r in caplog.records].count("prune_no_hardlinks") == 1
    assert all(len(list(folder.rglob("*.dcm"))) == 3 for folder, _ in moved)
