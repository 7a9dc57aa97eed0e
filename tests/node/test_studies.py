"""Study completion: four screening views, a quiet spell, and reopening."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests import factories
from tests.node.conftest import NodeEnv, wait_until


def _send(env: NodeEnv, paths: list[Path]) -> None:
    result = env.storescu(*paths, opts=("-v",))
    assert result.stderr.count("Store Response (Success)") == len(paths), result.stderr


def test_four_views_complete_then_reopen_by_timeout(start_node: Callable[..., NodeEnv], tmp_path: Path) -> None:
    env = start_node(timeout_s=1.5)
    views = factories.make_four_view_study()
    study = views[0].StudyInstanceUID
    _send(env, [factories.write(ds, tmp_path / f"{i}.dcm") for i, ds in enumerate(views)])
    complete = env.spool.complete_path(study)
    wait_until(complete.exists, 5, "complete.json")
    first = json.loads(complete.read_text())
    sops = sorted(ds.SOPInstanceUID for ds in views)
    assert first["sop_uids"] == sops and first["reason"] == "four_views"
    env.settle()
    assert [args for name, args in env.tasks("results")] == [[str(env.spool.root), study, sops]]
    assert all(name == "mammocad.analyze_image" for name, _ in env.tasks("gpu"))

    # A repeat view after completion reopens the study; it completes again by timeout.
    extra = factories.make_mammogram(study_uid=study, laterality="L", view="CC", seed=7)
    _send(env, [factories.write(extra, tmp_path / "extra.dcm")])
    second = wait_until(lambda: json.loads(complete.read_text())["reason"] == "timeout"
                        and json.loads(complete.read_text()), 6, "second completion")
    assert second["sop_uids"] == sorted([*sops, extra.SOPInstanceUID])
    env.settle()
    assert len(env.tasks("results")) == 2 and len(env.tasks("gpu")) == 5


def test_incomplete_study_completes_by_timeout(start_node: Callable[..., NodeEnv], tmp_path: Path) -> None:
    env = start_node(timeout_s=1.0)
    study = "1.2.826.0.1.3680043.8.498.77"
    # Film-archive style: Secondary Capture MG, only Laterality, no view at all.
    images = []
    for lat in ("L", "R"):
        ds = factories.make_mammogram(study_uid=study, laterality=lat, sop_class=factories.SECONDARY_CAPTURE)
        del ds.ViewPosition, ds.ViewCodeSequence, ds.ImageLaterality
        images.append(ds)
    _send(env, [factories.write(ds, tmp_path / f"{i}.dcm") for i, ds in enumerate(images)])
    complete = env.spool.complete_path(study)
    assert not complete.exists()
    wait_until(complete.exists, 5, "complete.json after timeout")
    payload = json.loads(complete.read_text())
    assert payload["reason"] == "timeout"
    assert payload["sop_uids"] == sorted(ds.SOPInstanceUID for ds in images)
    env.settle()
    assert env.tasks("results")[0][0] == "mammocad.finalize_study"
