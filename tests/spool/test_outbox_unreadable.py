"""An unreadable outbox item in the results worker's sweep (``requeue_due``, every pass).

``Outbox.items`` logged ``outbox_item_unreadable`` on every call, and the sweeper calls it up to
every 15 s: one corrupt ``item.json`` flooded the log for as long as it stayed. It now logs an
item when its error first appears or changes, or when it breaks again after being read; a caller
that collects them (``outbox list``) still gets every one on every call. Real spool, real sweep
(nothing is due, so no broker is reached).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from celery import Celery

from mammocad.spool.outbox import Outbox
from mammocad.worker.outbox_delivery import requeue_due
from tests.factories import make_mammogram, put_new


def test_an_unreadable_item_is_logged_once_per_error_and_again_after_a_repair(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = tmp_path / "spool"
    outbox = Outbox(spool)
    for item_id in ("good", "bad"):  # scheduled an hour ahead: the sweep has nothing to queue
        item = put_new(outbox, "pacs", item_id, [make_mammogram(rows=32, columns=24, seed=0)])
        item.next_attempt += 3600
        outbox.save(item)
    item_json = outbox.root / "pacs" / "bad" / "item.json"
    sound = item_json.read_text()
    truncated, newer = sound[: len(sound) // 2], json.dumps({**json.loads(sound), "version": 99})

    def sweep() -> list[str]:
        """One sweeper pass; the ids of the items it could read."""
        assert requeue_due(Celery("unused"), str(spool), 0.0) == 0
        return [i.item_id for i in outbox.items()]

    with caplog.at_level(logging.ERROR, logger="mammocad.spool.outbox"):
        item_json.write_text(truncated)
        for _ in range(3):
            assert sweep() == ["good"]
            # other listings (the dead letters, another destination) do not make it forget the item
            assert outbox.items(dead=True) == [] and outbox.items(destination="ris") == []
        collected: list[tuple[Path, str]] = []
        for _ in range(2):  # `outbox list` reports them itself, every time it is asked
            assert outbox.items(unreadable=collected) == [outbox.get("pacs", "good")]
        assert [folder for folder, _ in collected] == [item_json.parent] * 2
        item_json.write_text(newer)  # the error changes
        sweep()
        sweep()
        item_json.write_text(sound)  # repaired: read again
        assert sweep() == ["good", "bad"]
        item_json.write_text(truncated)  # broken again, with the first error
        sweep()
        sweep()

    lines = [vars(r) for r in caplog.records if r.getMessage() == "outbox_item_unreadable"]
    assert [line["item"] for line in lines] == [str(item_json.parent)] * 3, [line["error"] for line in lines]
    assert ["unreadable record" in lines[0]["error"], "newer" in lines[1]["error"]] == [True, True]
    assert lines[2]["error"] == lines[0]["error"]
