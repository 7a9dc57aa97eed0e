"""UIDs, identity and versioning shared by every mammocad output.

UID root: mammocad owns ``2.25.<the integer of one UUID>`` (ISO/IEC 9834-8, PS3.5 B.2), a
root that needs no registration; every UID mammocad creates is that root plus one
component of at most 19 digits taken from a SHA-256 of what the UID names. 64-bit-class
hashes make an accidental collision negligible (about 1 in 10^7 after 10^6 objects).

* Series and study linkage are deterministic: a series UID derives from the study, the
  sorted analysed SOP Instance UIDs, the model version, the output kind and (for secondary
  captures) the breast, so every object of one run joins the same series.
* A SOP Instance UID derives from the object's *content* (``content_uid`` in
  ``outputs.py``: a digest of the encoded data set without its own UIDs), so PS3.5 §9's
  rule holds by construction: different content (a new ContentTime included) always gets
  a new UID, and an identical object keeps its UID.
* Amended reports (a study that gained images) are new series whose numbers do not collide
  with the earlier version's: ``series_number`` adds ten per version.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from pydicom.dataset import Dataset
from pydicom.uid import UID

import mammocad
from mammocad.model.results import StudyResult

#: mammocad's UID root: 2.25 + the integer of UUID 0f37c24c-5170-4ea7-950a-fc8d5f11b0f2.
UID_ROOT = "2.25.20227937098000670044535573200032084210"
#: Implementation Class UID written in the file meta of every output.
IMPLEMENTATION_CLASS_UID = UID(f"{UID_ROOT}.1")
IMPLEMENTATION_VERSION = f"MAMMOCAD_{mammocad.__version__}"[:16]

MANUFACTURER = "mammocad project"
MODEL_NAME = "mammocad CAD node"
DISCLAIMER = "NOT FOR DIAGNOSTIC USE"

#: Series number offset per output series (9900 + 10 × (version − 1) + offset).
SERIES_OFFSETS = {"mammo-cad-sr": 1, "tid1500-sr": 2, "sc-R": 3, "sc-L": 4, "sc": 5, "gsps-R": 6, "gsps-L": 7, "gsps": 8}
SERIES_BASE = 9900


def product_uid(*parts: object) -> UID:
    """A UID under :data:`UID_ROOT` named by ``parts`` (same parts → same UID)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    suffix = int.from_bytes(digest[:8], "big") % 10**19
    return UID(f"{UID_ROOT}.{suffix or 1}")


def result_uid(study: StudyResult, kind: str, role: str, index: object = 0) -> UID:
    """Deterministic UID for one part of a result (``role`` e.g. "series", "tracking").

    Same study, same image set, same model version, same kind, same revision (an admin's
    re-analysis is a new version with new UIDs) → same UID.
    """
    sops = sorted(r.image.sop_instance_uid for r in study.images)
    revision = [f"revision:{study.revision}"] if study.revision else []
    return product_uid(study.study_uid, *sops, *revision, study.model_version, kind, role, index)


@cache
def device_serial() -> str:
    """This host's identity as DeviceSerialNumber: the machine id (systemd), else the host name.

    Stable across restarts, distinct between hosts, and free of patient data.
    """
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(path, encoding="ascii") as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text:
            return f"host-{text[:16]}"
    name = socket.gethostname() or os.environ.get("HOSTNAME", "") or "unknown-host"
    return name.encode("ascii", "replace").decode()[:64]


def local_now() -> _dt.datetime:
    """Now, in the host's local time zone (DICOM dates and times are local)."""
    return _dt.datetime.now().astimezone()


def tz_offset(ts: _dt.datetime) -> str:
    """TimezoneOffsetFromUTC ("+HHMM"/"-HHMM") of an aware datetime."""
    offset = ts.utcoffset() or _dt.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


@dataclass(frozen=True)
class OutputContext:
    """What every builder needs besides the results: who made it, when, on what."""

    study: StudyResult
    device: str = ""
    #: (study UID, series UID, SOP instance UID) of earlier versions this output replaces.
    predecessor: tuple[tuple[str, str, str], ...] = ()
    when: _dt.datetime | None = None
    #: Secondary captures as JPEG baseline of this quality (1-100); 0 stores them uncompressed.
    sc_jpeg_quality: int = 90
    #: Secondary captures without loss (RLE); wins over sc_jpeg_quality.
    sc_lossless: bool = False
    #: 1 for a study's first report, 2 for the first amendment, ...
    version: int = 1
    #: Study-level analyses that failed (e.g. "breast risk"): reported as Failed Analyses.
    failed_analyses: tuple[str, ...] = ()

    @property
    def timestamp(self) -> _dt.datetime:
        ts = self.when or local_now()
        return ts if ts.tzinfo else ts.astimezone()

    @property
    def model_label(self) -> str:
        s = self.study
        label = f"{s.model_name} {s.model_version}".strip()
        return label or "unknown model"

    def description(self, what: str) -> str:
        """Human text naming the output, the model and the disclaimer (fits LO / 64 chars)."""
        text = f"{what} {self.model_label} {DISCLAIMER}"
        return text if len(text) <= 64 else f"{what} {DISCLAIMER}"[:64]

    def comment(self) -> str:
        """Longer free text (LT) for ImageComments / ContentDescription-like fields."""
        parts = [f"mammocad {mammocad.__version__}", f"model {self.model_label}"]
        if self.device:
            parts.append(f"device {self.device}")
        if self.study.synthetic_weights:
            parts.append("demo weights trained on synthetic data only")
        parts.append(mammocad.NOT_FOR_DIAGNOSIS)
        return "; ".join(parts)


