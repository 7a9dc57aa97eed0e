"""Build a study's result objects so that a bad input costs at most one kind of output.

Whatever the node accepted must end in a delivered report (docs/FAULTS.md): results for
what could be analysed, "CAD failed" for the rest. So:

- each received header is checked explicitly, per object, before any builder sees it
  (:func:`load_sources`): a missing Type 2 attribute is added empty, an inconsistent
  VOI window (two centres, one width) is dropped; nothing is switched process-wide;
- each output kind is built on its own: a builder that raises loses that kind only,
  with an ``output_failed`` event and a ``mammocad_faults{event="output_failed"}`` count;
- when the Mammography CAD SR itself cannot be built from the results, it is built
  again with every image marked "CAD failed", so the study still gets a report that
  says so.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from mammocad.config import OutputKind
from mammocad.logs import log_event, safe_error
from mammocad.metrics.faults import count_fault
from mammocad.model.results import ImageRef, ImageResult, StudyResult
from mammocad.results.sanitize import PATIENT_STUDY
from mammocad.spool.studies import StudyFiles
from mammocad.worker.failures import failed_result

logger = logging.getLogger(__name__)

#: Type 2 attributes of the Patient and General Study modules the builders copy.
TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "AccessionNumber", "ReferringPhysicianName", "StudyID")
_VOI_WINDOW = ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation")

Predecessors = Callable[[OutputKind], list[tuple[str, str, str]]]


@dataclass
class Built:
    """What a study's build produced: (kind, object) pairs and the kinds that failed, with why."""

    objects: list[tuple[OutputKind, Dataset]] = field(default_factory=list)
    failed: dict[OutputKind, str] = field(default_factory=dict)


def _values(ds: Dataset, keyword: str) -> list[Any]:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, MultiValue) else [value]


def fix_header(ds: Dataset) -> list[str]:
    """Make one received header safe to cite; return what was changed (attribute names only)."""
    changed = []
    for keyword in TYPE2_COPIED:
        if keyword not in ds:
            setattr(ds, keyword, "")
            changed.append(f"{keyword} added empty")
    centres, widths = _values(ds, "WindowCenter"), _values(ds, "WindowWidth")
    if (centres or widths) and len(centres) != len(widths):
        for keyword in _VOI_WINDOW:
            if keyword in ds:
                del ds[keyword]
        changed.append(f"VOI window dropped ({len(centres)} centres, {len(widths)} widths)")
    return changed


def load_sources(files: StudyFiles, sop_uids: list[str]) -> tuple[dict[str, Dataset], dict[str, str]]:
    """The images' data sets for the builders (pixels read on first use), checked per object.

    Returns the usable data sets and, per image that cannot be read at all, the error.
    """
    sources: dict[str, Dataset] = {}
    unreadable: dict[str, str] = {}
    for sop in sop_uids:
        path = files.image(sop)
        try:
            ds = dcmread(path, defer_size="1 MB")
        except Exception as exc:  # noqa: BLE001 - any read failure makes the image "CAD failed"
            unreadable[sop] = f"cannot read the image to cite it: {safe_error(exc)}"
            continue
        changed = fix_header(ds)
        if changed:
            log_event(logger, "source_header_fixed", study=files.study_uid, sop=sop, changes="; ".join(changed))
        sources[sop] = ds
    return sources, unreadable


def _placeholder(ref: ImageRef, sibling: Dataset | None) -> Dataset:
    """A header that cites an unreadable image by the UIDs its result recorded (study, series,
    class, instance: the analysis read them from the file while it was whole).

    The Patient and General Study modules come from ``sibling``, a readable image of the same
    study: an SR copies them from the study's first image, and when that one was unreadable
    the report went out with an empty Patient ID and Name, filed under no patient.
    """
    ds = Dataset()
    if sibling is not None:
        for keyword in ("SpecificCharacterSet", *PATIENT_STUDY):
            if keyword in sibling:
                ds[keyword] = copy.deepcopy(sibling[keyword])
    ds.StudyInstanceUID = ref.study_uid
    ds.SeriesInstanceUID = ref.series_uid
    ds.SOPInstanceUID = ref.sop_instance_uid
    ds.SOPClassUID = ref.sop_class_uid
    fix_header(ds)
    return ds


def _cite_unreadable(files: StudyFiles, result: ImageResult, error: str) -> ImageResult:
    """The "CAD failed" result of an image unreadable now, citing it as well as can be known.

    Its header as read now wins; when even that fails, the reference its analysis recorded
    (``results/<sop>.json``) still holds the Series Instance UID and SOP Class UID. Without
    it the evidence cited the image under an empty Type 1 Series Instance UID (dciodvfy
    rejects the SR) and under the For Presentation class whatever the image was.
    """
    failed = failed_result(files, result.image.sop_instance_uid, error)
    if not failed.image.series_uid and result.image.series_uid:
        failed = dataclasses.replace(failed, image=result.image)
    return failed


def _citable(ref: ImageRef) -> bool:
    """Whether every output can cite the image: each reference needs all four UIDs (Type 1)."""
    return all((ref.study_uid, ref.series_uid, ref.sop_class_uid, ref.sop_instance_uid))


