"""What a valid value of each VR is, and the repairs that keep a value's meaning.

pydicom's own check (``validate_value``) is looser than dciodvfy and DCMTK in ways that
lose whole result objects: it lets control characters, a UID component with a leading zero,
a date that is not in the calendar and a time range through, and counts lengths in
characters where dciodvfy counts UTF-8 bytes. ``problem`` is the one check of a value
against its VR for everything mammocad writes (``sanitize.py`` when copying from an image,
``validate.py`` on each built object); ``normalise_time``, ``ds_text`` and ``fit`` are the
repairs ``sanitize.py`` applies.
"""

from __future__ import annotations

import datetime
import math
import re

from pydicom import config
from pydicom.multival import MultiValue
from pydicom.valuerep import IS, DSdecimal, DSfloat, validate_value

from mammocad.dicom.uids import uid_problem

#: Half a unit in the 15th significant digit, relative to a value whose first digit is 1.
_DS_REL_TOL = 5.1e-15
#: A DS as PS3.5 6.2 writes it (a fixed or floating point number), before its 16-character limit.
_DS_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
#: Maximum lengths, counted in bytes of UTF-8: PS3.5 gives them in characters, but dciodvfy
#: counts bytes, and a value re-encoded from Latin-1 or ISO 2022 as UTF-8 grows (a 64-character
#: Latin-1 description with umlauts is more than 64 bytes); within the bytes it is within both.
MAX_LEN = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "LO": 64, "PN": 64, "SH": 16, "ST": 1024, "LT": 10240, "UI": 64}
#: Control characters no VR allows (PS3.5 6.1.3, 6.2): pydicom's validation lets them through,
#: dciodvfy rejects them (a tab in a Patient ID). Text VRs (ST, LT, UT) allow TAB, LF, FF, CR;
#: ESC only introduces an ISO 2022 escape, which no decoded value holds any more.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_TEXT_VRS = frozenset({"ST", "LT", "UT"})
#: A time as PS3.5 6.2 TM reads it: HH[MM[SS[.F...]]], or the retired ACR-NEMA HH:MM[:SS[.F...]].
_TIME = re.compile(r"^(?P<h>\d{2})(?::?(?P<m>\d{2})(?::?(?P<s>\d{2})(?:\.(?P<f>\d*))?)?)?$")


def problem(vr: str, value: object) -> str | None:
    """Why ``value`` is not valid for ``vr`` (pydicom's per-call validation), or None."""
    values = list(value) if isinstance(value, list | tuple | MultiValue) else [value]
    for v in values:
        if isinstance(v, DSfloat | DSdecimal | IS):
            v = str(v)  # as written: a DS read as "1.6500000000000001" keeps that text (18 chars)
        if not isinstance(v, str) or v == "":
            continue  # plain numbers (US, FD...) and None
        if vr == "UI":
            if why := uid_problem(v):
                return why
            continue
        if vr in MAX_LEN and len(v.encode("utf-8")) > MAX_LEN[vr]:
            return f"longer than {MAX_LEN[vr]} bytes in UTF-8"
        if (_TEXT_CONTROL if vr in _TEXT_VRS else CONTROL).search(v):
            return "control character"
        try:
            validate_value(vr, v, config.RAISE)
        except (ValueError, TypeError) as exc:
            return str(exc).split("\n")[0][:120] or "invalid"
        if vr in ("DA", "DT") and not _calendar_date(v):
            return "not a calendar date"
        if vr == "TM" and normalise_time(v) != v.rstrip():
            return "not a time in HHMMSS.FFFFFF form (leap second, range or colons)"
    return None


def normalise_time(value: str) -> str | None:
    """A TM value in the form every validator accepts, or None when it cannot be read as a time.

    PS3.5 6.2 TM: HHMMSS.FFFFFF, trailing components may be omitted, at most six fraction
    digits. Read tolerantly: the retired ACR-NEMA form "HH:MM:SS.frac" (PS3.5 recommends
    accepting it), spaces around the value, extra fraction digits (cut, not rounded: rounding
    could carry into the next day) and a "." with no digits. Seconds "60" (a leap second,
    allowed by PS3.5 but rejected by dciodvfy and DCMTK) keep the minute only. Hours past 23,
    minutes past 59 and query ranges ("1015-1030", which pydicom's check lets through) are
    not times.
    """
    match = _TIME.match(value.strip())
    if match is None or (":" in value and not _consistent_colons(value.strip())):
        return None
    hour, minute, second, fraction = match.group("h", "m", "s", "f")
    if int(hour) > 23 or (minute and int(minute) > 59) or (second and int(second) > 60):
        return None
    if second == "60":
        return f"{hour}{minute}"
    out = hour + (minute or "") + (second or "")
    return f"{out}.{fraction[:6]}" if fraction else out


def _consistent_colons(value: str) -> bool:
    """"10:15:00" and "10:15" are the ACR-NEMA form; "10:1500" or "1015:00" are not."""
    head = value.split(".")[0]
    return all(len(part) == 2 for part in head.split(":"))


def _calendar_date(value: str) -> bool:
    """False for a DA/DT whose day does not exist ("20230230", "20230100").

    pydicom checks dates by pattern only, so those pass it; highdicom turns the copied
    patient and study dates into ``datetime.date`` and raises, losing the whole object.
    A DT of year or month precision has no day to check.
    """
    head = value.strip()[:8]
    if len(head) < 8 or not head.isdigit():
        return True
    try:
        datetime.date(int(head[:4]), int(head[4:6]), int(head[6:8]))
    except ValueError:
        return False
    return True


def fit(text: str, limit: int) -> str:
    """The longest start of ``text`` that is at most ``limit`` bytes in UTF-8 (whole characters)."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore").rstrip()


def ds_text(value: object) -> str | None:
    """The same number as a valid DS (at most 16 characters), or None when it has no such form.

    "The same number": the same double where that fits ("70.000000000000000" is "70.0"), else
    the same to 15 significant digits, all that a double (DBL_DIG), and so any reader that
    decodes a DS as one, holds reliably: "1.6500000000000001", a float printed with 17
    digits, is "1.65". A number that needs more characters than 16 at that precision
    ("0.000123456789012345") is not rounded further, and text that is no DS ("1,5",
    "inf") is not guessed at: None.
    """
    text = str(value).strip()
    if not isinstance(value, float) and not _DS_TEXT.match(text):
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    for form in (repr(number), f"{number:.15g}", f"{number:.14e}"):
        mantissa, _, exponent = form.partition("e")
        if exponent and "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        short = f"{mantissa}e{int(exponent)}" if exponent else mantissa
        if len(short) <= 16 and math.isclose(float(short), number, rel_tol=_DS_REL_TOL):
            return short
    return None