def series_number(kind: str, version: int) -> int:
    """Series Number of one output series; amended versions never reuse a number."""
    return SERIES_BASE + 10 * (max(1, version) - 1) + SERIES_OFFSETS.get(kind, 9)


def set_common(target: Dataset, ctx: OutputContext, kind: str, *, modality: str, what: str,
               index: int = 0, series_key: str = "") -> None:
    """Series, equipment, SOP common and content date/time of one output object.

    The SOP Instance UID set here is provisional: ``outputs.py`` replaces it by the
    content-derived one once the object is complete.
    """
    series_kind = f"{kind}-{series_key}" if series_key else kind
    target.SeriesInstanceUID = result_uid(ctx.study, series_kind, "series")
    target.SOPInstanceUID = result_uid(ctx.study, kind, "sop", index)
    target.SeriesNumber = series_number(series_kind, ctx.version)
    target.InstanceNumber = index + 1
    target.Modality = modality
    target.SeriesDescription = ctx.description(what)
    set_equipment(target, ctx)
    set_times(target, ctx)


def set_equipment(target: Dataset, ctx: OutputContext) -> None:
    """General Equipment: the product, its versions and this host."""
    target.Manufacturer = MANUFACTURER
    target.ManufacturerModelName = MODEL_NAME
    target.SoftwareVersions = software_versions(ctx)
    target.DeviceSerialNumber = device_serial()


def software_versions(ctx: OutputContext) -> list[str]:
    """mammocad's version, then the model's name and version (LO, VM 1-n)."""
    model = f"{ctx.study.model_name or 'model'} {ctx.study.model_version or 'unknown'}"
    return [f"mammocad {mammocad.__version__}"[:64], model[:64]]


def set_times(target: Dataset, ctx: OutputContext) -> None:
    """Content, instance creation and series date/time in local time, with the UTC offset."""
    ts = ctx.timestamp
    target.ContentDate = ts.strftime("%Y%m%d")
    target.ContentTime = ts.strftime("%H%M%S")
    target.InstanceCreationDate = target.ContentDate
    target.InstanceCreationTime = target.ContentTime
    target.SeriesDate = target.ContentDate
    target.SeriesTime = target.ContentTime
    target.TimezoneOffsetFromUTC = tz_offset(ts)
    if "PresentationCreationDate" in target:  # GSPS
        target.PresentationCreationDate = target.ContentDate
        target.PresentationCreationTime = target.ContentTime
    # highdicom names itself as contributing equipment, stamped with the wall clock.
    for item in target.get("ContributingEquipmentSequence", []) or []:
        if "ContributionDateTime" in item:
            item.ContributionDateTime = ts.strftime("%Y%m%d%H%M%S") + tz_offset(ts)


def sorted_sources(study: StudyResult, sources: dict[str, Dataset]) -> list[Dataset]:
    """Source datasets in the order of the study's images; names what is missing."""
    missing = [r.image.sop_instance_uid for r in study.images if r.image.sop_instance_uid not in sources]
    if missing:
        raise ValueError(
            f"no source dataset for SOP Instance UID(s) {', '.join(missing)}: pass every analysed "
            "image's dataset in `sources` (headers suffice except for secondary capture)"
        )
    return [sources[r.image.sop_instance_uid] for r in study.images]


def hierarchical_references(refs: Iterable[tuple[str, str, str, str]]) -> list[Dataset]:
    """Study → series → instance reference items from (study, series, SOP class, SOP instance).

    The shape of both Current Requested Procedure Evidence and Predecessor Documents.
    """
    by_study: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for study_uid, series_uid, sop_class_uid, sop_uid in refs:
        by_study.setdefault(study_uid, {}).setdefault(series_uid, []).append((sop_class_uid, sop_uid))
    out = []
    for study_uid, series in by_study.items():
        st = Dataset()
        st.StudyInstanceUID = study_uid
        st.ReferencedSeriesSequence = []
        for series_uid, sops in series.items():
            se = Dataset()
            se.SeriesInstanceUID = series_uid
            se.ReferencedSOPSequence = []
            for sop_class_uid, sop_uid in sops:
                ref = Dataset()
                ref.ReferencedSOPClassUID = sop_class_uid
                ref.ReferencedSOPInstanceUID = sop_uid
                se.ReferencedSOPSequence.append(ref)
            st.ReferencedSeriesSequence.append(se)
        out.append(st)
    return out


def predecessor_sequence(items: Iterable[tuple[str, str, str]], sop_class_uid: str) -> list[Dataset]:
    """Predecessor Documents Sequence for earlier versions (study, series, SOP instance) of one class."""
    return hierarchical_references((study, series, sop_class_uid, sop) for study, series, sop in items)
