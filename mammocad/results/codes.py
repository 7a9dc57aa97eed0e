"""Coded concepts written into mammocad's DICOM outputs, each with an explicit meaning.

Why not ``pydicom.sr.codedict.codes``: about 80 meanings in its dictionary carry
non-ASCII characters (DCM 111034 holds a zero-width space) that become "?" under the
default character set, and some concepts have context-group-specific codes (image
laterality in the Mammography CAD SR must come from CID 6022, not the generic
"Left"/"Right"). Every code here was checked against PS3.16 and the PixelMed SR
validator; add new ones here, never inline.
"""

from __future__ import annotations

from mammocad.dicom.codes import Code
from mammocad.dicom.views import VIEW_CODES

# --- Mammography CAD SR structure (TID 4000 and children) -------------------------------
MAMMOGRAPHY_CAD_REPORT = Code("111036", "DCM", "Mammography CAD Report")
IMAGE_LIBRARY = Code("111028", "DCM", "Image Library")
CAD_PROCESSING_SUMMARY = Code("111017", "DCM", "CAD Processing and Findings Summary")
INDIVIDUAL_IMPRESSION = Code("111034", "DCM", "Individual Impression/Recommendation")
SINGLE_IMAGE_FINDING = Code("111059", "DCM", "Single Image Finding")
RENDERING_INTENT = Code("111056", "DCM", "Rendering Intent")
PRESENTATION_REQUIRED = Code("111150", "DCM", "Presentation Required: Rendering device is expected to present")
PRESENTATION_OPTIONAL = Code("111151", "DCM", "Presentation Optional: Rendering device may present")
NOT_FOR_PRESENTATION = Code("111152", "DCM", "Not for Presentation: Rendering device expected not to present")
# TID 4006 row 3 and TID 4023 CAD Operating Points
CAD_OPERATING_POINT = Code("111071", "DCM", "CAD Operating Point")
MAXIMUM_CAD_OPERATING_POINT = Code("111072", "DCM", "Maximum CAD Operating Point")
RECOMMENDED_CAD_OPERATING_POINT = Code("111092", "DCM", "Recommended CAD Operating Point")
ARBITRARY_UNIT = Code("[arb'U]", "UCUM", "arbitrary unit")
NUMBER_OF_CALCIFICATIONS = Code("111038", "DCM", "Number of calcifications")
NO_UNITS = Code("1", "UCUM", "no units")
#: Units of CAD Operating Point values as TID 4006 row 3 writes them: DT ({1:n}, UCUM,
#: "range: 1:n"). Written literally (a valid UCUM annotation); n is given by the Maximum
#: CAD Operating Point of TID 4023 beside the detections. PixelMed's validator requires
#: the literal form (see docs/CONFORMANCE.md).
OPERATING_POINT_RANGE = Code("{1:n}", "UCUM", "range: 1:n")
#: Units of the Recommended CAD Operating Point, TID 4023 row 2: DT ({0:n}, UCUM, "range: 0:n").
RECOMMENDED_POINT_RANGE = Code("{0:n}", "UCUM", "range: 0:n")
ALGORITHM_NAME = Code("111001", "DCM", "Algorithm Name")
ALGORITHM_VERSION = Code("111003", "DCM", "Algorithm Version")
ALGORITHM_PARAMETERS = Code("111002", "DCM", "Algorithm Parameters")
CERTAINTY_OF_FINDING = Code("111012", "DCM", "Certainty of Finding")
PROBABILITY_OF_CANCER = Code("111047", "DCM", "Probability of cancer")
CENTER = Code("111010", "DCM", "Center")
OUTLINE = Code("111041", "DCM", "Outline")
DIFFERENTIAL_DIAGNOSIS = Code("111023", "DCM", "Differential Diagnosis/Impression")
IMPRESSION_DESCRIPTION = Code("111033", "DCM", "Impression Description")
SUMMARY_OF_DETECTIONS = Code("111064", "DCM", "Summary of Detections")
SUMMARY_OF_ANALYSES = Code("111065", "DCM", "Summary of Analyses")
SUCCESSFUL_DETECTIONS = Code("111063", "DCM", "Successful Detections")
FAILED_DETECTIONS = Code("111025", "DCM", "Failed Detections")
SUCCESSFUL_ANALYSES = Code("111062", "DCM", "Successful Analyses")
FAILED_ANALYSES = Code("111024", "DCM", "Failed Analyses")
DETECTION_PERFORMED = Code("111022", "DCM", "Detection Performed")
ANALYSIS_PERFORMED = Code("111004", "DCM", "Analysis Performed")
INDIVIDUAL_ANALYSIS = Code("111233", "DCM", "Individual Impression/Recommendation Analysis")
OVERALL_ANALYSIS = Code("111234", "DCM", "Overall Impression/Recommendation Analysis")
IMAGE_LATERALITY = Code("111027", "DCM", "Image Laterality")
IMAGE_VIEW = Code("111031", "DCM", "Image View")
PATIENT_ORIENTATION_ROW = Code("111044", "DCM", "Patient Orientation Row")
PATIENT_ORIENTATION_COLUMN = Code("111043", "DCM", "Patient Orientation Column")
STUDY_DATE = Code("111060", "DCM", "Study Date")
STUDY_TIME = Code("111061", "DCM", "Study Time")
CONTENT_DATE = Code("111018", "DCM", "Content Date")
CONTENT_TIME = Code("111019", "DCM", "Content Time")
HORIZONTAL_PIXEL_SPACING = Code("111026", "DCM", "Horizontal Pixel Spacing")
VERTICAL_PIXEL_SPACING = Code("111066", "DCM", "Vertical Pixel Spacing")
LANGUAGE = Code("121049", "DCM", "Language of Content Item and Descendants")
ENGLISH = Code("en-US", "RFC5646", "English (United States)")
LATERALITY = Code("272741003", "SCT", "Laterality")

