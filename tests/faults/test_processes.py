"""Kill things mid-study, with every part a real process (issue 12, item 6).

One installation (redis, node, analysis worker, results worker, Orthanc) serves the whole
module; each test breaks one part mid-study, brings it back as a supervisor would, and
reconciles: images acknowledged = images analysed = images in exactly one delivered
report, per study, in Orthanc. Nothing is restarted that the scenario did not kill.
"""

from __future__ import annotations

import os
import re
import resource
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mammocad.spool.records.analysis import CompletionRecord
from tests.faults.cluster import MAMMO_CAD_SR, Cluster, fresh_study, in_flight, settle
from tests.services import wait_until

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"  # the TID 1500 SR
#: A short partial-study wait for the tests (the default is 300 s, docs/FAULTS.md).
STUDY_TIMEOUT_S = 3.0

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]  # a whole installation starts on 2 busy cores


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, random_weights: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"), random_weights, study_timeout_s=STUDY_TIMEOUT_S,
                outputs=("mammo-cad-sr", "tid1500-sr"))
    try:
        yield c.start_all()
    finally:
        c.stop()


def _alive(cluster: Cluster, *roles: str) -> None:
    for role in roles:
        assert cluster.procs[role].poll() is None, f"the {role} process died:\n{cluster.log_text(role)[-3000:]}"


def test_node_killed_mid_study_and_the_pacs_resends(cluster: Cluster, tmp_path: Path) -> None:
    uid, sops, paths = fresh_study(tmp_path, "node")
    cluster.send(paths[:2])
    cluster.kill("node")
    cluster.start("node")
    cluster.send(paths)  # the sender retries the whole study
    cluster.reconcile(uid, sops)
    assert not list((cluster.spool / "tmp").glob(".rx-*"))  # no receive leftovers


def test_gpu_worker_killed_mid_image_reruns_from_its_lease(cluster: Cluster, tmp_path: Path) -> None:
    uid, sops, paths = fresh_study(tmp_path, "gpu", rows=384, columns=300)
    cluster.send(paths)
    wait_until(lambda: in_flight(cluster, uid, sops), 120, "an analysis in flight", interval=0.01)
    cluster.kill("gpu")  # main process and pool child: the task stays unacknowledged in redis
    cluster.start("gpu")
    cluster.reconcile(uid, sops)
    assert 'why="lease expired' in cluster.log_text("node")  # not the 3-minute visibility timeout


def test_results_worker_killed_mid_study(cluster: Cluster, tmp_path: Path) -> None:
    uid, sops, paths = fresh_study(tmp_path, "results")
    cluster.send(paths)
    wait_until(lambda: (cluster.spool / "studies" / uid / "complete.json").exists(), 60, "the study declared")
    cluster.kill("results")
    cluster.start("results")
    cluster.reconcile(uid, sops)


def _caught_holding_the_finalize(cluster: Cluster, uid: str, sops: list[str]) -> bool:
    """Freeze the results worker (SIGSTOP) while it holds the study's finalize with every image
    analysed, no report written and no other finalize queued; False when that moment passed."""
    from mammocad.spool.layout import Spool
    from mammocad.spool.presence import holders
    from mammocad.spool.reconcile import read_broker, redis_client
    from mammocad.spool.tasks import TASK_FINALIZE_STUDY

    client = redis_client(f"redis://127.0.0.1:{cluster.redis_port}/0")
    spool = Spool(cluster.spool)
    key = (TASK_FINALIZE_STUDY, uid, "")

    def state() -> str | None:
        if cluster.reports(uid):
            return "missed"
        if not all(spool.result_path(uid, s).exists() for s in sops):
            return None
        view = read_broker(client, ["gpu", "results"])
        tags = view.held_tags.get(key, set())
        return "held" if tags and key not in view.ready and tags <= set(holders(spool, 60)) else None

    if wait_until(state, 120, "the finalize held or the study reported", interval=0.005) == "missed":
        return False
    group = cluster.procs["results"].pid
    os.killpg(group, signal.SIGSTOP)
    settle(1.0)  # the analysis worker's own finalize for the last image, if it was on its way
    if state() == "held":
        return True
    os.killpg(group, signal.SIGCONT)
    return False


