"""Coded values of DICOM audit messages (PS3.15 A.5, PS3.16 CID 400-404).

A code is written as ``csd-code``, ``codeSystemName`` and ``originalText`` (the code
meaning), the attribute names of the DICOM audit schema's ``CodedValueType``. Meanings are
spelled as the standard spells them, so a collector that matches on text finds them.
"""

from __future__ import annotations

from mammocad.dicom.codes import Code


def _dcm(value: str, meaning: str) -> Code:
    return Code(value, "DCM", meaning)


# CID 400 Audit Event ID
APPLICATION_ACTIVITY = _dcm("110100", "Application Activity")
BEGIN_TRANSFERRING = _dcm("110102", "Begin Transferring DICOM Instances")
INSTANCES_ACCESSED = _dcm("110103", "DICOM Instances Accessed")
INSTANCES_TRANSFERRED = _dcm("110104", "DICOM Instances Transferred")
STUDY_DELETED = _dcm("110105", "DICOM Study Deleted")
SECURITY_ALERT = _dcm("110113", "Security Alert")
USER_AUTHENTICATION = _dcm("110114", "User Authentication")

# CID 401 Audit Event Type Code
APPLICATION_START = _dcm("110120", "Application Start")
APPLICATION_STOP = _dcm("110121", "Application Stop")
LOGIN = _dcm("110122", "Login")
NODE_AUTHENTICATION = _dcm("110126", "Node Authentication")
NETWORK_CONFIGURATION = _dcm("110128", "Network Configuration")
SECURITY_CONFIGURATION = _dcm("110129", "Security Configuration")
SOFTWARE_CONFIGURATION = _dcm("110131", "Software Configuration")

# CID 402 Audit Active Participant Role ID Code
APPLICATION = _dcm("110150", "Application")
APPLICATION_LAUNCHER = _dcm("110151", "Application Launcher")
DESTINATION = _dcm("110152", "Destination Role ID")
SOURCE = _dcm("110153", "Source Role ID")

# CID 404 Audit Participant Object ID Type Code
STUDY_INSTANCE_UID = _dcm("110180", "Study Instance UID")
NODE_ID = _dcm("110182", "Node ID")

# PS3.15 A.5.1.2.4 Participant Object ID Type Code values (from RFC 3881)
PATIENT_NUMBER = Code("2", "RFC-3881", "Patient Number")
URI = Code("12", "RFC-3881", "URI")

# PS3.15 A.5.1.2.1 Audit Source Type Code: an application server process
APPLICATION_SERVER = Code("4", "DCM", "Application Server process tier in a multi-tier system")

# Attribute values of the schema (not coded terminology)
ACTION_CREATE, ACTION_READ, ACTION_UPDATE, ACTION_DELETE, ACTION_EXECUTE = "C", "R", "U", "D", "E"
OUTCOME_SUCCESS, OUTCOME_MINOR, OUTCOME_SERIOUS, OUTCOME_MAJOR = 0, 4, 8, 12
ACCESS_POINT_NAME, ACCESS_POINT_IP, ACCESS_POINT_URI = "1", "2", "5"
OBJECT_PERSON, OBJECT_SYSTEM = "1", "2"
ROLE_PATIENT, ROLE_REPORT, ROLE_MASTER_FILE, ROLE_SECURITY_RESOURCE = "1", "3", "5", "13"
