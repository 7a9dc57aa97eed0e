"""DICOM audit messages (PS3.15 A.5.1 schema) as typed objects that serialise to XML.

Each object checks its values when it is made (enumerated attributes, required fields),
so a message that exists can be written. ``AuditMessage.to_xml()`` gives one line of
UTF-8 XML: control characters in free text become spaces, so a message never spans
lines in the audit file and never breaks an RFC 5424 frame.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mammocad.audit.codes import APPLICATION_SERVER, Code

_ACTIONS = {"C", "R", "U", "D", "E"}
_OUTCOMES = {0, 4, 8, 12}
_ACCESS_POINT_TYPES = {"", "1", "2", "3", "4", "5"}
_OBJECT_TYPES = {"", "1", "2", "3", "4"}
_OBJECT_ROLES = {""} | {str(n) for n in range(1, 27)}
_LIFE_CYCLES = {""} | {str(n) for n in range(1, 16)}


def _clean(text: str) -> str:
    """XML 1.0 forbids most control characters; newlines would split the one-line format."""
    return "".join(" " if ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 else c
                   for c in str(text))


def _code(parent: ET.Element, tag: str, code: Code) -> ET.Element:
    return ET.SubElement(parent, tag, {"csd-code": _clean(code.value), "codeSystemName": _clean(code.scheme),
                                       "originalText": _clean(code.meaning)})


def _require(value: str, what: str) -> None:
    if not str(value).strip():
        raise ValueError(f"{what} must not be empty")


def _one_of(value: str | int, allowed: set[str] | set[int], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {sorted(allowed, key=str)}, got {value!r}")


@dataclass(frozen=True)
class ActiveParticipant:
    """A user or process taking part (``UserIsRequestor``: it started the event)."""

    user_id: str
    requestor: bool
    roles: tuple[Code, ...] = ()
    alternative_user_id: str = ""
    user_name: str = ""
    access_point: str = ""
    #: "1" machine name, "2" IP address, "5" URI (PS3.15 A.5.1 NetworkAccessPointTypeCode).
    access_point_type: str = ""

    def __post_init__(self) -> None:
        _require(self.user_id, "ActiveParticipant.UserID")
        _one_of(self.access_point_type, _ACCESS_POINT_TYPES, "NetworkAccessPointTypeCode")
        if self.access_point_type and not self.access_point:
            raise ValueError("NetworkAccessPointTypeCode given without NetworkAccessPointID")

    def element(self) -> ET.Element:
        attrs = {"UserID": self.user_id, "UserIsRequestor": "true" if self.requestor else "false"}
        for name, value in (("AlternativeUserID", self.alternative_user_id), ("UserName", self.user_name),
                            ("NetworkAccessPointID", self.access_point),
                            ("NetworkAccessPointTypeCode", self.access_point_type)):
            if value:
                attrs[name] = value
        el = ET.Element("ActiveParticipant", {k: _clean(v) for k, v in attrs.items()})
        for role in self.roles:
            _code(el, "RoleIDCode", role)
        return el


@dataclass(frozen=True)
class SOPClassCount:
    """How many instances of one SOP class a study object holds."""

    uid: str
    count: int

    def __post_init__(self) -> None:
        _require(self.uid, "SOPClass UID")
        if self.count < 0:
            raise ValueError(f"NumberOfInstances must be >= 0, got {self.count}")


@dataclass(frozen=True)
class ParticipantObject:
    """A thing the event was about: a study, a patient, a configuration file."""

    object_id: str
    id_type: Code
    type_code: str = ""
    role: str = ""
    name: str = ""
    life_cycle: str = ""
    #: ``ParticipantObjectDetail`` pairs; values are written base64 as the schema requires.
    details: tuple[tuple[str, bytes], ...] = ()
    sop_classes: tuple[SOPClassCount, ...] = ()
    accessions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _require(self.object_id, "ParticipantObjectID")
        _one_of(self.type_code, _OBJECT_TYPES, "ParticipantObjectTypeCode")
        _one_of(self.role, _OBJECT_ROLES, "ParticipantObjectTypeCodeRole")
        _one_of(self.life_cycle, _LIFE_CYCLES, "ParticipantObjectDataLifeCycle")
        for key, _ in self.details:
            _require(key, "ParticipantObjectDetail type")

    def element(self) -> ET.Element:
        attrs = {"ParticipantObjectID": self.object_id}
        for name, value in (("ParticipantObjectTypeCode", self.type_code),
                            ("ParticipantObjectTypeCodeRole", self.role),
                            ("ParticipantObjectDataLifeCycle", self.life_cycle)):
            if value:
                attrs[name] = value
        el = ET.Element("ParticipantObjectIdentification", {k: _clean(v) for k, v in attrs.items()})
        _code(el, "ParticipantObjectIDTypeCode", self.id_type)
        if self.name:
            ET.SubElement(el, "ParticipantObjectName").text = _clean(self.name)
        for key, raw in self.details:
            ET.SubElement(el, "ParticipantObjectDetail",
                          {"type": _clean(key), "value": base64.b64encode(raw).decode("ascii")})
        if self.sop_classes or self.accessions:
            desc = ET.SubElement(el, "ParticipantObjectDescription")
            for number in self.accessions:  # schema order: MPPS*, Accession*, SOPClass*
                ET.SubElement(desc, "Accession", {"Number": _clean(number)})
            for sop in self.sop_classes:
                ET.SubElement(desc, "SOPClass", {"UID": _clean(sop.uid), "NumberOfInstances": str(sop.count)})
        return el


@dataclass(frozen=True)
class AuditMessage:
    """One ``AuditMessage``: what happened, who took part, who reports it, what it touched."""

    event_id: Code
    action: str
    outcome: int
    participants: tuple[ActiveParticipant, ...]
    source_id: str
    event_types: tuple[Code, ...] = ()
    outcome_description: str = ""
    objects: tuple[ParticipantObject, ...] = ()
    site_id: str = ""
    when: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        _one_of(self.action, _ACTIONS, "EventActionCode")
        _one_of(self.outcome, _OUTCOMES, "EventOutcomeIndicator")
        if not self.participants:
            raise ValueError("an audit message needs at least one ActiveParticipant")
        _require(self.source_id, "AuditSourceID")
        if self.when.tzinfo is None:
            raise ValueError("EventDateTime must be timezone-aware (UTC)")

    def to_element(self) -> ET.Element:
        root = ET.Element("AuditMessage")
        when = self.when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event = ET.SubElement(root, "EventIdentification", {
            "EventActionCode": self.action, "EventDateTime": when, "EventOutcomeIndicator": str(self.outcome)})
        _code(event, "EventID", self.event_id)
        for event_type in self.event_types:
            _code(event, "EventTypeCode", event_type)
        if self.outcome_description:
            ET.SubElement(event, "EventOutcomeDescription").text = _clean(self.outcome_description)
        root.extend(p.element() for p in self.participants)
        source_attrs = {"AuditSourceID": _clean(self.source_id)}
        if self.site_id:
            source_attrs["AuditEnterpriseSiteID"] = _clean(self.site_id)
        source = ET.SubElement(root, "AuditSourceIdentification", source_attrs)
        _code(source, "AuditSourceTypeCode", APPLICATION_SERVER)
        root.extend(o.element() for o in self.objects)
        return root

    def to_xml(self) -> bytes:
        """UTF-8 XML on one line, without an XML declaration (RFC 5424 MSG, or a line of the file)."""
        return ET.tostring(self.to_element(), encoding="utf-8", xml_declaration=False)
