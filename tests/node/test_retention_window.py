"""The node and retention: one study per SOP Instance UID while retention removes the study
that holds it, and what the node knows of a pruned study once its record expired.

Retention renames a study folder into ``tmp/``, checks it again, and deletes it or puts it back
(an image of the study arrived meanwhile). The node's index took an instance it found in
neither ``studies/`` nor ``other/`` for pruned, so the same instance under another study was
accepted in that window; when the folder came back, two studies held one image. These tests
run the node's real check inside retention's own hook, i.e. after the rename.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mammocad.node.instances import InstanceIndex
from mammocad.spool.layout import Spool
from mammocad.spool.retention import DAY_S, _remember, _remove, _why_kept, prune
from tests import factories
from tests.node.conftest import NodeEnv


def _reported_and_old(spool: Spool, study: str, sops: list[str]) -> Path:
    """Give the study a report of ``sops`` (delivered: no outbox item) and age it."""
    folder = spool.study_dir(study)
    spool.reports_dir(study).mkdir(parents=True, exist_ok=True)
    spool.report_path(study, "key").write_text(json.dumps({"sop_uids": sops}))
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (1.0, 1.0))
    return folder


def test_instance_under_another_study_refused_while_its_study_is_being_pruned(
        start_node: Callable[..., NodeEnv], tmp_path: Path) -> None:
    """In the window, the PACS sends the instance under another study and a new image of the
    study: the study comes back with its new image, and the other study never gets the instance."""
    first = factories.make_mammogram()
    study, sop = str(first.StudyInstanceUID), str(first.SOPInstanceUID)
    late = factories.make_mammogram(view="MLO")
    late.StudyInstanceUID = study
    again = factories.make_mammogram(sop_uid=sop)  # the same instance under another study
    env = start_node()
    assert "Success" in env.storescu(factories.write(first, tmp_path / "first.dcm"), opts=("-v",)).stderr
    folder = _reported_and_old(env.spool, study, [sop])
    responses: list[str] = []

    def node_receives_after_the_rename(moved: Path) -> str | None:
        assert not folder.exists()  # renamed away: the window
        result = env.storescu(factories.write(again, tmp_path / "again.dcm"),
                              factories.write(late, tmp_path / "late.dcm"), opts=("-v", "-nh"))
        responses.extend(line for line in result.stderr.splitlines() if "Received Store Response" in line)
        return _why_kept(env.spool, moved)

    assert not _remove(env.spool, folder, node_receives_after_the_rename, remember=_remember(env.spool, study))
    assert len(responses) == 2 and "CannotUnderstand" in responses[0] and "Success" in responses[1], responses
    assert not env.spool.study_dir(str(again.StudyInstanceUID)).exists()
    assert env.spool.image_sops(study) == sorted([sop, str(late.SOPInstanceUID)])


def test_an_image_sent_again_while_its_study_is_being_pruned_is_a_duplicate(
        start_node: Callable[..., NodeEnv], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """In the window the PACS re-sends an image of the study itself. Whether the folder comes back
    (the image is held) or goes (every image in it was reported), the image is a duplicate: it
    used to be stored again and queued for analysis, which put the study back (the prune lost)
    or, when the write landed after retention's last look, left an image already reported to be
    reported a second time."""
    image = factories.make_mammogram()
    study, sop = str(image.StudyInstanceUID), str(image.SOPInstanceUID)
    path = factories.write(image, tmp_path / "image.dcm")
    env = start_node()
    assert "Success" in env.storescu(path, opts=("-v",)).stderr
    env.settle()
    queued = len(env.tasks("gpu"))
    folder = _reported_and_old(env.spool, study, [sop])
    responses: list[str] = []

    def node_receives_after_the_rename(moved: Path) -> str | None:
        assert not folder.exists()  # renamed away: the window
        with caplog.at_level(logging.INFO, logger="mammocad"):
            result = env.storescu(path, opts=("-v",))
        responses.extend(line for line in result.stderr.splitlines() if "Received Store Response" in line)
        return _why_kept(env.spool, moved)

    assert _remove(env.spool, folder, node_receives_after_the_rename, remember=_remember(env.spool, study))
    assert len(responses) == 1 and "Success" in responses[0], responses
    assert not folder.exists() and env.spool.image_sops(study) == []
    [again] = [r for r in caplog.records if r.getMessage() == "duplicate"]
    assert again.sop == sop  # type: ignore[attr-defined]
    env.settle()
    assert len(env.tasks("gpu")) == queued
    pruned = env.spool.pruned(study)
    assert pruned is not None and pruned.sop_uids == (sop,)


def test_an_index_built_while_a_study_is_being_pruned_still_holds_it(tmp_path: Path) -> None:
    """The node starts (and indexes the spool) while a worker's retention has the study in tmp/;
    once retention has really deleted it, the instance is free again, as documented."""
    spool = Spool(tmp_path / "spool").create()
    folder = spool.study_dir("1.2.3")
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "1.2.3.1.dcm").write_bytes(b"image")
    _reported_and_old(spool, "1.2.3", ["1.2.3.1"])
    holders: list[str | None] = []

    def node_starts_after_the_rename(moved: Path) -> str | None:
        index = InstanceIndex(spool)
        assert index.load() == 1
        with index.claim("1.2.3.1", "1.2.4") as holder:
            holders.append(holder)
        return "put back for the test"

    assert not _remove(spool, folder, node_starts_after_the_rename)
    assert holders == ["1.2.3"] and (folder / "images" / "1.2.3.1.dcm").exists()
    assert prune(spool.root, 30 * DAY_S).studies == ["1.2.3"]
    index = InstanceIndex(spool)
    index.load()
    with index.claim("1.2.3.1", "1.2.4") as holder:
        assert holder is None


def test_an_image_of_a_study_whose_pruned_record_expired_is_a_new_study(
        start_node: Callable[..., NodeEnv], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Within node.pruned_record_days an image already reported is answered Success unanalysed;
    after it, the node no longer knows the study: the image is stored and analysed again."""
    import time

    image = factories.make_mammogram()
    study, sop = str(image.StudyInstanceUID), str(image.SOPInstanceUID)
    path = factories.write(image, tmp_path / "image.dcm")
    env = start_node()
    assert "Success" in env.storescu(path, opts=("-v",)).stderr
    _reported_and_old(env.spool, study, [sop])
    keep_s = 365 * DAY_S
    assert prune(env.spool.root, 60, pruned_record_s=keep_s).studies == [study]
    assert "Success" in env.storescu(path, opts=("-v",)).stderr
    assert env.spool.image_sops(study) == []  # reported before: a duplicate, not stored
    report = prune(env.spool.root, 60, pruned_record_s=keep_s, now=time.time() + keep_s + DAY_S)
    assert report.records == [study] and env.spool.pruned(study) is None
    with caplog.at_level(logging.INFO, logger="mammocad"):
        assert "Success" in env.storescu(path, opts=("-v",)).stderr
    assert env.spool.image_sops(study) == [sop]
    assert [r for r in caplog.records if r.getMessage() == "store" and r.sop == sop]  # type: ignore[attr-defined]
