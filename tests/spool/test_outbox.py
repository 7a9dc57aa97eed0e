"""The on-disk outbox and `mammocad outbox list|retry` (real files, real redis for retry)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from mammocad.cli import main
from mammocad.spool.layout import Spool
from mammocad.spool.outbox import Outbox, OutboxItem
from tests.factories import make_mammogram, put_new


def _datasets(n: int = 2) -> list[Dataset]:
    return [make_mammogram(rows=32, columns=24, seed=i) for i in range(n)]


def _get(outbox: Outbox, item_id: str, dead: bool = False) -> OutboxItem:
    """The "pacs" item the test has put there (``get`` answers None for one that is not)."""
    item = outbox.get("pacs", item_id, dead)
    assert item is not None, f"no item pacs/{item_id} in the outbox"
    return item


def test_put_is_atomic_and_idempotent(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    ds = _datasets()
    item = put_new(outbox, "pacs", "key1", ds)
    assert sorted(p.stem for p in item.files()) == sorted(str(d.SOPInstanceUID) for d in ds)
    meta = json.loads((item.path / "item.json").read_text())
    assert meta["destination"] == "pacs" and meta["attempts"] == 0 and meta["token"]
    assert outbox.put("pacs", "key1", _datasets(3)) is None  # second put of the same report: no copy
    assert len(_get(outbox, "key1").files()) == 2
    assert not list((tmp_path / "tmp").iterdir())  # no leftovers of the build folder


def test_pending_files_skip_confirmed_ones(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    item = put_new(outbox, "pacs", "k", _datasets(3))
    item.delivered.append(item.files()[0].stem)
    outbox.save(item)
    assert len(_get(outbox, "k").pending_files()) == 2


def test_dead_letter_and_revive(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    item = put_new(outbox, "pacs", "k", _datasets())
    item.attempts, item.last_error = 7, "association to pacs failed"
    outbox.save(item)
    outbox.dead_letter(item)
    assert outbox.items() == []
    dead = outbox.items(dead=True)
    assert [(d.item_id, d.attempts) for d in dead] == [("k", 7)]
    assert (tmp_path / "deadletter" / "pacs" / "k" / "item.json").exists()
    assert outbox.put("pacs", "k", _datasets()) is None  # a dead item blocks a duplicate too
    revived = outbox.revive("pacs", "k")
    assert revived.attempts == 0 and revived.token != item.token
    assert [i.item_id for i in outbox.items()] == ["k"] and outbox.items(dead=True) == []
    with pytest.raises(KeyError, match="outbox list --dead"):
        outbox.revive("pacs", "k")


def test_lock_is_exclusive(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    item = put_new(outbox, "pacs", "k", _datasets(1))
    with outbox.locked(item) as first:
        with outbox.locked(_get(outbox, "k")) as second:
            assert first and not second
    with outbox.locked(item) as again:
        assert again


def test_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outbox item id"):
        Outbox(tmp_path).put("pacs", "../escape", _datasets(1))


def _config(tmp_path: Path, broker: str = "") -> Path:
    cfg = tmp_path / "mammocad.toml"
    cfg.write_text(f'[node]\nspool_dir = "{tmp_path / "spool"}"\n[broker]\nurl = "{broker}"\n'
                   '[[destinations]]\nname = "pacs"\nae_title = "PACS"\nhost = "127.0.0.1"\nport = 1\n')
    return cfg


def test_cli_list_and_retry_without_broker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    outbox = Outbox(tmp_path / "spool")
    item = put_new(outbox, "pacs", "rep1", _datasets())
    assert main(["--config", str(cfg), "outbox", "list"]) == 0
    out = capsys.readouterr().out
    assert "pacs" in out and "rep1" in out
    item.last_error = "association to pacs (PACS@127.0.0.1:1) failed"
    outbox.save(item)
    outbox.dead_letter(item)
    assert main(["--config", str(cfg), "outbox", "list", "--dead"]) == 0
    assert "PACS@127.0.0.1:1" in capsys.readouterr().out
    assert main(["--config", str(cfg), "outbox", "retry", "nope"]) == 1
    assert "no dead-letter item" in capsys.readouterr().err
    assert main(["--config", str(cfg), "outbox", "retry"]) == 2
    assert main(["--config", str(cfg), "outbox", "retry", "pacs/rep1"]) == 0
    assert "running worker will send" in capsys.readouterr().out
    assert _get(outbox, "rep1").token == ""  # the sweeper sends unscheduled items at once


def test_cli_retry_queues_a_delivery(tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    import redis

    cfg = _config(tmp_path, redis_url)
    outbox = Outbox(tmp_path / "spool")
    for key in ("a", "b"):
        outbox.dead_letter(put_new(outbox, "pacs", key, _datasets(1)))
    os.environ.pop("MAMMOCAD_BROKER__URL", None)
    assert main(["--config", str(cfg), "outbox", "retry", "--all"]) == 0
    assert capsys.readouterr().out.count("requeued") == 2
    queued = [json.loads(m) for m in redis.Redis.from_url(redis_url).lrange("results", 0, -1)]
    tasks = sorted((m["headers"]["task"], m["headers"]["argsrepr"]) for m in queued)
    assert [t[0] for t in tasks] == ["mammocad.deliver"] * 2
    assert all(str(tmp_path / "spool") in t[1] for t in tasks)
    assert {i.item_id for i in outbox.items()} == {"a", "b"}


class _Killed(BaseException):
    """A process killed while deleting: nothing after this point runs."""


def _rmtree_killed_after_item_json(path: Path, ignore_errors: bool = False) -> None:
    (Path(path) / "item.json").unlink()  # rmtree had taken the first file when the process died
    raise _Killed


@pytest.mark.parametrize("how", ["complete", "drop"])
def test_a_delete_killed_midway_leaves_no_item_folder_without_its_item(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """An outbox folder with no item.json kept its study from retention for good and read as
    an item that holds nothing (the catch-up of a late report sent it all again)."""
    outbox = Outbox(tmp_path)
    item = put_new(outbox, "pacs", "k", _datasets())
    monkeypatch.setattr("mammocad.spool.outbox.shutil.rmtree", _rmtree_killed_after_item_json)
    with pytest.raises(_Killed):
        outbox.complete(item) if how == "complete" else outbox.drop(item)
    assert not (tmp_path / "outbox" / "pacs" / "k").exists()
    (left,) = (tmp_path / "tmp").iterdir()  # what the killed delete left is in tmp/, not in the outbox
    assert left.name.startswith(".outbox-")


def test_spool_start_removes_outbox_folders_a_crash_left_in_tmp(tmp_path: Path) -> None:
    spool = Spool(tmp_path).create()
    old, new, pruned = (spool.tmp / ".outbox-done-k-1", spool.tmp / ".outbox-k2-x", spool.tmp / ".pruned-1.2-ab")
    for folder in (old, new, pruned):
        folder.mkdir()
        (folder / "1.2.3.dcm").write_bytes(b"result object")
    for folder in (old, pruned):
        os.utime(folder, (1.0, 1.0))
    Spool(tmp_path).create()
    assert not old.exists()  # a result object left over an hour ago: gone
    assert new.exists()  # possibly an item being written right now
    assert pruned.exists()  # retention's: its next pass settles it (put back or audited)


def _dead(outbox: Outbox, dest: str, item_id: str, datasets: list[Dataset]) -> OutboxItem:
    return outbox.dead_letter(put_new(outbox, dest, item_id, datasets))


def test_a_confirmed_copy_takes_out_the_dead_letters_it_superseded_only(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """`studies resend` copy ``k.s2`` confirmed: the dead ``k`` and ``k.s1`` it carried all of
    go (they stayed until `outbox drop`, and retention kept the study). Not a later copy, not
    another destination's, not one holding an object the copy did not carry (nothing lost),
    not one an admin command holds."""
    outbox = Outbox(tmp_path)
    objects = _datasets(3)
    _dead(outbox, "pacs", "k", objects[:2])
    _dead(outbox, "pacs", "k.s1", objects[:1])
    _dead(outbox, "pacs", "k.s3", objects[:1])     # after the copy: not its to settle
    _dead(outbox, "archive", "k", objects[:1])     # another destination's
    _dead(outbox, "pacs", "j", objects[:1])        # another report's
    copy = put_new(outbox, "pacs", "k.s2", objects[:2])
    with caplog.at_level(logging.INFO, logger="mammocad.spool.outbox"):
        outbox.complete(copy)
    assert sorted((i.destination, i.item_id) for i in outbox.items(dead=True)) == [
        ("archive", "k"), ("pacs", "j"), ("pacs", "k.s3")]
    assert outbox.items() == []
    said = [(r.getMessage(), vars(r)["item"]) for r in caplog.records]
    assert said == [("deadletter_superseded", "k"), ("deadletter_superseded", "k.s1")]

    more = _dead(outbox, "pacs", "m", objects)     # holds an object the copy did not carry
    held = _dead(outbox, "pacs", "m.s1", objects[:1])
    caplog.clear()
    monkeypatch.setattr("mammocad.spool.outbox.RETIRE_WAIT_S", 0.0)  # the test holds it until complete returns
    with outbox.locked(held) as got, caplog.at_level(logging.INFO, logger="mammocad.spool.outbox"):
        assert got
        outbox.complete(put_new(outbox, "pacs", "m.s2", objects[:2]))
    assert sorted(i.item_id for i in outbox.items(dead=True, destination="pacs")) == ["j", "k.s3", "m", "m.s1"]
    assert _get(outbox, "m", dead=True).files() == more.files()
    kept = {vars(r)["item"]: vars(r)["why"] for r in caplog.records if r.getMessage() == "deadletter_kept"}
    assert kept == {"m": "1 object(s) it holds were not in the copy",
                    "m.s1": "another process held it for 0 s (`outbox drop` or `outbox retry`, or the delivery "
                            "attempt that dead-lettered it); the worker's next dead-letter sweep looks again"}


def test_a_dead_letter_whose_rest_was_confirmed_before_it_died_is_superseded(tmp_path: Path) -> None:
    """What the dead item delivered itself counts: the copy needs to carry only the rest."""
    outbox = Outbox(tmp_path)
    objects = _datasets(2)
    item = put_new(outbox, "pacs", "k", objects)
    item.delivered = [str(objects[0].SOPInstanceUID)]
    outbox.save(item)
    outbox.dead_letter(item)
    outbox.complete(put_new(outbox, "pacs", "k.s1", objects[1:]))
    assert outbox.items(dead=True) == []


@pytest.mark.parametrize("admin", ["drop", "retry"])
def test_a_dead_letter_that_left_before_the_copy_looked_is_said_gone_not_held(
        tmp_path: Path, admin: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """An admin's `outbox drop` (or `outbox retry`) takes the dead ``k`` between the confirmed
    copy finding it and locking it: the line said "an admin command holds it", a WARNING that
    sent the admin looking for a command that had already finished. It now says where it went."""
    outbox = Outbox(tmp_path)
    objects = _datasets(2)
    _dead(outbox, "pacs", "k", objects)
    copy = put_new(outbox, "pacs", "k.s1", objects)
    real_locked = outbox.locked

    def admin_first(item: OutboxItem, wait_s: float = 0.0):  # type: ignore[no-untyped-def]
        if item.dead and item.item_id == "k":
            outbox.drop(_get(outbox, "k", dead=True)) if admin == "drop" else outbox.revive("pacs", "k")
        return real_locked(item, wait_s)

    monkeypatch.setattr(outbox, "locked", admin_first)
    with caplog.at_level(logging.INFO, logger="mammocad.spool.outbox"):
        outbox.complete(copy)
    said = [(r.getMessage(), r.levelno, vars(r).get("why")) for r in caplog.records]
    where = "put back in the outbox (`outbox retry`)" if admin == "retry" else \
        "removed meanwhile (`outbox drop`, or completed as superseded)"
    assert said == [("deadletter_gone", logging.INFO, where)]
    assert outbox.items(dead=True) == [] and [i.item_id for i in outbox.items()] == (["k"] if admin == "retry" else [])


@pytest.mark.parametrize(("key", "value"), [
    ("created", "12"), ("created", True), ("next_attempt", float("nan")), ("next_attempt", "soon"),
    ("attempts", "3"), ("attempts", True), ("attempts", -1), ("delivered", "1.2.3"),
])
def test_an_item_with_a_mistyped_field_is_reported_not_sorted(
        tmp_path: Path, key: str, value: object, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``item.json`` with a string or ``true`` for a time or count got through: a ``created`` of
    "12" stopped the sweeper at its sort of every item (TypeError, each pass), ``true`` read as
    1970. The sweep now logs it (``outbox_item_unreadable``), `outbox list` names it, and the
    other items go on."""
    from celery import Celery

    from mammocad.worker.outbox_delivery import requeue_due

    outbox = Outbox(tmp_path / "spool")
    for item_id in ("good", "bad"):  # scheduled and not due: the sweep has nothing to queue
        item = put_new(outbox, "pacs", item_id, _datasets(1))
        item.next_attempt += 3600
        outbox.save(item)
    bad = _get(outbox, "bad")
    meta = json.loads((bad.path / "item.json").read_text())
    (bad.path / "item.json").write_text(json.dumps({**meta, key: value}))
    with caplog.at_level(logging.ERROR, logger="mammocad.spool.outbox"):
        assert requeue_due(Celery("unused"), str(tmp_path / "spool"), 0.0) == 0
        assert main(["--config", str(_config(tmp_path)), "outbox", "list"]) == 1
    out, err = capsys.readouterr()
    assert "good" in out and f"unreadable item {bad.path} (bad/item.json: {key} must be" in err
    (unreadable,) = [vars(r) for r in caplog.records if r.getMessage() == "outbox_item_unreadable"]  # the sweep's
    assert unreadable["item"] == str(bad.path) and key in unreadable["error"]


@pytest.mark.parametrize("dead", [False, True])
def test_outbox_list_names_an_unreadable_item_and_what_to_do(
        tmp_path: Path, dead: bool, capsys: pytest.CaptureFixture[str]) -> None:
    """It said "outbox is empty" and exit 0, with a bare ``outbox_item_unreadable`` on stderr
    (no logging set up in a command: the event's name only, not which item nor why)."""
    outbox = Outbox(tmp_path / "spool")
    item = put_new(outbox, "pacs", "bad", _datasets(1))
    if dead:
        item = outbox.dead_letter(item)
    (item.path / "item.json").write_text(json.dumps({**item.to_json(), "created": "yesterday"}))
    assert main(["--config", str(_config(tmp_path)), "outbox", "list", *(["--dead"] if dead else [])]) == 1
    out, err = capsys.readouterr()
    assert out == ("dead-letter folder" if dead else "outbox") + " has no readable item\n"
    (line,) = err.splitlines()
    assert line.startswith(f"mammocad outbox list: unreadable item {item.path} (bad/item.json: created must be a time")
    assert "correct its item.json" in line and "remove the folder" in line
