"""Turn a study's detector results into the DICOM objects destinations asked for.

``build_outputs`` is the one entry point the worker calls. Every object it returns is
complete (file meta included) and checked here, per object, before it leaves: each text,
date, time, UID and code string is validated against its VR with pydicom's per-call
validation (``validate_output``), so an invalid value fails here, naming the attribute,
rather than in the PACS. No process-wide pydicom setting is touched. The tests also run
dciodvfy, dsrdump and PixelMed's SR validator on them.

Each object's SOP Instance UID is derived from its content (``content_uid``): a rebuilt
object with any difference (a new Content Time included) gets a new UID, as PS3.5 §9
requires; identical content keeps it.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian

from mammocad.config import OutputKind
from mammocad.logs import log_event
from mammocad.model.results import StudyResult
from mammocad.results.cad_sr import build_mammo_cad_sr
from mammocad.results.gsps import build_gsps, gsps_order
from mammocad.results.overlay_sc import build_secondary_capture, instance_index
from mammocad.results.sanitize import check_identity
from mammocad.results.tid1500 import build_tid1500_sr
from mammocad.results.uids import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION,
    OutputContext,
    product_uid,
    sorted_sources,
)
from mammocad.results.validate import validate_output

logger = logging.getLogger(__name__)

def warm_caches() -> None:
    """Load highdicom's tables of the standard now (0.3 s of JSON parsing on first use).

    The results worker calls this before its prefork pool forks, so no child pays it on its
    first study. highdicom keeps them behind private, cached functions: if a later version
    moves them, the first study is just slower.
    """
    try:
        from highdicom import _standard_utils as standard
    except ImportError:
        return
    for name in ("get_module_attribute_map", "get_iod_module_map", "get_sop_class_iod_map"):
        loader = getattr(standard, name, None)
        if callable(loader):
            loader()


def content_uid(ds: Dataset, kind: str) -> None:
    """Set the SOP Instance UID from a digest of the object's content (without that UID)."""
    ds.SOPInstanceUID = product_uid("provisional")
    buf = DicomBytesIO()
    buf.is_little_endian = True
    buf.is_implicit_VR = False
    write_dataset(buf, ds)
    ds.SOPInstanceUID = product_uid("sop", kind, hashlib.sha256(buf.getvalue()).hexdigest())


def _finish(ds: Dataset, kind: OutputKind) -> Dataset:
    """Content-derived SOP Instance UID, per-object validation and Part 10 file meta.

    Explicit VR Little Endian unless the builder encapsulated its pixels and set its own
    transfer syntax (compressed secondary captures).
    """
    own = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if hasattr(ds, "file_meta"):
        del ds.file_meta
    content_uid(ds, kind.value)
    validate_output(ds)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = own or ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds.file_meta = meta
    return ds


def _one_kind(kind: OutputKind, ctx: OutputContext, sources: dict[str, Dataset]) -> list[Dataset]:
    results = list(ctx.study.images)
    analysed = [r for r in results if r.analysed]
    if kind is OutputKind.MAMMO_CAD_SR:
        return [build_mammo_cad_sr(ctx, sources)]
    if kind is OutputKind.TID1500_SR:
        return [build_tid1500_sr(ctx, sources)]
    if kind is OutputKind.SECONDARY_CAPTURE:
        # Decoding, windowing, reducing and encoding run mostly outside the GIL: one
        # thread per image uses the cores the analysis has just left idle.
        jobs = [(instance_index(r, analysed), r) for r in analysed]
        with ThreadPoolExecutor(max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
            return list(pool.map(lambda job: build_secondary_capture(job[1], sources[job[1].image.sop_instance_uid],
                                                                     ctx, job[0]), jobs))
    if kind is OutputKind.GSPS:
        return [build_gsps(r, sources[r.image.sop_instance_uid], ctx, i) for i, r in gsps_order(results)]
    raise ValueError(f"unknown output kind {kind!r}: expected one of {[k.value for k in OutputKind]}")


def build_outputs(
    study: StudyResult,
    sources: dict[str, Dataset],
    kinds: Iterable[OutputKind],
    *,
    device: str = "",
    predecessor: list[tuple[str, str, str]] | None = None,
    sc_jpeg_quality: int = 90,
    sc_lossless: bool = False,
    version: int = 1,
    failed_analyses: Iterable[str] = (),
    when: datetime.datetime | None = None,
) -> list[Dataset]:
    """Build the requested result objects for one study.

    sources: the analysed images keyed by SOP Instance UID; header-only datasets
        (``stop_before_pixels``) suffice for SR and GSPS, secondary capture needs pixels.
    kinds: which objects. SRs: one each; SC and GSPS: one per analysed image, in one series
        per breast, instance numbers in RCC, LCC, RMLO, LMLO order. A study where every
        image failed still gets SRs (saying CAD failed) but no SC/GSPS.
    predecessor: (study UID, series UID, SOP instance UID) of earlier SR versions of the
        same kind (a study that gained images later); written as Predecessor Documents.
    sc_jpeg_quality: JPEG baseline quality of the secondary captures; 0 = uncompressed.
    sc_lossless: secondary captures as JPEG-LS lossless instead of JPEG baseline.
    version: 1 for the study's first report, n for its (n-1)-th amendment (series numbers).
    failed_analyses: study-level analyses that failed (e.g. "breast risk"), reported as such.
    when: content date/time (default now, local time); the same inputs at the same time give
        the same objects and UIDs.
    Returns datasets with file meta, ready for ``save_as(..., enforce_file_format=True)``.
    """
    if not study.images:
        raise ValueError(f"study {study.study_uid} has no image results: nothing to report")
    sorted_sources(study, sources)  # raises naming the missing SOP Instance UIDs
    check_identity(sources)  # raises naming an image without a valid study, class, instance or series UID
    ctx = OutputContext(study=study, device=device, predecessor=tuple(predecessor or ()),
                        sc_jpeg_quality=sc_jpeg_quality, sc_lossless=sc_lossless, version=version,
                        failed_analyses=tuple(failed_analyses), when=when)
    out: list[Dataset] = []
    for kind in dict.fromkeys(OutputKind(k) for k in kinds):
        built = [_finish(ds, kind) for ds in _one_kind(kind, ctx, sources)]
        log_event(logger, "outputs_built", kind=kind.value, count=len(built),
                  images=len(study.images), failed=sum(not r.analysed for r in study.images))
        out.extend(built)
    return out


def build_cad_failed(
    study: StudyResult,
    sources: dict[str, Dataset],
    *,
    kinds: Iterable[OutputKind] = (OutputKind.MAMMO_CAD_SR, OutputKind.TID1500_SR),
    device: str = "",
    failed_analyses: Iterable[str] = ("breast risk",),
    version: int = 1,
) -> list[Dataset]:
    """SRs that tell the reader "CAD failed" (fault paths): images whose ImageResult has an
    ``error`` are listed under Failed Detections/Analyses, ``failed_analyses`` under Failed
    Analyses, and the summary code says which algorithms did not succeed. SC and GSPS are
    never built (there is nothing to draw)."""
    wanted = [OutputKind(k) for k in kinds if OutputKind(k) in (OutputKind.MAMMO_CAD_SR, OutputKind.TID1500_SR)]
    return build_outputs(study, sources, wanted, device=device, version=version,
                         failed_analyses=failed_analyses)
