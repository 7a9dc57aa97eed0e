"""``mammocad_delivery_attempts_total`` counts attempts, read from a real scrape over loopback.

An item sent to a destination that is down twice, then to a DCMTK storescp: three attempts,
``retry`` twice and ``delivered`` once (the attempt that left nothing pending, so that
outcome also counts delivered items), and the ``delivered`` log line says ``attempts=3``.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from mammocad.config import Destination
from mammocad.metrics.server import MetricsServer
from mammocad.spool.outbox import Outbox
from mammocad.worker.outbox_delivery import attempt
from tests.factories import make_mammogram
from tests.metrics.scrape import value
from tests.services import free_port
from tests.worker.conftest import StoreSCP, make_settings

NAME = "mammocad_delivery_attempts_total"


def _count(port: int, outcome: str) -> float:
    return value(port, NAME, destination="pacs", outcome=outcome) or 0.0


def test_each_attempt_counts_once_with_its_outcome(tmp_path: Path) -> None:
    pacs_port = free_port()
    dest = Destination(name="pacs", ae_title="PACS", host="127.0.0.1", port=pacs_port)
    settings = make_settings(tmp_path / "spool", [dest])
    outbox = Outbox(tmp_path / "spool")
    item = outbox.put("pacs", "r1", [make_mammogram(rows=32, columns=24, seed=i) for i in range(2)])
    assert item is not None
    server = MetricsServer(REGISTRY, {}, port=0).start()
    try:
        before = {o: _count(server.port, o) for o in ("delivered", "retry", "dead")}
        for _ in range(2):  # nothing listens on the port yet
            item = outbox.get("pacs", "r1")
            assert item is not None
            assert attempt(settings, outbox, item)[0] == "retry"
        with StoreSCP(tmp_path / "pacs", port=pacs_port):
            item = outbox.get("pacs", "r1")
            assert item is not None
            assert attempt(settings, outbox, item)[0] == "delivered"
        after = {o: _count(server.port, o) for o in before}
    finally:
        server.stop()
    assert {o: after[o] - before[o] for o in before} == {"delivered": 1, "retry": 2, "dead": 0}


def test_an_item_confirmed_copies_carried_counts_superseded(tmp_path: Path) -> None:
    """At its deadline `pacs`'s own item r2 is completed, not dead-lettered, because the
    confirmed `studies resend` copy r2.s1 carried all it held (``delivery_superseded``): the
    scrape counts that ``superseded``, neither a delivered item nor a failure to act on."""
    from mammocad.spool.studies import StudyFiles
    from mammocad.studies.actions import resend
    from tests.spool.test_catch_up import A, B, C, _report
    from tests.studies.test_resend import R1, R2, STUDY, _own_item

    spool_dir = tmp_path / "spool"
    files = StudyFiles(spool_dir, STUDY)  # r1 confirmed; r2, the late report, is `pacs`'s own item
    _report(files, "r1", [A, B], R1, 1.0, {"pacs": "r1"})
    _report(files, "r2", [A, B, C], R2, 2.0, {"pacs": "r2"}, {"pacs": tuple(R2)})
    outbox = Outbox(spool_dir)
    own = _own_item(outbox, files)
    # Nothing listens on the port: r2's attempt fails, as at a PACS that went away.
    settings = make_settings(spool_dir, [Destination(name="pacs", ae_title="PACS", host="127.0.0.1",
                                                     port=free_port())])
    (copy,) = resend(settings, STUDY, ["pacs"])
    outbox.complete(copy)  # the copy confirmed
    server = MetricsServer(REGISTRY, {}, port=0).start()
    outcomes = ("delivered", "retry", "dead", "superseded")
    try:
        before = {o: _count(server.port, o) for o in outcomes}
        assert attempt(settings, outbox, own) == ("superseded", None)
        after = {o: _count(server.port, o) for o in outcomes}
    finally:
        server.stop()
    assert {o: after[o] - before[o] for o in outcomes} == {"delivered": 0, "retry": 0, "dead": 0, "superseded": 1}
