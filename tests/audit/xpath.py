"""Reading one value out of an audit message in a test.

``Element.find`` answers None for a path the message lacks, so ``root.find(p).get(a)`` fails
as an AttributeError on None (and does not type-check). These fail the test naming the path
that is missing instead.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET


def element(root: ET.Element, path: str) -> ET.Element:
    """The first element at ``path`` (ElementTree's path syntax) under ``root``."""
    found = root.find(path)
    assert found is not None, f"the audit message has no {path}"
    return found


def attribute(root: ET.Element, path: str, name: str) -> str:
    """Attribute ``name`` of the first element at ``path``."""
    value = element(root, path).get(name)
    assert value is not None, f"the audit message's {path} has no {name}"
    return value


def text(root: ET.Element, path: str) -> str:
    """The text of the first element at ``path``."""
    value = element(root, path).text
    assert value is not None, f"the audit message's {path} is empty"
    return value
