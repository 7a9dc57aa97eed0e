"""PS3.5 9.1's rule for a UID, one place for the node (which refuses an image it could not
cite) and the results (which never write an invalid one)."""

from __future__ import annotations

import re

#: PS3.5 9.1: at most 64 characters.
UID_MAX_LENGTH = 64
_UID_CHARS = re.compile(r"^[0-9.]+$")


def uid_problem(uid: str) -> str | None:
    """Why ``uid`` breaks PS3.5 9.1 (in words, without the value), or None when it is valid.

    pydicom's check lets a component with a leading zero through ("1.2.03"), which dciodvfy
    rejects, and its message quotes the value, which may not be logged.
    """
    text = uid.rstrip("\x00")
    if len(text) > UID_MAX_LENGTH:
        return f"longer than {UID_MAX_LENGTH} characters"
    if not _UID_CHARS.match(text):
        return "a character other than the digits 0-9 and '.'"
    components = text.split(".")
    if "" in components:
        return "an empty component (a leading, trailing or double '.')"
    if any(c.startswith("0") and c != "0" for c in components):
        return "a component with a leading zero"
    return None