def _unreadable(study: StudyResult, files: StudyFiles, unreadable: dict[str, str], readable: list[Dataset]
                ) -> tuple[StudyResult, StudyResult, dict[str, Dataset]]:
    """(study as reported, study the builders cite, placeholders) once ``unreadable`` images
    are marked "CAD failed".

    An image whose series is known nowhere (unreadable when analysed and now) cannot be
    cited by any object, so it is left out of the built objects, with an ``image_left_out``
    event; it stays in the study as reported, so the report record lists it as failed.
    """
    reported, cited = [], []
    for r in study.images:
        sop = r.image.sop_instance_uid
        if sop not in unreadable:
            reported.append(r)
            cited.append(r)
            continue
        failed = _cite_unreadable(files, r, unreadable[sop])
        if not _citable(failed.image):
            why = ("left out of the results: no Series Instance UID or SOP Class UID is known for it "
                   "(the file was unreadable when analysed and at finalize), so no object can cite it")
            failed = dataclasses.replace(failed, error=f"{failed.error}; {why}")
            log_event(logger, "image_left_out", logging.WARNING, study=files.study_uid, sop=sop, reason=why,
                      hint="check the spool's disk; send the image again to have it analysed")
            count_fault("image_left_out")
        else:
            cited.append(failed)
        reported.append(failed)
    sibling = readable[0] if readable else None
    placeholders = {r.image.sop_instance_uid: _placeholder(r.image, sibling) for r in cited
                    if r.image.sop_instance_uid in unreadable}
    return _replace_images(study, tuple(reported)), _replace_images(study, tuple(cited)), placeholders


def build_study(study: StudyResult, files: StudyFiles, sop_uids: list[str], kinds: list[OutputKind], *,
                device: str, predecessors: Predecessors, sc_jpeg_quality: int, sc_lossless: bool = False,
                version: int = 1, sent: Mapping[OutputKind, frozenset[str]] | None = None,
                ) -> tuple[Built, StudyResult]:
    """Build every kind in ``kinds``; returns what was built and the study as reported.

    The returned study differs from ``study`` when images had to be marked "CAD failed"
    because their files could not be read to cite them; it also lists an image left out of
    the built objects because nothing records its series (:func:`_unreadable`).
    ``sent``: per kind of per-image object (SC, GSPS), the images whose object an earlier
    report delivered with the same content; an amended report builds that kind for the
    other images only, so the PACS does not get the same picture twice under new UIDs.
    """
    from mammocad.results.outputs import build_outputs  # highdicom is heavy: import on use

    sources, unreadable = load_sources(files, sop_uids)
    reported = study
    if unreadable:
        reported, study, placeholders = _unreadable(study, files, unreadable, list(sources.values()))
        sources.update(placeholders)
    built = Built()
    if not study.images:  # every image left out: nothing can be cited, so nothing is built
        built.failed.update({kind: "no image of the study can be cited" for kind in kinds})
        return built, reported
    for kind in kinds:  # one call per kind: one bad builder loses one kind, and each SR cites its own predecessor
        done = (sent or {}).get(kind, frozenset()) if not kind.is_report else frozenset()
        target = _replace_images(study, tuple(r for r in study.images if r.image.sop_instance_uid not in done))
        if not target.images:
            continue
        try:
            objects = build_outputs(target, sources, [kind], device=device, predecessor=predecessors(kind),
                                    sc_jpeg_quality=sc_jpeg_quality, sc_lossless=sc_lossless, version=version)
        except Exception as exc:  # noqa: BLE001 - reported below, never lost
            built.failed[kind] = safe_error(exc)
            log_event(logger, "output_failed", logging.ERROR, study=files.study_uid, kind=kind.value,
                      error=built.failed[kind])
            count_fault("output_failed")
            continue
        built.objects += [(kind, ds) for ds in objects]
    if OutputKind.MAMMO_CAD_SR in built.failed:
        _cad_failed_report(built, study, sources, files, device, predecessors, version)
    return built, reported


def _replace_images(study: StudyResult, images: tuple[ImageResult, ...]) -> StudyResult:
    return dataclasses.replace(study, images=images)  # keeps every other field (revision too)


def _cad_failed_report(built: Built, study: StudyResult, sources: dict[str, Dataset], files: StudyFiles,
                       device: str, predecessors: Predecessors, version: int = 1) -> None:
    """Last resort: the Mammography CAD SR with every image "CAD failed" (no findings to build)."""
    from mammocad.results.outputs import build_outputs

    reason = built.failed[OutputKind.MAMMO_CAD_SR]
    failed = tuple(r if r.error else ImageResult(image=r.image, model_name=r.model_name,
                                                  model_version=r.model_version, device=r.device,
                                                  error=f"report could not be built: {reason}")
                   for r in study.images)
    try:
        objects = build_outputs(_replace_images(study, failed), sources, [OutputKind.MAMMO_CAD_SR], device=device,
                                predecessor=predecessors(OutputKind.MAMMO_CAD_SR), version=version,
                                failed_analyses=("breast risk",))
    except Exception as exc:  # noqa: BLE001
        log_event(logger, "cad_failed_report_failed", logging.CRITICAL, study=files.study_uid,
                  error=safe_error(exc))
        count_fault("cad_failed_report_failed")
        return
    del built.failed[OutputKind.MAMMO_CAD_SR]
    built.objects += [(OutputKind.MAMMO_CAD_SR, ds) for ds in objects]
    log_event(logger, "cad_failed_report", logging.WARNING, study=files.study_uid, images=len(failed), error=reason)
    count_fault("cad_failed_report")