def test_results_worker_killed_holding_the_study_s_finalize(cluster: Cluster, tmp_path: Path) -> None:
    """Every image analysed; the results worker killed while it holds (runs, or waits out the
    countdown of) the study's only finalize. Redis keeps that task unacknowledged for its
    visibility timeout (3 minutes here, 30 by default); the worker's silent presence file makes
    the node queue the finalize again after worker.lease_s."""
    for attempt in range(5):  # the moment lasts a build, hundreds of ms: it may pass unseen
        uid, sops, paths = fresh_study(tmp_path, f"held-{attempt}")
        cluster.send(paths)
        if _caught_holding_the_finalize(cluster, uid, sops):
            break
        cluster.reconcile(uid, sops)
    else:
        pytest.fail("in 5 studies the results worker was never caught holding a finalize")
    cluster.kill("results")
    cluster.start("results")
    cluster.reconcile(uid, sops)
    node = cluster.log_text("node")
    assert re.search(rf'event=reconcile_requeued task=mammocad.finalize_study study={uid} .*'
                     r'why="held by a dead worker: results-', node), node[-3000:]


@pytest.mark.parametrize("aof", [False, True], ids=["empty", "aof"])
def test_redis_killed_mid_study(cluster: Cluster, tmp_path: Path, aof: bool) -> None:
    uid, sops, paths = fresh_study(tmp_path, f"redis-{aof}")
    cluster.send(paths[:3])
    cluster.kill("redis")
    if not aof:
        for f in (cluster.workdir / "redis").rglob("*"):
            if f.is_file():
                f.unlink()
    cluster.send(paths[3:])  # the node acknowledges while the broker is down
    cluster.start_redis(aof=aof)
    cluster.reconcile(uid, sops)
    _alive(cluster, "node", "gpu", "results")  # workers survive the broker outage


def test_pacs_down_for_the_backoff_schedule(cluster: Cluster, tmp_path: Path) -> None:
    assert cluster.orthanc is not None
    cluster.orthanc.stop()
    uid, sops, paths = fresh_study(tmp_path, "pacs")
    cluster.send(paths)
    items = cluster.spool / "outbox" / "pacs"
    wait_until(lambda: any('"attempts": 3' in p.read_text() for p in items.glob("*/item.json")), 120,
               "three failed delivery attempts")
    cluster.start_orthanc()
    cluster.reconcile(uid, sops)


def test_no_patient_data_in_any_log(cluster: Cluster, tmp_path: Path) -> None:
    """Malformed data sets and a whole study with distinctive names: node, workers, celery, redis logs."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    from tests.factories import make_mammogram, write
    from tests.faults.raw_send import MG, PHI_ID, PHI_NAME, SECRETS, absurd_uid_bodies, part10, send_files

    bad = [part10(tmp_path / f"bad{i}.dcm", body) for i, (_, body) in enumerate(absurd_uid_bodies())]
    statuses = send_files(cluster.port, bad, contexts=[(MG, ExplicitVRLittleEndian)])
    assert all(s not in (None, 0) for s in statuses), statuses
    study = generate_uid()
    images = [make_mammogram(laterality=lat, view=view, rows=64, columns=48, study_uid=study, seed=i,
                             patient_name=PHI_NAME, patient_id=PHI_ID)
              for i, (lat, view) in enumerate([("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO")])]
    # One undecodable image, an error path in the worker too: an RLE header of no segments
    # (pixels shorter than the header declares are refused by the node instead).
    images[1].compress(RLELossless)
    images[1].PixelData = encapsulate([bytes(64)])
    cluster.send([write(ds, tmp_path / "phi" / f"{i}.dcm") for i, ds in enumerate(images)], opts=("-xr",))
    cluster.wait_delivered(study, [str(ds.SOPInstanceUID) for ds in images])
    logs = cluster.log_text()
    assert "store_refused" in logs
    for secret in SECRETS:
        assert secret not in logs


def _limit_file_size(cluster: Cluster, role: str, limit: int) -> None:
    """A full disk, as RLIMIT_FSIZE (soft limit) on the role's processes: writes fail with EFBIG."""
    for pid in cluster.pids(role):
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def test_node_disk_full_refuses_then_the_resend_is_reported_once(cluster: Cluster, tmp_path: Path) -> None:
    uid, sops, paths = fresh_study(tmp_path, "nodefull")
    cluster.send(paths[:2])
    _limit_file_size(cluster, "node", 2048)  # every image write fails now (EFBIG): "disk full"
    refused = cluster.send(paths[2:], check=False)
    assert "0xa700" in (refused.stdout + refused.stderr).lower() or refused.returncode != 0
    _limit_file_size(cluster, "node", resource.RLIM_INFINITY)
    cluster.send(paths)  # the sender retries
    cluster.reconcile(uid, sops)


def test_results_worker_disk_full_recovers_without_restart(cluster: Cluster, tmp_path: Path) -> None:
    _limit_file_size(cluster, "results", 1024)  # the SR cannot be written into the outbox
    uid, sops, paths = fresh_study(tmp_path, "workerfull")
    cluster.send(paths)
    wait_until(lambda: f"event=finalize_failed study={uid}" in cluster.log_text("results"), 120,
               "a finalize that failed on the full disk")
    _limit_file_size(cluster, "results", resource.RLIM_INFINITY)
    cluster.reconcile(uid, sops)  # re-queued by the reconciler; nothing restarted


