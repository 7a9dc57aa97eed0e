"""Pieces every settings section shares (kept apart so sections can live in their own modules)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A ``[section]`` of the config: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def check_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"port must be 1-65535, got {value}")
    return value
