"""Turn a study's detector results into the DICOM objects destinations asked for.

``build_outputs`` is the one entry point the worker calls. Every object it returns is
complete (file meta included) and was checked against dciodvfy, dsrdump and PixelMed's
SR validator by the tests; each object's own values are checked against their VR once it
is built (:mod:`mammocad.results.validate`, no process-wide pydicom switch), so an
over-long value fails here rather than in the PACS.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from mammocad.config import OutputKind
from mammocad.logs import log_event
from mammocad.model.results import StudyResult
from mammocad.results.cad_sr import build_mammo_cad_sr
from mammocad.results.gsps import build_gsps, group_images
from mammocad.results.overlay_sc import build_secondary_capture
from mammocad.results.tid1500 import build_tid1500_sr
from mammocad.results.uids import OutputContext, sorted_sources
from mammocad.results.validate import received_values, validate_output

logger = logging.getLogger(__name__)

IMPLEMENTATION_VERSION = "MAMMOCAD"


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


def _finish(ds: Dataset) -> Dataset:
    """Add file meta so the object can be written as Part 10.

    Explicit VR Little Endian unless the builder encapsulated its pixels and set its own
    transfer syntax (JPEG secondary captures).
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    own = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    meta.TransferSyntaxUID = own or ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds.file_meta = meta
    return ds


def _one_kind(kind: OutputKind, ctx: OutputContext, sources: dict[str, Dataset]) -> list[Dataset]:
    results = list(ctx.study.images)
    if kind is OutputKind.MAMMO_CAD_SR:
        return [build_mammo_cad_sr(ctx, sources)]
    if kind is OutputKind.TID1500_SR:
        return [build_tid1500_sr(ctx, sources)]
    if kind is OutputKind.SECONDARY_CAPTURE:
        # Decoding, windowing, reducing and JPEG-encoding run mostly outside the GIL: one
        # thread per image uses the cores the analysis has just left idle.
        jobs = [(i, r) for i, r in enumerate(results) if r.analysed]
        with ThreadPoolExecutor(max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
            return list(pool.map(lambda job: build_secondary_capture(job[1], sources[job[1].image.sop_instance_uid],
                                                                     ctx, job[0]), jobs))
    if kind is OutputKind.GSPS:
        return [build_gsps(group, sources, ctx, i) for i, group in enumerate(group_images(results, sources))]
    raise ValueError(f"unknown output kind {kind!r}: expected one of {[k.value for k in OutputKind]}")


def build_outputs(
    study: StudyResult,
    sources: dict[str, Dataset],
    kinds: Iterable[OutputKind],
    *,
    device: str = "",
    predecessor: list[tuple[str, str, str]] | None = None,
    sc_jpeg_quality: int = 90,
) -> list[Dataset]:
    """Build the requested result objects for one study.

    sources: the analysed images keyed by SOP Instance UID; header-only datasets
        (``stop_before_pixels``) suffice for SR and GSPS, secondary capture needs pixels.
    kinds: which objects; each kind is one series. SC: one per analysed image; GSPS: one
        per study (two if it mixes MONOCHROME1 and 2); SRs: one each. A study where every image failed still gets SRs
        (saying CAD failed) but no SC/GSPS.
    predecessor: (study UID, series UID, SOP instance UID) of earlier SR versions of the
        same kind (a study that gained images later); written as Predecessor Documents.
    sc_jpeg_quality: JPEG baseline quality of the secondary captures; 0 = uncompressed.
    Returns datasets with file meta, ready for ``save_as(..., enforce_file_format=True)``.
    """
    if not study.images:
        raise ValueError(f"study {study.study_uid} has no image results: nothing to report")
    sorted_sources(study, sources)  # raises naming the missing SOP Instance UIDs
    ctx = OutputContext(study=study, device=device, predecessor=tuple(predecessor or ()),
                        sc_jpeg_quality=sc_jpeg_quality)
    out: list[Dataset] = []
    received = received_values(sources.values())
    for kind in dict.fromkeys(OutputKind(k) for k in kinds):
        built = [_finish(ds) for ds in _one_kind(kind, ctx, sources)]
        for ds in built:
            validate_output(ds, received)
        log_event(logger, "outputs_built", kind=kind.value, count=len(built),
                  images=len(study.images), failed=sum(not r.analysed for r in study.images))
        out.extend(built)
    return out
