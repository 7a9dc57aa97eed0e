"""One detector per worker process, loaded on first use.

Loading is lazy on purpose: Celery's prefork pool forks its children from the main
process, and a CUDA context (or a large model) created before the fork is either broken
or copied into every child. Each child loads the weights once, at its first task.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from mammocad.logs import log_event

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_cache: dict[tuple[str, str], Any] = {}
_info_cache: dict[str, Any] = {}


def get_detector(weights: str, device: str) -> Any:
    """The :class:`mammocad.model.inference.Detector` for ``weights`` on ``device`` (cached).

    ``weights`` empty means the demo weights shipped with the package.
    """
    key = (weights, device)
    with _lock:
        det = _cache.get(key)
        if det is None:
            from mammocad.model.inference import Detector  # torch is heavy: import on first use

            t0 = time.monotonic()
            det = Detector.load(weights=weights or None, device=device)
            _cache[key] = det
            log_event(logger, "model_loaded", model=det.model_name, version=det.model_version,
                      device=det.device, synthetic=det.synthetic_weights,
                      seconds=round(time.monotonic() - t0, 2))
        return det


def get_info(weights: str) -> Any:
    """The checkpoint's :class:`mammocad.model.info.DetectorInfo` (cached; no model is built).

    Safe to call before the prefork pool forks: it reads the header only (no CUDA).
    """
    with _lock:
        info = _info_cache.get(weights)
        if info is None:
            from mammocad.model.info import DetectorInfo

            info = _info_cache[weights] = DetectorInfo.read(weights or None)
        return info


#: One image at a time per loaded model: calls are safe to overlap (the detector keeps no
#: state between forward passes), but two at once would double the accelerator's memory
#: for no gain in throughput. The prefork pool has one model per process anyway; this
#: only matters for thread pools (tests, `--pool threads`).
analysis_lock = threading.Lock()


def clear() -> None:
    """Forget loaded detectors (tests; a weights change needs a worker restart otherwise)."""
    with _lock:
        _cache.clear()
        _info_cache.clear()
