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


def validate_ae_title(value: str) -> str:
    """Check an AE title against PS3.5 (AE VR): 1-16 characters of the Default Character
    Repertoire (ASCII), no backslash, no control characters; leading and trailing spaces are
    not significant (PS3.5 Table 6.2-1), so they are removed.

    A non-ASCII title passed here and failed later, in pynetdicom: the node at start, and a
    destination at every delivery attempt (ValueError), a caller never matched.
    """
    if not isinstance(value, str):
        raise ValueError(f"AE title must be a string, got {value!r}")
    stripped = value.strip()
    if not 1 <= len(stripped) <= 16:
        raise ValueError(f"AE title must be 1-16 characters, got {value!r} ({len(stripped)} characters)")
    if "\\" in stripped:
        raise ValueError(f"AE title must not contain a backslash, got {value!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in stripped):
        raise ValueError(f"AE title must not contain control characters, got {value!r}")
    if not stripped.isascii():
        raise ValueError(f"AE title must be ASCII (letters A-Z, digits, spaces, _ - .), got {value!r}")
    return stripped