def _reports_in_pacs(cluster: Cluster, study_uid: str) -> dict[str, list[Any]]:
    """The study's structured reports Orthanc holds, by SOP class (CAD SR, TID 1500 SR)."""
    out: dict[str, list[Any]] = {MAMMO_CAD_SR: [], COMPREHENSIVE_3D_SR: []}
    for ds in cluster.pacs_objects(study_uid):
        out.setdefault(str(ds.SOPClassUID), []).append(ds)
    return out


def _cited(ds: Any) -> set[str]:
    return {str(item.ReferencedSOPInstanceUID) for study in ds.get("PredecessorDocumentsSequence", [])
            for series in study.ReferencedSeriesSequence for item in series.ReferencedSOPSequence}


def _evidence(ds: Any) -> set[str]:
    return {str(item.ReferencedSOPInstanceUID) for study in ds.CurrentRequestedProcedureEvidenceSequence
            for series in study.ReferencedSeriesSequence for item in series.ReferencedSOPSequence}


def test_a_partial_study_waits_for_the_timeout_then_is_reported_once(cluster: Cluster, tmp_path: Path) -> None:
    """3 of 4 views: nothing reaches the PACS until study_timeout_s of silence has declared
    the study, then exactly one result set over the three images."""
    uid, sops, paths = fresh_study(tmp_path, "partial")
    sent = sops[:3]
    cluster.send(paths[:3])
    folder = cluster.spool / "studies" / uid

    def declared() -> bool:
        was_declared = (folder / "complete.json").exists()  # looked at before the PACS is
        held = cluster.pacs_objects(uid)
        assert was_declared or not held, "results reached the PACS before the study was declared"
        return was_declared

    wait_until(declared, 120, "the partial study declared by its timeout", interval=0.2)
    completion = CompletionRecord.read(folder / "complete.json")
    assert completion.reason == "timeout" and sorted(completion.sop_uids) == sorted(sent), completion
    # Declared only after the quiet spell: the node's own record against the last image's write.
    last_image = max((folder / "images" / f"{sop}.dcm").stat().st_mtime for sop in sent)
    assert completion.declared_at - last_image >= STUDY_TIMEOUT_S - 0.01, (completion.declared_at, last_image)
    cluster.reconcile(uid, sent)
    settle(2 * STUDY_TIMEOUT_S)  # room for a second (duplicate) declaration, were there one
    assert len(cluster.reports(uid)) == 1
    held = _reports_in_pacs(cluster, uid)
    assert len(held[MAMMO_CAD_SR]) == 1 and len(held[COMPREHENSIVE_3D_SR]) == 1, held


def test_a_late_image_yields_one_amended_report(cluster: Cluster, tmp_path: Path) -> None:
    """A fifth image after the study was reported: one amended result set (new UIDs, each SR
    citing its predecessor), never a second report of the first four or a parallel one."""
    from tests.factories import make_mammogram, write

    uid, sops, paths = fresh_study(tmp_path, "late")
    cluster.send(paths)
    first = cluster.wait_delivered(uid, sops)
    extra = make_mammogram(laterality="R", view="CC", rows=64, columns=48, study_uid=uid, seed=7)
    cluster.send([write(extra, tmp_path / "late" / "extra.dcm")])
    every = [*sops, str(extra.SOPInstanceUID)]
    cluster.reconcile(uid, every)
    settle(2 * STUDY_TIMEOUT_S)  # room for a third declaration, were there one
    reports = cluster.reports(uid)
    assert [sorted(r["sop_uids"]) for r in reports] == [sorted(sops), sorted(every)] or \
        [sorted(r["sop_uids"]) for r in reports] == [sorted(every), sorted(sops)], reports
    amended = next(r for r in reports if len(r["sop_uids"]) == 5)
    assert not set(amended["outputs"]) & set(first["outputs"]), "the amended report reused UIDs"
    for sop_class, held in _reports_in_pacs(cluster, uid).items():
        if sop_class not in (MAMMO_CAD_SR, COMPREHENSIVE_3D_SR):
            continue
        assert len(held) == 2, (sop_class, [str(ds.SOPInstanceUID) for ds in held])
        old = next(ds for ds in held if str(ds.SOPInstanceUID) in first["outputs"])
        new = next(ds for ds in held if str(ds.SOPInstanceUID) in amended["outputs"])
        assert _cited(new) == {str(old.SOPInstanceUID)} and not _cited(old), sop_class
        assert _evidence(new) == set(every) and _evidence(old) == set(sops), sop_class
