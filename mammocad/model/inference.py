"""The detector as the worker and the CLI use it: load once, analyse many images.

``Detector.analyze_dataset`` never raises for a bad image: the failure becomes an
``ImageResult`` with ``error`` set, so one broken image cannot stop a study. Lesions are
returned in the original image's pixel coordinates (``FrameTransform.to_original``).

Per lesion, from the box head's softmax ``(p_bg, p_benign, p_malignant)`` of that box:
``score = 1 − p_bg`` (it is a lesion), ``probability_malignant = p_malignant /
(p_benign + p_malignant)`` (softmax restricted to the two lesion classes) and the class is
malignant when ``probability_malignant >= metadata["malignant_threshold"]`` (chosen on
validation lesions at training; 0.5, the larger of the two, when absent). See
``detector.ProbRoIHeads`` for how the vector is kept.

Reported lesions are those with ``score >= metadata["lesion_score_threshold"]`` (chosen on
validation data when the checkpoint was trained; the model's own ``box_score_thresh``
when absent); breast risk uses the same lesions (``risk.py``). ``predict_standardised``
returns every box whatever its score, for evaluation (FROC needs them all), but never one
centred outside the breast (burned-in labels and markers in the air beside it, film borders,
deep in the pectoral muscle: ``breast_mask.inside_breast``), so evaluation measures what the
node reports.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from mammocad.logs import log_event
from mammocad.model.breast_mask import inside_breast
from mammocad.model.checkpoint import LoadedCheckpoint, load_checkpoint, resolve_weights
from mammocad.model.detector import NETWORK_SPEC_FIELDS, inference_layout
from mammocad.model.devices import configure_cpu_threads, default_batch_size, resolve_device
from mammocad.model.info import DetectorInfo
from mammocad.model.orientations import detect_oriented
from mammocad.model.results import BreastRisk, ImageRef, ImageResult, Lesion, LesionClass
from mammocad.model.standardise import Standardised, standardise

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """Model-frame output of one standardised image (for evaluation)."""

    boxes: np.ndarray  # float[N, 4] model frame
    labels: np.ndarray  # int[N], 1 benign / 2 malignant
    scores: np.ndarray  # float[N], 1 - p_background
    p_malignant: np.ndarray  # float[N], p_mal / (p_benign + p_mal)
    tiles: int = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        """Unpacks as (boxes, labels, scores, p_malignant)."""
        return iter((self.boxes, self.labels, self.scores, self.p_malignant))


class Detector:
    """A loaded checkpoint on a device. Build with :meth:`load`."""

    def __init__(self, checkpoint: LoadedCheckpoint, device: str, weights_path: Path | None = None) -> None:
        self.checkpoint = checkpoint
        self.model = checkpoint.model
        self.spec = checkpoint.spec
        self.preprocess = checkpoint.preprocess
        self.metadata = checkpoint.metadata
        self.device = device
        self.weights_path = weights_path
        #: Names, thresholds and the breast-risk rule (shared with the results workers).
        self.info = DetectorInfo.from_header(checkpoint.spec, checkpoint.metadata)
        self.model_name: str = self.info.model_name
        self.model_version: str = self.info.model_version
        self.synthetic_weights: bool = self.info.synthetic_weights
        self.batch_size = default_batch_size(device)
        #: float16 autocast on CUDA; CPUs always run float32 (tiling.py says why).
        self.amp = True

    @property
    def lesion_score_threshold(self) -> float:
        """Boxes below this score are not reported (chosen on validation data at training or by
        ``mammocad model calibrate``: metadata["lesion_score_threshold"]; else every box the model returns)."""
        return self.info.lesion_score_threshold

    @classmethod
    def load(cls, weights: str | Path | None = None, device: str = "auto") -> Detector:
        """Load ``weights`` (None/"" → the demo weights) onto ``device`` ("auto": CUDA if present).

        Raises CheckpointError / DeviceError with a message saying what to do.
        """
        path = resolve_weights(weights)
        resolved = resolve_device(device)
        threads = configure_cpu_threads() if resolved == "cpu" else None
        checkpoint = load_checkpoint(path, device=resolved)
        inference_layout(checkpoint.model)  # once, here: analysis never changes the model
        det = cls(checkpoint, resolved, path)
        log_event(logger, "detector_loaded", weights=str(path), device=resolved, model=det.model_name,
                  version=det.model_version, synthetic=det.synthetic_weights, cpu_threads=threads)
        return det

    def with_spec(self, **changes: object) -> Detector:
        """The same weights on the same device analysing with spec fields changed (a new object sharing
        the weights; this one is untouched, its lesion and malignant thresholds are kept).

        Only the fields read at analysis time can change: the others were built into the network
        when it was loaded, and a copy claiming another value would report settings it does not use.
        """
        fixed = sorted(set(changes) & NETWORK_SPEC_FIELDS)
        if fixed:
            raise ValueError(f"{', '.join(fixed)} were built into the loaded network; save a checkpoint with "
                             "the new spec and load that instead")
        spec = dataclasses.replace(self.spec, **changes)  # type: ignore[arg-type]
        other = self._with_checkpoint(dataclasses.replace(self.checkpoint, spec=spec))
        other.info = dataclasses.replace(DetectorInfo.from_header(spec, self.metadata),
                                         lesion_score_threshold=self.info.lesion_score_threshold,
                                         malignant_threshold=self.info.malignant_threshold)
        return other

    def with_lesion_threshold(self, value: float) -> Detector:
        """The same detector reporting boxes from ``value`` up (a new object sharing the weights;
        this one keeps its threshold, so a caller trying a threshold never changes another's)."""
        other = copy.copy(self)
        other.info = dataclasses.replace(self.info, lesion_score_threshold=float(value))
        return other

    def with_preprocess(self, **changes: object) -> Detector:
        """The same detector reading images with preprocessing fields changed (a new object
        sharing the weights; this one is untouched, its thresholds are kept)."""
        preprocess = dataclasses.replace(self.preprocess, **changes)  # type: ignore[arg-type]
        return self._with_checkpoint(dataclasses.replace(self.checkpoint, preprocess=preprocess))

    def _with_checkpoint(self, checkpoint: LoadedCheckpoint) -> Detector:
        """A copy sharing the weights, its spec and preprocessing read from ``checkpoint``."""
        other = copy.copy(self)
        other.checkpoint, other.spec, other.preprocess = checkpoint, checkpoint.spec, checkpoint.preprocess
        return other

    # -- model frame ---------------------------------------------------------------
    def predict_standardised(self, image: np.ndarray) -> Prediction:
        """Detect on a standardised image float32 [H, W] in [0, 1] (chest wall at x = 0).

        Returns boxes in the model frame; unpack as ``boxes, labels, scores, p_malignant``.
        """
        det = detect_oriented(self.model, image, self.spec, device=self.device, batch_size=self.batch_size,
                              amp=self.amp)
        if len(det.boxes):  # marks on film labels and markers beside the breast (breast_mask.py)
            det = det.select(inside_breast(det.boxes, image, self.preprocess.working_spacing_mm))
        probs = det.probs
        lesion_mass = np.maximum(probs[:, 1] + probs[:, 2], 1e-12) if len(probs) else np.zeros(0)
        p_mal = (probs[:, 2] / lesion_mass).clip(0, 1) if len(probs) else np.zeros(0)
        labels = np.where(p_mal >= self.info.malignant_threshold, 2, 1).astype(np.int64)
        return Prediction(det.boxes, labels, det.scores.clip(0, 1), p_mal, det.tiles)

    # -- images ----------------------------------------------------------------------
    def analyze_dataset(self, ds: Dataset) -> ImageResult:
        """Analyse one DICOM image; failures come back as ``ImageResult.error``."""
        started = time.perf_counter()
        try:
            ref = ImageRef.from_header(ds)
        except Exception as exc:  # malformed header values: still answer with an error result
            ref = ImageRef(study_uid="", series_uid="", sop_instance_uid="", sop_class_uid="", laterality="",
                           view="", rows=0, columns=0)
            return ImageResult(image=ref, model_name=self.model_name, model_version=self.model_version,
                               device=self.device, error=f"unreadable header: {type(exc).__name__}: {exc}")
        try:
            std = standardise(ds, self.preprocess)
            ref = _with_analysed_laterality(ref, std)
            lesions = self.reported_lesions(std)
        except Exception as exc:  # one bad image must not stop a study: report it
            seconds = time.perf_counter() - started
            log_event(logger, "analyze_failed", logging.WARNING, sop=ref.sop_instance_uid,
                      error=f"{type(exc).__name__}: {exc}")
            return ImageResult(image=ref, model_name=self.model_name, model_version=self.model_version,
                               device=self.device, seconds=seconds, error=f"{type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - started
        log_event(logger, "analyzed", sop=ref.sop_instance_uid, lesions=len(lesions), seconds=round(seconds, 3),
                  device=self.device)
        return ImageResult(image=ref, lesions=lesions, model_name=self.model_name,
                           model_version=self.model_version, device=self.device, seconds=seconds)

    def analyze_file(self, path: str | Path) -> ImageResult:
        """Read and analyse a DICOM file; unreadable files come back as ``error``."""
        try:
            ds = pydicom.dcmread(path)
        except Exception as exc:
            ref = ImageRef(study_uid="", series_uid="", sop_instance_uid="", sop_class_uid="", laterality="",
                           view="", rows=0, columns=0)
            return ImageResult(image=ref, model_name=self.model_name, model_version=self.model_version,
                               device=self.device, error=f"{path}: not a readable DICOM file ({exc})")
        return self.analyze_dataset(ds)

    def breast_risks(self, results: Iterable[ImageResult]) -> tuple[BreastRisk, ...]:
        """Per-breast risk over all views at the checkpoint's operating threshold (reported lesions only)."""
        return self.info.breast_risks(results)

    def reported_lesions(self, std: Standardised) -> tuple[Lesion, ...]:
        """The lesions a user is shown for an image standardised with ``self.preprocess``, in its
        original pixels: boxes at or above the lesion score threshold, classed by the cut-off.

        Public for images that are not DICOM (the PGM/PNG of public film sets), which reach the
        detector through ``standardise_array`` instead of :meth:`analyze_dataset`.
        """
        pred = self.predict_standardised(std.image)
        if len(pred.boxes) == 0:
            return ()
        boxes = std.transform.clip_original(std.transform.to_original(pred.boxes))
        lesions = []
        for box, label, score, p_mal in zip(boxes, pred.labels, pred.scores, pred.p_malignant, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            if score < self.lesion_score_threshold or not (x1 < x2 and y1 < y2):
                continue  # collapsed by clipping at the image border
            lesions.append(Lesion(box=(x1, y1, x2, y2), lesion_class=LesionClass.from_label(int(label)),
                                  probability_malignant=float(p_mal), score=float(score)))
        return tuple(lesions)


def _with_analysed_laterality(ref: ImageRef, std: Standardised) -> ImageRef:
    """``ref`` citing the breast the image was analysed as (``std.meta["laterality"]``).

    That is the header's unless the header named none (then the side the breast is attached to
    in the pixels) or its Patient Orientation is the other breast's, as the pixels agree
    (``standardise._oriented_breast``; logged there once as ``orientation_conflict``). Every
    result object and the breast risks read the laterality from here, so they all state the
    breast whose geometry placed the marks.
    """
    used = std.meta.get("laterality")
    if used not in ("L", "R") or used == ref.laterality:
        return ref
    return ImageRef(**{**ref.to_dict(), "laterality": used})
