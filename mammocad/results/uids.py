"""Deterministic UIDs and the shared header identity of every mammocad output.

A result's UIDs derive only from what it describes (study, the sorted SOP Instance UIDs
analysed, the model version, the output kind, an index), so re-sending a study's results
replaces the earlier objects in the PACS instead of duplicating them, and a study that
gained an image later gets new objects (new UIDs) that can point to the old ones as
predecessors.

The header helpers live here too because every builder (SR, SC, GSPS) needs the same
patient/study copy and the same equipment and disclaimer attributes.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid

import mammocad
from mammocad.config.settings import OutputKind
from mammocad.model.results import StudyResult

MANUFACTURER = "mammocad"
DISCLAIMER = "NOT FOR DIAGNOSTIC USE"


#: Patient / General Study attributes copied from the source image (Type 1/2 only where present).
_PATIENT_STUDY_TAGS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "OtherPatientIDsSequence",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyID",
    "StudyDescription",
    "IssuerOfAccessionNumberSequence",
)
_TYPE2_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                        "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID")


def result_uid(study: StudyResult, kind: OutputKind, role: str, index: int = 0) -> UID:
    """UID for one result object (``role`` e.g. "series", "sop", "tracking").

    Same study, same image set, same model version, same kind (and same revision: an
    admin's re-analysis is a new version with new UIDs) → same UID.
    """
    sops = sorted(r.image.sop_instance_uid for r in study.images)
    if study.revision:  # revision 0 adds nothing: UIDs of first reports stay as they were
        sops.append(f"revision:{study.revision}")
    # Keep pydicom's default prefix: with prefix=None pydicom ignores entropy_srcs and
    # returns a random UUID-derived 2.25 UID, which would make every re-send a duplicate.
    return generate_uid(
        entropy_srcs=[study.study_uid, *sops, study.model_version, OutputKind(kind).value, role, str(index)],
    )


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

    @property
    def timestamp(self) -> _dt.datetime:
        return self.when or _dt.datetime.now(_dt.UTC)

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


def copy_patient_study(target: Dataset, source: Dataset) -> None:
    """Copy the Patient and General Study modules so the output joins the source study."""
    for keyword in _PATIENT_STUDY_TAGS:
        if keyword in source:
            target[keyword] = source[keyword]
    for keyword in _TYPE2_PATIENT_STUDY:
        if keyword not in target:
            setattr(target, keyword, "")
    if "SpecificCharacterSet" in source:
        target.SpecificCharacterSet = source.SpecificCharacterSet


def set_common(target: Dataset, ctx: OutputContext, kind: OutputKind, *, modality: str, what: str,
               index: int = 0, series_index: int = 0) -> None:
    """Series, equipment, SOP common and content date/time of one output object."""
    target.SeriesInstanceUID = result_uid(ctx.study, kind, "series", series_index)
    target.SOPInstanceUID = result_uid(ctx.study, kind, "sop", index)
    target.SeriesNumber = OutputKind(kind).series_number
    target.InstanceNumber = index + 1
    target.Modality = modality
    target.SeriesDescription = ctx.description(what)
    target.Manufacturer = MANUFACTURER
    target.ManufacturerModelName = (ctx.study.model_name or "mammocad")[:64]
    target.SoftwareVersions = [mammocad.__version__, (ctx.study.model_version or "unknown")[:64]]
    ts = ctx.timestamp
    target.ContentDate = ts.strftime("%Y%m%d")
    target.ContentTime = ts.strftime("%H%M%S")
    target.InstanceCreationDate = target.ContentDate
    target.InstanceCreationTime = target.ContentTime
    target.SeriesDate = target.ContentDate
    target.SeriesTime = target.ContentTime


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
