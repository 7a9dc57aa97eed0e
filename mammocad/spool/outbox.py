"""The on-disk outbox: results waiting for a destination to confirm them.

Layout (under ``node.spool_dir``)::

    outbox/<destination>/<item_id>/<SOPInstanceUID>.dcm ... + item.json
    deadletter/<destination>/<item_id>/...                    (same content)

An item is one report's files for one destination. It appears atomically (built in
``tmp/`` and renamed), its files are deleted only after the destination answered Success
for every one of them, and after ``delivery.deadline_s`` without success it moves to the
dead-letter folder, from where ``mammocad outbox retry`` brings it back. A ``studies resend``
copy ``<item>.s<n>`` that is confirmed deletes the dead letters of its lineage it carried every
pending object of (:meth:`Outbox.complete`); one of them still in the outbox then is completed
instead of dead-lettered at its deadline (:mod:`mammocad.spool.superseded`).

``item.json`` holds: destination, created, attempts, next_attempt, last_error, delivered
(SOP UIDs already confirmed, so a retry resends only the rest) and ``token``: the id of
the one scheduled ``deliver`` chain allowed to act on the item (see ``tasks.py``).
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mammocad.logs import log_event
from mammocad.spool.layout import (
    DIR_MODE,
    OUTBOX_TMP_PREFIX,
    Spool,
    atomic_write_json,
    ensure_dir,
    fsync_dir,
    write_new,
)
from mammocad.spool.outbox_unreadable import describe, forget, report_listing
from mammocad.spool.records import RecordError, check_version, int_field, load_json, time_field, uid_list

if TYPE_CHECKING:  # pydicom loads numpy and Pillow: not at import (tests/test_cli_help.py)
    from pydicom.dataset import Dataset

logger = logging.getLogger(__name__)

_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
ITEM_JSON = "item.json"
#: ``item.json``'s record version (:mod:`mammocad.spool.records` says what a version promises).
OUTBOX_ITEM_VERSION = 1
#: How long retiring a superseded dead letter waits for its lock: the holder is the attempt
#: that has just dead-lettered it (milliseconds of bookkeeping left, see :meth:`Outbox.complete`),
#: ``outbox drop`` or ``outbox retry``. Past it the letter is kept, for the worker's next dead-letter sweep.
RETIRE_WAIT_S = 5.0


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value) or value in (".", ".."):
        raise ValueError(f"{what} must be 1-128 characters of A-Z a-z 0-9 _ . -, got {value!r}")
    return value


def lineage_before(item_id: str) -> list[str]:
    """The items a ``studies resend`` copy ``<base>.s<n>`` comes after in its lineage: ``<base>``
    (the destination's own item) and the copies ``<base>.s<m>``, m < n; none for an item that is
    no copy. A confirmed copy settles these (it carried the objects current when it was queued),
    never a later copy, which an admin queued because the destination lacked something again.
    """
    base, sep, number = item_id.rpartition(".s")
    if not sep or not number.isdigit():
        return []
    return [base, *(f"{base}.s{m}" for m in range(1, int(number)))]


@dataclass
class OutboxItem:
    """One delivery item; ``path`` is its folder (in outbox/ or deadletter/)."""

    destination: str
    item_id: str
    created: float
    next_attempt: float
    attempts: int = 0
    last_error: str | None = None
    delivered: list[str] = field(default_factory=list)
    token: str = ""
    dead: bool = False
    path: Path = Path()

    def files(self) -> list[Path]:
        return sorted(self.path.glob("*.dcm"))

    def study(self) -> tuple[str, str, dict[str, int]]:
        """(Study Instance UID, Accession Number, SOP class counts) read from the item's files."""
        from pydicom import dcmread

        study, accession = "", ""
        classes: dict[str, int] = {}
        for path in self.files():
            try:
                ds = dcmread(path, stop_before_pixels=True, specific_tags=[
                    "StudyInstanceUID", "AccessionNumber", "SOPClassUID"])
            except Exception:  # a damaged file: the listing still shows the rest
                continue
            study = study or str(ds.get("StudyInstanceUID", ""))
            accession = accession or str(ds.get("AccessionNumber", "") or "")
            sop_class = str(ds.get("SOPClassUID", ""))
            classes[sop_class] = classes.get(sop_class, 0) + 1
        return study, accession, classes

    def pending_files(self) -> list[Path]:
        done = set(self.delivered)
        return [p for p in self.files() if p.stem not in done]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        del d["path"], d["dead"]
        return {"version": OUTBOX_ITEM_VERSION, **d}

    @classmethod
    def from_json(cls, data: dict[str, Any], *, dead: bool, path: Path) -> OutboxItem:
        """Read ``item.json``: version 0 (no ``version`` field) and 1 have the same fields.

        Times, ``attempts`` and ``delivered`` go through the records' shared readers, so a
        wrong type is a :class:`RecordError` here (``Outbox.items`` reports the item as
        ``outbox_item_unreadable`` and goes on) rather than a value that breaks later: a
        ``created`` of ``"12"`` stopped the sweeper's sort of every item, ``true`` read as
        1970, and a string ``delivered`` read as its characters.
        """
        what = f"{path.name}/{ITEM_JSON}"
        check_version(data, OUTBOX_ITEM_VERSION, what)
        known = {f.name for f in fields(cls)} - {"path", "dead"}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("created", "next_attempt"):  # required: a missing one stays a TypeError below
            if key in values:
                values[key] = time_field(data, key, what)
        if "attempts" in values:
            values["attempts"] = int_field(data, "attempts", what, minimum=0, meaning="a count")
        if "delivered" in values:
            values["delivered"] = list(uid_list(data, "delivered", what))
        try:
            return cls(**values, dead=dead, path=path)
        except TypeError as exc:  # a required field is missing
            raise RecordError(f"{what}: {exc}") from exc


class Outbox:
    """Outbox and dead-letter folders of one spool."""

    def __init__(self, spool_dir: str | os.PathLike[str]) -> None:
        self.layout = Spool(spool_dir)
        self.spool = self.layout.root
        self.root = self.layout.outbox
        self.dead_root = self.layout.deadletter

    def _dir(self, destination: str, item_id: str, dead: bool = False) -> Path:
        base = self.dead_root if dead else self.root
        return base / check_name(destination, "destination") / check_name(item_id, "outbox item id")

    def put(self, destination: str, item_id: str, datasets: list[Dataset]) -> OutboxItem | None:
        """Create an item holding ``datasets``; None when it already exists (idempotent)."""
        final = self._dir(destination, item_id)
        if final.exists() or self._dir(destination, item_id, dead=True).exists():
            return None
        ensure_dir(self.layout.tmp)  # not mkdir(parents=True): that takes the umask (0777 under 000)
        tmp = Path(tempfile.mkdtemp(dir=self.layout.tmp, prefix=f"{OUTBOX_TMP_PREFIX}{item_id}-"))
        os.chmod(tmp, DIR_MODE)
        try:
            for ds in datasets:
                buffer = io.BytesIO()
                ds.save_as(buffer, enforce_file_format=True)
                write_new(tmp / f"{check_name(str(ds.SOPInstanceUID), 'SOP Instance UID')}.dcm", buffer.getvalue())
            t = time.time()
            item = OutboxItem(destination=destination, item_id=item_id, created=t, next_attempt=t,
                              token=uuid.uuid4().hex, path=final)
            write_new(tmp / ITEM_JSON, json.dumps(item.to_json(), indent=1).encode())
            fsync_dir(tmp)
            ensure_dir(final.parent)
            os.rename(tmp, final)  # fails if a concurrent put won: then theirs stands
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if final.exists():
                return None
            raise
        fsync_dir(final.parent)
        return item

    def get(self, destination: str, item_id: str, dead: bool = False) -> OutboxItem | None:
        path = self._dir(destination, item_id, dead)
        try:
            data = load_json(path / ITEM_JSON)
        except FileNotFoundError:
            return None
        item = OutboxItem.from_json(data, dead=dead, path=path)
        forget(path)  # read: a new break of it is news (outbox_unreadable)
        return item

    def save(self, item: OutboxItem) -> None:
        atomic_write_json(item.path / ITEM_JSON, item.to_json(), self.layout.tmp)

    def items(self, dead: bool = False, destination: str | None = None,
              unreadable: list[tuple[Path, str]] | None = None) -> list[OutboxItem]:
        """The readable items, oldest first. One whose ``item.json`` cannot be read is left out
        (it must not hide the others) and logged as ``outbox_item_unreadable`` once per item and
        error (:func:`~mammocad.spool.outbox_unreadable.report_listing`), or, with ``unreadable``,
        appended there as (folder, error) on every call for the caller to report: ``outbox list``
        tells the admin which one and what to do, where a log line with no handler showed only
        the event's name."""
        base = self.dead_root if dead else self.root
        out: list[OutboxItem] = []
        bad: dict[Path, str] = {}
        for item_json in sorted(base.glob(f"{destination or '*'}/*/{ITEM_JSON}")):
            try:
                item = self.get(item_json.parent.parent.name, item_json.parent.name, dead)
            except (RecordError, ValueError) as exc:
                bad[item_json.parent] = describe(exc)
                continue
            if item is not None:
                out.append(item)
        if unreadable is not None:
            unreadable.extend(bad.items())
        else:
            report_listing(base, destination, bad)
        return sorted(out, key=lambda i: i.created)

    def complete(self, item: OutboxItem) -> None:
        """Every file was confirmed: the item's job is done, delete it.

        A ``studies resend`` copy (``<item>.s<n>``) then takes out the dead letters it
        superseded (:meth:`_retire_superseded`): before, the dead item stayed until an admin
        ran ``outbox drop`` although ``studies show`` said the destination had its objects,
        and retention kept the study for it.

        The copy goes first, then the dead letters are looked for; an item of its lineage
        reaching its deadline is dead-lettered first, then looks for the copy
        (``outbox_delivery.attempt``). So one of the two sees the other: looking for the dead
        letters first, a copy confirmed while its item was being dead-lettered left the item in
        ``deadletter/`` (each looked before the other had moved). A crash between the copy's
        delete and the retirement leaves a dead letter the worker's sweep retires
        (:func:`mammocad.spool.superseded.retire_superseded_dead_letters`).
        """
        carried = {p.stem for p in item.files()} | set(item.delivered)
        self._discard(item.path)
        self._retire_superseded(item, carried)

    def _retire_superseded(self, copy: OutboxItem, carried: set[str]) -> None:
        """Delete each dead letter of ``copy``'s lineage before it (the item ``<base>`` and the
        copies ``<base>.s<m>``, m < n, of the same destination) whose every object it had not
        delivered ``copy`` carried (``carried``: the SOP Instance UIDs the destination confirmed).

        The destination holds all its objects then (same UIDs, same kept files), so nothing is
        lost and nothing more is audited (the copy's transfer was). A dead letter holding an
        object the copy did not carry (another report's SC/GSPS, a kind the destination wanted
        then) stays, for ``outbox retry`` or ``outbox drop`` (:meth:`retire_dead`).
        """
        for item_id in lineage_before(copy.item_id):
            if self._dir(copy.destination, item_id, dead=True).is_dir():
                self.retire_dead(copy.destination, item_id, copy.item_id, carried)

    def retire_dead(self, destination: str, item_id: str, copies: str, carried: set[str],
                    **context: Any) -> bool:
        """Delete the dead letter ``destination/item_id`` when ``carried`` (the objects the
        destination confirmed of ``copies``) holds every object it has pending; True if deleted.

        One line whichever way, naming the real cause: ``deadletter_superseded``;
        ``deadletter_kept`` (WARNING) when it holds an object the copies did not carry (an admin
        must act), another process held its lock for :data:`RETIRE_WAIT_S`, or it is unreadable;
        ``deadletter_gone`` when it left the dead letters before this could look (``outbox
        retry`` put it back, ``outbox drop`` or another retirement removed it). A folder that
        vanished was once reported as held by an admin command, which sent admins looking for one.
        """
        fields: dict[str, Any] = {"dest": destination, "item": item_id, "copy": copies, **context}
        path = self._dir(destination, item_id, dead=True)
        why = ""
        try:
            with self.locked(OutboxItem(destination, item_id, 0.0, 0.0, dead=True, path=path),
                             RETIRE_WAIT_S) as got:
                dead = self.get(destination, item_id, dead=True) if got else None
                if dead is not None:
                    pending = {p.stem for p in dead.pending_files()}
                    missing = pending - carried
                    if not missing:
                        self._discard(dead.path)
                        log_event(logger, "deadletter_superseded", **fields, objects=len(pending))
                        return True
                    why = f"{len(missing)} object(s) it holds were not in the copy"
                elif path.is_dir():  # still there: its lock was held, or its item.json is missing
                    why = (f"unreadable: no {ITEM_JSON}" if got else
                           f"another process held it for {RETIRE_WAIT_S:g} s (`outbox drop` or `outbox retry`, or "
                           "the delivery attempt that dead-lettered it); the worker's next dead-letter sweep looks again")
        except FileNotFoundError:  # moved by a process that took no lock (an older `outbox retry`)
            pass
        except (RecordError, OSError) as exc:
            why = f"unreadable: {str(exc)[:300]}"
        if why:
            log_event(logger, "deadletter_kept", logging.WARNING, **fields, why=why,
                      hint="`mammocad outbox retry` sends what it holds, `mammocad outbox drop` gives it up")
        else:
            back = self._dir(destination, item_id).is_dir()
            log_event(logger, "deadletter_gone", **fields,
                      why="put back in the outbox (`outbox retry`)" if back else
                      "removed meanwhile (`outbox drop`, or completed as superseded)")
        return False

    def _discard(self, path: Path) -> None:
        """Delete an item folder in one step as others see it: renamed into ``tmp/`` first.

        ``shutil.rmtree`` in place removed ``item.json`` before the folder, and for that moment
        whoever looked saw an item folder with no item: retention kept the study for it, and the
        results worker's catch-up read it as an item that holds nothing (so sends it all again).
        """
        ensure_dir(self.layout.tmp)
        gone = self.layout.tmp / f"{OUTBOX_TMP_PREFIX}done-{path.name}-{uuid.uuid4().hex[:8]}"
        os.rename(path, gone)
        fsync_dir(path.parent)
        shutil.rmtree(gone, ignore_errors=True)

    def dead_letter(self, item: OutboxItem) -> OutboxItem:
        target = self._dir(item.destination, item.item_id, dead=True)
        ensure_dir(target.parent)
        if target.exists():  # an older dead copy of the same item: the newer state wins
            self._discard(target)
        os.rename(item.path, target)
        fsync_dir(target.parent)
        fsync_dir(item.path.parent)
        item.path, item.dead = target, True
        return item

    def revive(self, destination: str, item_id: str) -> OutboxItem:
        """Move a dead-letter item back with a fresh deadline; the caller queues delivery."""
        item = self.get(destination, item_id, dead=True)
        if item is None:
            raise KeyError(f"no dead-letter item {destination}/{item_id} (see `mammocad outbox list --dead`)")
        target = self._dir(destination, item_id)
        if target.exists():
            raise FileExistsError(f"{target} already exists in the outbox; it is being delivered")
        ensure_dir(target.parent)
        os.rename(item.path, target)
        fsync_dir(target.parent)
        item.path, item.dead = target, False
        t = time.time()
        item.created, item.next_attempt, item.attempts = t, t, 0
        item.token = uuid.uuid4().hex
        self.save(item)
        return item

    def drop(self, item: OutboxItem, study_uid: str = "") -> None:
        """Give up on ``item`` for good (``mammocad outbox drop``): its files go, the study
        no longer waits for this destination and retention may prune it.

        With ``study_uid`` a marker ``studies/<uid>/dropped/<destination>.<item>`` records
        it, so ``mammocad studies`` shows "dropped" rather than "delivered".
        """
        if study_uid:
            marker = self.layout.study_dir(study_uid) / "dropped" / f"{item.destination}.{item.item_id}"
            atomic_write_json(marker, {"destination": item.destination, "item": item.item_id,
                                       "last_error": item.last_error, "dropped_at": time.time()}, self.layout.tmp)
        self._discard(item.path)

    def find(self, item_id: str, dead: bool = False) -> list[OutboxItem]:
        """Items named ``item_id`` in any destination (an id is usually unique per study)."""
        return [i for i in self.items(dead=dead) if i.item_id == item_id]

    @contextmanager
    def locked(self, item: OutboxItem, wait_s: float = 0.0) -> Iterator[bool]:
        """Hold an exclusive lock on the item, waiting up to ``wait_s``; yields False if not got.

        Two deliver tasks for one item (a sweeper requeue racing a scheduled retry) must
        not send the same files at the same time.
        """
        try:
            fd = os.open(item.path, os.O_RDONLY)
        except FileNotFoundError:
            yield False
            return
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.05)
            yield True
        finally:
            os.close(fd)
