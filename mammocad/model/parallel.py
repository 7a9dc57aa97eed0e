"""Worker processes for the slow, independent steps before training: drawing synthetic studies
and decoding images.

A GPU trains faster than one process can draw or decode: on the H200 lease (MODEL_CARD.md,
"GPU") one process drew a 0.1 mm study in 9-22 s while a training step took 0.08 s. Each item is
independent and deterministic (a study is a function of its seed and index, a sample of its
file), so the result is the same whatever the number of processes, in the same order.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def check_workers(workers: int) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    return workers


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map(fn, items)`` in ``workers`` processes, results in input order, as they come.

    One process maps in this one (no pool, no pickling). The pool's processes are started
    fresh (spawn), not forked: a fork of a process that holds torch's thread pools can hang.
    ``fn`` must be a module-level function and its items picklable. A bad ``workers`` fails
    here, at the call, not at the first result.
    """
    return map(fn, items) if check_workers(workers) == 1 else _pooled(fn, items, workers)


def _pooled(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(fn, items)
