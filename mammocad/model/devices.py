"""Choosing where the detector runs: "auto" means the first CUDA GPU when there is one."""

from __future__ import annotations

import os

import torch


class DeviceError(ValueError):
    """The requested device does not exist here; the message names what is available."""


def resolve_device(device: str = "auto") -> str:
    """"auto" → "cuda" when available, else "cpu"; "cuda[:n]" is checked to exist."""
    name = (device or "auto").strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} asked for, but CUDA is not available here: use --device cpu or auto")
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        return name
    raise DeviceError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")


def configure_cpu_threads() -> int:
    """Respect OMP_NUM_THREADS when set; otherwise torch's default (physical cores) stands.

    Returned for logging. One worker process per machine is the deployment unit, so letting
    it use every core is sensible; several processes must set OMP_NUM_THREADS themselves.
    """
    env = os.environ.get("OMP_NUM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        torch.set_num_threads(int(env))
    return torch.get_num_threads()


def default_batch_size(device: str) -> int:
    """Tiles per forward pass: small on CPU (memory, no gain), larger on a GPU."""
    return 8 if device.startswith("cuda") else 2
