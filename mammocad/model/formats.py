"""The names of the data formats the model commands read, in one place.

A module of its own, importing nothing, because the command-line parsers offer these names as
choices and ``mammocad --help`` must not import numpy or torch to print them; the readers and
the training config's ``[[data]]`` sources take the same names from here.
"""

from __future__ import annotations

#: format name → its module under ``mammocad.model.readers`` ("" for a mammocad manifest,
#: which ``mammocad.model.annotations`` reads).
READER_MODULES: dict[str, str] = {
    "manifest": "", "coco": "coco", "cbis-ddsm": "cbis_ddsm", "inbreast": "inbreast",
    "vindr": "vindr", "mias": "mias", "real-background": "real_background",
}

#: Formats that read a folder of images already there (``--data-format``).
READER_FORMATS: tuple[str, ...] = tuple(READER_MODULES)

#: Formats of a training config's ``[[data]]``: the readers', and "synthetic", drawn on first use.
SOURCE_FORMATS: tuple[str, ...] = ("synthetic", *READER_FORMATS)

#: Formats of real images to compare with (``realism --real-format``): the readers' except
#: real-background, whose lesions are simulated, and "dicom", any folder of DICOM files.
REAL_IMAGE_FORMATS: tuple[str, ...] = ("dicom", *(f for f in READER_FORMATS if f != "real-background"))
