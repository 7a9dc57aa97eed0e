"""Checks of an audit message against the DICOM audit message schema (PS3.15 A.5.1).

Written from the schema's RELAX NG text: which elements may appear where and in what
order, which attributes are required, and the enumerated values. The schema makes the
choice ``ParticipantObjectName | ParticipantObjectQuery`` optional per the event tables
of A.5.3 (marked U), and this checker does the same. ``problems(xml)`` returns a list of
messages naming the element and what is wrong; empty means valid.
"""

from __future__ import annotations

import base64
import binascii
import re
import xml.etree.ElementTree as ET

_DATETIME = re.compile(r"^-?\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")
_BOOL = {"true", "false", "1", "0"}
_CODED = {"required": {"csd-code", "codeSystemName", "originalText"}, "optional": {"displayName"}}
_ENUMS = {
    "EventActionCode": {"C", "R", "U", "D", "E"},
    "EventOutcomeIndicator": {"0", "4", "8", "12"},
    "NetworkAccessPointTypeCode": {"1", "2", "3", "4", "5"},
    "ParticipantObjectTypeCode": {"1", "2", "3", "4"},
    "ParticipantObjectTypeCodeRole": {str(n) for n in range(1, 27)},
    "ParticipantObjectDataLifeCycle": {str(n) for n in range(1, 16)},
}


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def attrs(self, el: ET.Element, where: str, required: set[str], optional: set[str]) -> None:
        for name in required - set(el.attrib):
            self.fail(where, f"missing attribute {name}")
        for name in set(el.attrib) - required - optional:
            self.fail(where, f"unexpected attribute {name}")
        for name, value in el.attrib.items():
            if name in _ENUMS and value not in _ENUMS[name]:
                self.fail(where, f"{name}={value!r} not one of {sorted(_ENUMS[name], key=int)}")
            if not value.strip() and name in required:
                self.fail(where, f"{name} is empty")

    def coded(self, el: ET.Element, where: str) -> None:
        self.attrs(el, where, _CODED["required"], _CODED["optional"])
        if len(el) or (el.text or "").strip():
            self.fail(where, "a coded value has no content")

    def sequence(self, el: ET.Element, where: str, pattern: list[tuple[str, str]]) -> list[ET.Element]:
        """Children must follow ``pattern``: (tag, "1"|"?"|"*"|"+") in order; returns them."""
        children = list(el)
        i = 0
        for tag, occurs in pattern:
            tags = tag.split("|")
            n = 0
            while i < len(children) and children[i].tag in tags and (occurs in "*+" or n == 0):
                i += 1
                n += 1
            if occurs in "1+" and n == 0:
                self.fail(where, f"missing {tag}")
        for extra in children[i:]:
            self.fail(where, f"unexpected or misplaced element {extra.tag}")
        return children

    def message(self, root: ET.Element) -> None:
        if root.tag != "AuditMessage":
            self.fail("/", f"root must be AuditMessage, got {root.tag}")
            return
        self.attrs(root, "AuditMessage", set(), set())
        children = self.sequence(root, "AuditMessage", [("EventIdentification", "1"), ("ActiveParticipant", "+"),
                                                        ("AuditSourceIdentification", "1"),
                                                        ("ParticipantObjectIdentification", "*")])
        for n, child in enumerate(children):
            where = f"AuditMessage/{child.tag}[{n}]"
            {"EventIdentification": self.event, "ActiveParticipant": self.participant,
             "AuditSourceIdentification": self.source,
             "ParticipantObjectIdentification": self.participant_object}.get(child.tag, lambda e, w: None)(child, where)

    def event(self, el: ET.Element, where: str) -> None:
        self.attrs(el, where, {"EventDateTime", "EventOutcomeIndicator"}, {"EventActionCode"})
        if not _DATETIME.match(el.get("EventDateTime", "")):
            self.fail(where, f"EventDateTime {el.get('EventDateTime')!r} is not an xsd:dateTime")
        for child in self.sequence(el, where, [("EventID", "1"), ("EventTypeCode", "*"),
                                               ("EventOutcomeDescription", "?")]):
            if child.tag != "EventOutcomeDescription":
                self.coded(child, f"{where}/{child.tag}")

    def participant(self, el: ET.Element, where: str) -> None:
        self.attrs(el, where, {"UserID", "UserIsRequestor"},
                   {"AlternativeUserID", "UserName", "NetworkAccessPointID", "NetworkAccessPointTypeCode"})
        if el.get("UserIsRequestor") not in _BOOL:
            self.fail(where, f"UserIsRequestor {el.get('UserIsRequestor')!r} is not an xsd:boolean")
        for child in self.sequence(el, where, [("RoleIDCode", "*"), ("MediaIdentifier", "?")]):
            if child.tag == "RoleIDCode":
                self.coded(child, f"{where}/RoleIDCode")

    def source(self, el: ET.Element, where: str) -> None:
        self.attrs(el, where, {"AuditSourceID"}, {"AuditEnterpriseSiteID"})
        for child in self.sequence(el, where, [("AuditSourceTypeCode", "*")]):
            code = child.get("csd-code", "")
            if code not in {str(n) for n in range(1, 10)} and "codeSystemName" not in child.attrib:
                self.fail(f"{where}/AuditSourceTypeCode", f"code {code!r} outside 1-9 needs a codeSystemName")

    def participant_object(self, el: ET.Element, where: str) -> None:
        self.attrs(el, where, {"ParticipantObjectID"},
                   {"ParticipantObjectTypeCode", "ParticipantObjectTypeCodeRole", "ParticipantObjectDataLifeCycle",
                    "ParticipantObjectSensitivity"})
        children = self.sequence(el, where, [("ParticipantObjectIDTypeCode", "1"),
                                             ("ParticipantObjectName|ParticipantObjectQuery", "?"),
                                             ("ParticipantObjectDetail", "*"), ("ParticipantObjectDescription", "*")])
        for child in children:
            sub = f"{where}/{child.tag}"
            if child.tag == "ParticipantObjectIDTypeCode":
                self.coded(child, sub)
            elif child.tag == "ParticipantObjectDetail":
                self.attrs(child, sub, {"type", "value"}, set())
                try:
                    base64.b64decode(child.get("value", ""), validate=True)
                except (binascii.Error, ValueError):
                    self.fail(sub, "value is not xsd:base64Binary")
            elif child.tag == "ParticipantObjectDescription":
                self.description(child, sub)

    def description(self, el: ET.Element, where: str) -> None:
        children = self.sequence(el, where, [("MPPS", "*"), ("Accession", "*"), ("SOPClass", "*"),
                                             ("ParticipantObjectContainsStudy", "?"), ("Encrypted", "?"),
                                             ("Anonymized", "?")])
        for child in children:
            sub = f"{where}/{child.tag}"
            if child.tag == "SOPClass":
                self.attrs(child, sub, {"NumberOfInstances"}, {"UID"})
                if not child.get("NumberOfInstances", "").lstrip("-").isdigit():
                    self.fail(sub, "NumberOfInstances is not an xsd:integer")
                self.sequence(child, sub, [("Instance", "*")])
            elif child.tag in ("MPPS",):
                self.attrs(child, sub, {"UID"}, set())
            elif child.tag == "Accession":
                self.attrs(child, sub, {"Number"}, set())


def problems(xml: bytes | str) -> list[str]:
    """Every way ``xml`` departs from the DICOM audit message schema; [] when it conforms."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        return [f"not well-formed XML: {exc}"]
    checker = _Checker()
    checker.message(root)
    return checker.problems
