"""`mammocad outbox retry` in the instant a delivery attempt dead-letters the item.

The attempt (``outbox_delivery.attempt``, under the item's lock as ``tasks.deliver`` holds it)
moves the item to ``deadletter/``, then asks whether confirmed ``studies resend`` copies
superseded it, then logs and audits it dead. `outbox retry` took no lock: run in that window it
put the item back, and the attempt then logged it dead (``dead_items=0``, nothing of it in the
dead letters) while it was waiting in the outbox again. Now retry waits for the attempt's lock.
The interleaving is forced with events, not timing.
"""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

import mammocad.worker.outbox_delivery as delivery
from mammocad.cli import main
from mammocad.config import Destination
from mammocad.spool.outbox import Outbox, OutboxItem
from tests.factories import make_mammogram, put_new
from tests.services import free_port
from tests.worker.conftest import make_settings


def test_a_retry_during_the_attempt_that_dead_letters_the_item_waits_for_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    spool = tmp_path / "spool"
    port = free_port()  # nothing listens: the attempt fails, past its deadline, so it dead-letters
    settings = make_settings(spool, [Destination(name="pacs", ae_title="PACS", host="127.0.0.1", port=port)])
    cfg = tmp_path / "mammocad.toml"
    cfg.write_text(f'[node]\nspool_dir = "{spool}"\n[[destinations]]\nname = "pacs"\nae_title = "PACS"\n'
                   f'host = "127.0.0.1"\nport = {port}\n')
    outbox = Outbox(spool)
    item = put_new(outbox, "pacs", "k", [make_mammogram(rows=32, columns=24, seed=0)])
    item.created -= 3600  # past delivery.deadline_s
    outbox.save(item)

    monkeypatch.setattr("mammocad.worker.outbox_cli.ADMIN_LOCK_WAIT_S", 300.0)  # however slow the attempt is
    # Set when the admin's retry has listed the dead letter and locks it (with the fix), or has
    # put it back (without): the attempt goes on only then.
    admin_moved = threading.Event()
    real_locked = Outbox.locked

    def locked(self: Outbox, it: OutboxItem, wait_s: float = 0.0) -> AbstractContextManager[bool]:
        if threading.current_thread().name == "admin":
            admin_moved.set()
        return real_locked(self, it, wait_s)

    def retry() -> None:
        try:
            assert main(["--config", str(cfg), "outbox", "retry", "pacs/k"]) == 0
        finally:
            admin_moved.set()

    admin = threading.Thread(target=retry, name="admin")
    real_copies = delivery.superseding_copies

    def copies_then_the_admin_retries(box: Outbox, dead: OutboxItem) -> list[str]:
        """The item is in deadletter/ now: the admin's retry runs until it is done or waits for the lock."""
        admin.start()
        assert admin_moved.wait(60), "the admin's `outbox retry` neither put it back nor waited for its lock"
        return real_copies(box, dead)

    monkeypatch.setattr(Outbox, "locked", locked)
    monkeypatch.setattr(delivery, "superseding_copies", copies_then_the_admin_retries)
    with caplog.at_level(logging.INFO, logger="mammocad.worker.outbox_delivery"):
        with outbox.locked(item) as got:  # held by the attempt, as tasks.deliver does
            assert got
            outcome = delivery.attempt(settings, outbox, item)
        admin.join()
    assert outcome == ("dead", None)
    (dead_line,) = [vars(r) for r in caplog.records if r.getMessage() == "dead_letter"]
    assert dead_line["dead_items"] == 1  # logged dead while it was dead, not while back in the outbox
    assert "requeued pacs/k (1 files)" in capsys.readouterr().out
    (back,) = outbox.items()  # then the admin's retry put it back, with a fresh deadline
    assert back.item_id == "k" and back.attempts == 0 and outbox.items(dead=True) == []

