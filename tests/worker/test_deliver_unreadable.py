"""``tasks.deliver`` on an outbox item whose ``item.json`` cannot be read.

It let the :class:`RecordError` out: the Celery task failed with a traceback while the sweeper
(``Outbox.items``) says the same thing on one ``outbox_item_unreadable`` line. The task now
logs that line and ends its chain. The real task runs (Celery's ``apply``, in this process)
on a real spool; it sends nothing, so no broker is reached.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from celery import Celery

from mammocad.spool.broker import make_celery
from mammocad.spool.outbox import Outbox
from mammocad.spool.tasks import TASK_DELIVER, deliver_args
from mammocad.worker.outbox_delivery import requeue_due
from mammocad.worker.tasks import register_tasks
from tests.factories import make_mammogram, put_new
from tests.services import free_port
from tests.worker.conftest import make_settings


def _truncated(text: str) -> str:  # a copy or a disk that stopped halfway
    return text[: len(text) // 2]


def _newer(text: str) -> str:  # written by a newer release sharing the spool
    return json.dumps({**json.loads(text), "version": 99})


@pytest.mark.parametrize("damage", [_truncated, _newer], ids=["truncated", "newer-version"])
def test_deliver_logs_an_unreadable_item_once_instead_of_failing(
        tmp_path: Path, damage: object, caplog: pytest.LogCaptureFixture) -> None:
    spool = tmp_path / "spool"
    settings = make_settings(spool)
    app = make_celery(settings, broker_url=f"redis://127.0.0.1:{free_port()}/0")  # never reached
    register_tasks(app, settings)
    item = put_new(Outbox(spool), "pacs", "rep", [make_mammogram(rows=32, columns=24, seed=0)])
    item_json = item.path / "item.json"
    item_json.write_text(damage(item_json.read_text()))  # type: ignore[operator]

    with caplog.at_level(logging.INFO):
        result = app.tasks[TASK_DELIVER].apply(args=deliver_args(str(spool), "pacs", "rep"),
                                               kwargs={"token": item.token})
    assert result.successful(), result.traceback
    assert result.get() == "unreadable"
    lines = [r for r in caplog.records if r.name.startswith("mammocad")]
    assert [(r.getMessage(), r.levelno) for r in lines] == [("outbox_item_unreadable", logging.ERROR)]
    assert vars(lines[0])["item"] == str(item.path) and "item.json" in vars(lines[0])["error"]
    assert item_json.exists()  # left for the admin: `mammocad outbox list` names it


def test_deliver_and_the_sweeper_report_an_unreadable_item_on_one_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The task logged its own ``outbox_item_unreadable`` line, past the sweeper's once-per-error
    memo: a deliver run and the sweeps after it logged the same item twice. Both now go through
    the memo (in one process: each pool process of a worker keeps its own), and a successful read
    makes it forget the item, so one that breaks again after a repair is logged again."""
    spool = tmp_path / "spool"
    settings = make_settings(spool)
    app = make_celery(settings, broker_url=f"redis://127.0.0.1:{free_port()}/0")  # never reached
    register_tasks(app, settings)
    outbox = Outbox(spool)
    item = put_new(outbox, "pacs", "rep", [make_mammogram(rows=32, columns=24, seed=0)])
    item.next_attempt += 3600  # not due: neither the sweep nor a repaired run sends or queues anything
    outbox.save(item)
    item_json = item.path / "item.json"
    sound = item_json.read_text()

    def deliver(token: str | None) -> str:
        result = app.tasks[TASK_DELIVER].apply(args=deliver_args(str(spool), "pacs", "rep"), kwargs={"token": token})
        assert result.successful(), result.traceback
        return str(result.get())

    def sweep() -> None:
        assert requeue_due(Celery("unused"), str(spool), 0.0) == 0
        assert outbox.items() == []

    with caplog.at_level(logging.INFO):
        item_json.write_text(_truncated(sound))
        assert deliver(item.token) == "unreadable"
        sweep()
        sweep()
        assert len(_unreadable_lines(caplog)) == 1
        item_json.write_text(sound)  # repaired, and read by a run (no token: it only looks)
        assert deliver(None) == "early"
        item_json.write_text(_truncated(sound))  # broken again, with the same error
        assert deliver(item.token) == "unreadable"
        sweep()

    lines = _unreadable_lines(caplog)
    assert [(r["item"], r["error"]) for r in lines] == [(str(item.path), lines[0]["error"])] * 2
    assert "item.json" in str(lines[0]["error"])


def _unreadable_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [vars(r) for r in caplog.records if r.getMessage() == "outbox_item_unreadable"]
