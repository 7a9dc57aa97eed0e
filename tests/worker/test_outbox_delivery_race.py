"""A resend copy confirmed in the very instant its lineage's item is dead-lettered.

Two workers: A's attempt of `pacs`'s own item r2 reaches its deadline (under r2's lock, as
``tasks.deliver`` holds it) while B confirms the copy r2.s1 (``Outbox.complete``). Each used
to look for the other before moving: A asked for confirmed copies (r2.s1 still in the outbox)
and B for dead letters (r2 not there yet), and r2 stayed dead-lettered with nothing the PACS
lacked. The interleaving is forced with events, not timing.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

import mammocad.worker.outbox_delivery as delivery
from mammocad.config import Destination
from mammocad.spool.outbox import Outbox, OutboxItem
from mammocad.spool.studies import StudyFiles
from mammocad.studies.actions import resend
from tests.services import free_port
from tests.studies.test_resend import STUDY, _own_item, spool  # noqa: F401  (fixture)
from tests.worker.conftest import make_settings


def test_a_copy_confirmed_while_its_item_is_dead_lettered_still_retires_it(
        spool: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    outbox = Outbox(spool)
    own = _own_item(outbox, StudyFiles(spool, STUDY))
    settings = make_settings(spool, [Destination(name="pacs", ae_title="PACS", host="127.0.0.1",
                                                 port=free_port())])  # nothing listens: r2's attempt fails
    (copy,) = resend(settings, STUDY, ["pacs"])
    worker_b = Outbox(spool)  # the other worker's view of the same spool
    copy_gone = threading.Event()
    real_discard = worker_b._discard

    def discard(path: Path) -> None:
        real_discard(path)
        if path.name == copy.item_id:
            copy_gone.set()

    monkeypatch.setattr(worker_b, "_discard", discard)
    monkeypatch.setattr("mammocad.spool.outbox.RETIRE_WAIT_S", 300.0)  # B waits for A's lock however slow A is
    b = threading.Thread(target=worker_b.complete, args=(copy,), name="worker-b")
    real_copies = delivery.superseding_copies

    def copies_then_b_confirms(box: Outbox, item: OutboxItem) -> list[str]:
        """A asks while the copy is still in the outbox; B's confirmation deletes it before A goes on."""
        found = real_copies(box, item)
        b.start()
        assert copy_gone.wait(60), "worker B did not delete the confirmed copy"
        return found

    monkeypatch.setattr(delivery, "superseding_copies", copies_then_b_confirms)
    with caplog.at_level(logging.INFO, logger="mammocad.spool.outbox"):
        with outbox.locked(own) as got:  # held by A for its attempt, as tasks.deliver does
            assert got
            outcome = delivery.attempt(settings, outbox, own)
        b.join()
    assert outcome == ("dead", None)  # A saw the copy still pending: it dead-lettered r2 ...
    said = [(r.getMessage(), vars(r)["item"], vars(r)["copy"]) for r in caplog.records
            if r.name == "mammocad.spool.outbox"]
    assert said == [("deadletter_superseded", "r2", "r2.s1")]  # ... and B, once A let go, retired it
    assert outbox.items(dead=True) == [] and outbox.items() == []