# CID 6042 Status of Results
SUCCEEDED = Code("111222", "DCM", "Succeeded")
PARTIALLY_SUCCEEDED = Code("111223", "DCM", "Partially Succeeded")
FAILED = Code("111224", "DCM", "Failed")
NOT_ATTEMPTED = Code("111225", "DCM", "Not Attempted")

# CID 6047 CAD Processing and Findings Summary
ALL_OK_NO_FINDINGS = Code("111241", "DCM", "All algorithms succeeded; without findings")
ALL_OK_WITH_FINDINGS = Code("111242", "DCM", "All algorithms succeeded; with findings")
SOME_OK_NO_FINDINGS = Code("111243", "DCM", "Not all algorithms succeeded; without findings")
SOME_OK_WITH_FINDINGS = Code("111244", "DCM", "Not all algorithms succeeded; with findings")
NONE_OK = Code("111245", "DCM", "No algorithms succeeded; without findings")

# CID 6014 findings
CALCIFICATION_CLUSTER = Code("129769006", "SCT", "Calcification Cluster")
INDIVIDUAL_CALCIFICATION = Code("129770007", "SCT", "Individual Calcification")

# Benign / malignant
BENIGN = Code("30807003", "SCT", "Benign")
MALIGNANT = Code("21594007", "SCT", "Malignant")

# CID 6022 Side (image laterality in Mammography CAD SR) — breast codes
LEFT_BREAST = Code("80248007", "SCT", "Left breast")
RIGHT_BREAST = Code("73056007", "SCT", "Right breast")
BREAST_LATERALITY = {"L": LEFT_BREAST, "R": RIGHT_BREAST}

# CID 244 Laterality (finding site laterality in TID 1500)
LEFT = Code("7771000", "SCT", "Left")
RIGHT = Code("24028007", "SCT", "Right")
SIDE = {"L": LEFT, "R": RIGHT}

# Anatomy
BREAST = Code("76752008", "SCT", "Breast")

# CID 4014 View for Mammography: one table for reading and writing (mammocad/dicom/views.py)
VIEWS = VIEW_CODES

# TID 1500
IMAGING_PROCEDURE = Code("363679005", "SCT", "Imaging procedure")
IMAGING_MEASUREMENT_REPORT = Code("126000", "DCM", "Imaging Measurement Report")
FINDING = Code("121071", "DCM", "Finding")

# Units (UCUM)
PERCENT = Code("%", "UCUM", "Percent")
MILLIMETER = Code("mm", "UCUM", "millimeter")
