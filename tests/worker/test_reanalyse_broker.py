"""``mammocad studies reanalyse`` while the broker is down, against real redis, Celery and storescp.

The broker went away after the old results were deleted: the command showed a traceback,
and once redis was back the node's reconciler queued the analyses and only the original
(revision 0) finalize, which skipped because its report exists: no amended report, ever.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydicom import dcmread

from mammocad.config import load_settings
from mammocad.node.reconciler import NodeReconciler
from mammocad.node.studies import StudyTracker
from mammocad.spool.broker import make_celery
from mammocad.spool.layout import Spool
from mammocad.spool.reconcile import read_broker, redis_client
from mammocad.spool.studies import StudyFiles, report_key
from mammocad.spool.tasks import (
    TASK_ANALYZE_IMAGE,
    TASK_FINALIZE_STUDY,
    analyze_image_args,
    finalize_study_args,
)
from mammocad.worker.tasks import register_tasks
from tests.services import free_port, redis_server
from tests.worker.conftest import StoreSCP, spool_study, wait_until, write_config
from tests.worker.test_studies_admin import _audited, _mammocad


@contextmanager
def _worker(cfg: Path) -> Iterator[Any]:
    """A real Celery worker (threads, in this process) on both queues, for ``cfg``'s broker."""
    from celery.contrib.testing.worker import start_worker

    settings = load_settings(cfg)
    app = make_celery(settings)
    register_tasks(app, settings, cfg)
    with start_worker(app, pool="threads", concurrency=3, perform_ping_check=False, loglevel="WARNING",
                      queues=[settings.worker.analysis_queue, settings.worker.results_queue]):
        yield app


def test_reanalyse_survives_the_broker_going_away(tmp_path: Path, random_weights: Path, storescp: StoreSCP) -> None:
    spool, port = tmp_path / "spool", free_port()
    url = f"redis://127.0.0.1:{port}/0"
    cfg = write_config(tmp_path, spool, random_weights, broker_url=url, audit=True, worker={"lease_s": 5},
                       destinations=[storescp.destination(outputs=["mammo-cad-sr"])],
                       retry_initial_s=0.5, retry_max_s=1.0)
    study_uid, sops = spool_study(spool)
    files = StudyFiles(spool, study_uid)
    files.layout.write(files.layout.complete_path(study_uid),
                       b'{"version": 1, "sop_uids": %s, "reason": "four_views"}' % str(sorted(sops)).replace(
                           "'", '"').encode())
    with redis_server(tmp_path / "redis-1", port), _worker(cfg) as app:
        for sop in sops:
            app.send_task(TASK_ANALYZE_IMAGE, args=analyze_image_args(spool, study_uid, sop))
        app.send_task(TASK_FINALIZE_STUDY, args=finalize_study_args(spool, study_uid, sops))
        wait_until(files.report(report_key(sops, "0.0.0-random")).exists, 120, "the first report")
        wait_until(lambda: len(storescp.received()) == 1, 60, "the first SR at the PACS")
    first = {str(dcmread(p).SOPInstanceUID) for p in storescp.received()}

    # The broker is gone: the command says why and what to do, and no traceback.
    down = _mammocad(cfg, "studies", "reanalyse", study_uid)
    assert down.returncode == 1, down.stdout + down.stderr
    assert "Traceback" not in down.stderr, down.stderr
    assert "broker" in down.stderr and "reconciler" in down.stderr and "version 1" in down.stderr, down.stderr
    _audited(tmp_path / "audit.log", "110103", study_uid)  # it takes effect: the re-analysis is owed

    # Redis is back, empty (as after a restart without its data); the node's reconciler (as the
    # node runs it) queues what the spool owes, and the re-analysis ends in an amended report.
    with redis_server(tmp_path / "redis-2", port), _worker(cfg) as app:
        settings = load_settings(cfg)
        queues = [settings.worker.analysis_queue, settings.worker.results_queue]
        client = redis_client(url)
        reconciler = NodeReconciler(Spool(spool), lambda: read_broker(client, queues),
                                    lease_s=settings.worker.lease_s, interval_s=0.0)
        tracker = StudyTracker(300.0)

        def analyse(study: str, owed: list[str]) -> None:
            for sop in owed:
                app.send_task(TASK_ANALYZE_IMAGE, args=analyze_image_args(spool, study, sop))

        def finalize(study: str, owed: list[str]) -> None:
            app.send_task(TASK_FINALIZE_STUDY, args=finalize_study_args(spool, study, owed))

        amended = files.report(report_key(sops, "0.0.0-random", 1))

        def reconciled() -> bool:
            reconciler.run(tracker, analyse, finalize)
            return amended.exists()

        wait_until(reconciled, 180, "the amended report (revision 1)", interval=0.5)
        wait_until(lambda: len(storescp.received()) == 2, 60, "the amended SR at the PACS")
    srs = {str(ds.SOPInstanceUID): ds for ds in map(dcmread, storescp.received())}
    new = srs[(set(srs) - first).pop()]
    cited = [ref.ReferencedSOPInstanceUID for st in new.PredecessorDocumentsSequence
             for se in st.ReferencedSeriesSequence for ref in se.ReferencedSOPSequence]
    assert cited == sorted(first)
    assert not files.layout.reanalysis_path(study_uid).exists()  # done: nothing owed any more
