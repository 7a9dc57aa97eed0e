"""Readers of public formats, each on a tiny fixture written here in that format.

The fixtures hold generated mammograms (mammocad.model.synth) and their known boxes, so a
reader is right when it gives back exactly what was written, with each format's quirks
(COCO xywh, CBIS-DDSM masks and TCIA paths, INbreast plists, VinDr CSV, MIAS bottom-left origin).
"""

from __future__ import annotations

import csv
import json
import plistlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from mammocad.model.annotations import AnnotatedImage, save_manifest
from mammocad.model.readers import FORMATS, read_dataset
from mammocad.model.readers.coco import write_coco
from mammocad.model.results import LesionClass
from mammocad.model.synth import generate_study
from mammocad.model.synth.generate import SynthStudy


@pytest.fixture(scope="module")
def study() -> SynthStudy:
    # Chosen as tests/model/test_synth.py chose it (searching index/seed pairs of generate_study for
    # a study with benign clusters in one breast and a malignant + a benign one in the other):
    # (5, 360) is R: benign clusters; L: one malignant cluster, seen in CC and MLO (2 boxes).
    return generate_study(5, seed=360, spacing_mm=0.5)


def lesion_images(study: SynthStudy) -> list[tuple[Dataset, AnnotatedImage]]:
    return [(ds, a) for ds, a in zip(study.datasets, study.annotations, strict=True) if a.lesions]


def int_box(box: tuple[float, ...]) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return x1, y1, x2, y2


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_registry_and_errors(tmp_path: Path, study: SynthStudy) -> None:
    assert set(FORMATS) >= {"coco", "cbis-ddsm", "inbreast", "vindr", "mias", "manifest"}
    with pytest.raises(ValueError, match="unknown data format"):
        read_dataset("dicomdir", tmp_path)
    save_manifest(tmp_path, list(study.annotations), {})
    assert len(read_dataset("synth", tmp_path)) == 4
    with pytest.raises(FileNotFoundError, match="DATASETS.md"):
        read_dataset("vindr-mammo", tmp_path / "absent")


def test_every_format_the_commands_offer_has_a_reader_and_the_names_load_without_numpy() -> None:
    """The parsers offer mammocad.model.formats' names; each must reach a reader (or the generator)."""
    from mammocad.model import formats
    from mammocad.model.commands.pooled import DATA_FORMATS
    from mammocad.model.readers import reader
    from mammocad.model.sources import DataSource

    assert DATA_FORMATS == formats.READER_FORMATS
    for name in formats.READER_FORMATS:
        assert callable(reader(name)), name
    for name in formats.REAL_IMAGE_FORMATS:
        assert name == "dicom" or callable(reader(name)), name
    assert "real-background" not in formats.REAL_IMAGE_FORMATS
    for name in formats.SOURCE_FORMATS:
        assert DataSource(format=name, path=Path("x"), n_studies=1).format == name
    with pytest.raises(ValueError, match="data format must be one of"):
        DataSource(format="dicomdir", path=Path("x"))
    probe = "import sys, mammocad.model.formats; print(sorted(m for m in ('numpy', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_coco_round_trip_and_header_fallback(tmp_path: Path, study: SynthStudy) -> None:
    images = []
    for ds, ann in zip(study.datasets, study.annotations, strict=True):
        path = save(ds, tmp_path / "img" / f"{ann.laterality}{ann.view}.dcm")
        images.append(AnnotatedImage(image_path=path, laterality=ann.laterality, view=ann.view,
                                     breast_id=ann.breast_id, lesions=ann.lesions))
    json_path = write_coco(images, tmp_path / "coco.json")
    back = read_dataset("coco", json_path)
    assert [(b.laterality, b.view, b.breast_id) for b in back] == [(a.laterality, a.view, a.breast_id) for a in images]
    for a, b in zip(images, back, strict=True):
        assert [x.lesion_class for x in b.lesions] == [x.lesion_class for x in a.lesions]
        assert np.allclose([x.box for x in b.lesions], [x.box for x in a.lesions]) if a.lesions else not b.lesions
        assert b.image_path == a.image_path
    # Third-party style: other category names, no laterality keys (taken from the DICOM header).
    data = json.loads(json_path.read_text())
    data["categories"] = [{"id": 1, "name": "calc_benign"}, {"id": 2, "name": "Malignant calcification"}]
    for entry in data["images"]:
        for key in ("laterality", "view", "breast_id"):
            entry.pop(key)
    json_path.write_text(json.dumps(data))
    back = read_dataset("coco", tmp_path)
    assert [(b.laterality, b.view) for b in back] == [(a.laterality, a.view) for a in images]
    malignant = sum(x.lesion_class is LesionClass.MALIGNANT for a in images for x in a.lesions)
    assert malignant == 2, "the fixture study changed: pick one again (see the fixture's comment)"
    assert sum(x.lesion_class is LesionClass.MALIGNANT for b in back for x in b.lesions) == malignant
    data["categories"].append({"id": 3, "name": "mass"})
    json_path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="category_map"):
        read_dataset("coco", json_path)
    assert len(read_dataset("coco", json_path, category_map={"mass": "benign"})) == 4


CBIS_COLUMNS = ["patient_id", "breast density", "left or right breast", "image view", "abnormality id",
                "abnormality type", "calc type", "calc distribution", "assessment", "pathology", "subtlety",
                "image file path", "cropped image file path", "ROI mask file path"]


def test_cbis_ddsm_masks_tcia_layout_and_calc_filter(tmp_path: Path, study: SynthStudy) -> None:
    root, rows = tmp_path / "cbis", []
    expected: dict[Path, list[tuple[tuple[float, float, float, float], LesionClass]]] = {}
    pathologies = {LesionClass.MALIGNANT: ["MALIGNANT"], LesionClass.BENIGN: ["BENIGN", "BENIGN_WITHOUT_CALLBACK"]}
    for ds, ann in lesion_images(study):
        side = "LEFT" if ann.laterality == "L" else "RIGHT"
        subject = f"Calc-Training_P_00003_{side}_{ann.view}"
        full = save(ds, root / "CBIS-DDSM" / subject / "07-20-2016-DDSM-74994" / "1.000000-full mammogram images-24515"
                    / "1-1.dcm")
        expected[full] = []
        for k, les in enumerate(ann.lesions, start=1):
            x1, y1, x2, y2 = int_box(les.box)
            mask = np.zeros((ds.Rows, ds.Columns), np.uint8)
            mask[y1:y2 + 1, x1:x2 + 1] = 255
            crop = ds.pixel_array[y1:y2 + 1, x1:x2 + 1]
            series = root / "CBIS-DDSM" / f"{subject}_{k}" / "09-06-2017-DDSM-11111" / "1.000000-ROI mask images-2"
            # The mask and the cropped image come in either order in the real download.
            names = ("1-1.dcm", "1-2.dcm") if k % 2 else ("1-2.dcm", "1-1.dcm")
            save(_gray(mask, ds), series / names[0])
            save(_gray(crop, ds), series / names[1])
            expected[full].append(((x1 - 0.5, y1 - 0.5, x2 + 0.5, y2 + 0.5), les.lesion_class))
            pathology = pathologies[les.lesion_class][k % len(pathologies[les.lesion_class])]
            uid = f"1.3.6.1.4.1.9590.100.1.2.{k}"
            rows.append(["P_00003", "2", side, ann.view, str(k), "calcification", "PLEOMORPHIC", "CLUSTERED", "4",
                         pathology, "3", f"{subject}/{uid}/{uid}1/000000.dcm", f"{subject}_{k}/{uid}/{uid}2/000000.dcm",
                         f"{subject}_{k}/{uid}/{uid}2/000001.dcm\n"])
    _write_csv(root / "calc_case_description_train_set.csv", CBIS_COLUMNS, rows)
    mass_cols = [c.replace("breast density", "breast_density").replace("calc type", "mass shape")
                 .replace("calc distribution", "mass margins") for c in CBIS_COLUMNS]
    mass_row = list(rows[0])
    mass_row[5], mass_row[9] = "mass", "MALIGNANT"
    _write_csv(root / "mass_case_description_train_set.csv", mass_cols, [mass_row])
    images = read_dataset("cbis-ddsm", root)
    assert {img.image_path for img in images} == set(expected)
    for img in images:
        got = sorted((les.box, les.lesion_class) for les in img.lesions)
        assert got == sorted(expected[img.image_path])
        assert img.breast_id == f"P_00003_{img.laterality}" and img.view in ("CC", "MLO")
    assert {img.laterality: img.malignant for img in images} == {"R": False, "L": True}
    with_mass = read_dataset("cbis-ddsm", root, calc_only=False)
    n = sum(len(i.lesions) for i in images)
    assert sum(len(i.lesions) for i in with_mass) == n + 1
    assert any("mass" in les.description for i in with_mass for les in i.lesions)


def _gray(pixels: np.ndarray, like: Dataset) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, generate_uid(entropy_srcs=[like.SOPInstanceUID, str(pixels.shape)])
    ds.Modality = "MG"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    ds.file_meta = like.file_meta.__class__()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    return ds


def _write_csv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)


def test_inbreast_plist_rois_and_birads_mapping(tmp_path: Path, study: SynthStudy) -> None:
    root = tmp_path / "INbreast Release 1.0"
    table, clusters = [], {}
    for n, (ds, ann) in enumerate(zip(study.datasets, study.annotations, strict=True)):
        file_id = f"5000{n}"
        save(ds, root / "AllDICOMs" / f"{file_id}_a1b2c3d4e5f60718_MG_{ann.laterality}_{ann.view}_ANON.dcm")
        birads = "4c" if ann.malignant else ("2" if ann.lesions else "1")
        table.append(["removed", "60", ann.laterality, ann.view, "201001", file_id, "2", birads])
        rois = []
        for les in ann.lesions:
            x1, y1, x2, y2 = les.box
            rois.append({"Name": "Cluster", "NumberOfPoints": 4, "Point_px": [f"({x1}, {y1})", f"({x2}, {y1})",
                                                                             f"({x2}, {y2})", f"({x1}, {y2})"]})
            rois.append({"Name": "Calcification", "NumberOfPoints": 1, "Point_px": [f"({x1 + 3}, {y1 + 3})"]})
        rois.append({"Name": "Mass", "NumberOfPoints": 3, "Point_px": ["(10, 10)", "(30, 10)", "(20, 40)"]})
        clusters[ann.laterality + ann.view] = ann
        (root / "AllXML").mkdir(exist_ok=True)
        with (root / "AllXML" / f"{file_id}.xml").open("wb") as fh:
            plistlib.dump({"Images": [{"ImageIndex": 0, "NumberOfROIs": len(rois), "ROIs": rois}]}, fh)
    _write_csv(root / "INbreast.csv", ["Patient ID", "Patient age", "Laterality", "View", "Acquisition date",
                                       "File Name", "ACR", "Bi-Rads"], table, delimiter=";")
    images = read_dataset("inbreast", root.parent / "INbreast Release 1.0")
    assert len(images) == 4
    for img in images:
        ann = clusters[img.laterality + img.view]
        assert img.breast_id == f"a1b2c3d4e5f60718_{img.laterality}"
        assert np.allclose([x.box for x in img.lesions], [x.box for x in ann.lesions]) if ann.lesions else not img.lesions
        assert all(x.lesion_class is (LesionClass.MALIGNANT if ann.malignant else LesionClass.BENIGN)
                   for x in img.lesions)
    single = read_dataset("inbreast", root, calc_mode="individual")
    for img in single:
        for les in img.lesions:  # a single point gets a box of ±0.5 mm: 2 px at 0.5 mm spacing
            assert les.box[2] - les.box[0] == pytest.approx(1.0 / 0.5)
    strict = read_dataset("inbreast", root, malignant_birads=5)
    assert not any(img.malignant for img in strict)
    every = read_dataset("inbreast", root, all_findings=True)
    assert sum(len(i.lesions) for i in every) == sum(len(i.lesions) for i in images) * 2 + 4


VINDR_COLUMNS = ["study_id", "series_id", "image_id", "laterality", "view_position", "height", "width",
                 "breast_birads", "breast_density", "finding_categories", "finding_birads", "xmin", "ymin", "xmax",
                 "ymax", "split"]


def test_vindr_csv_birads_and_filters(tmp_path: Path, study: SynthStudy) -> None:
    root, rows = tmp_path / "vindr", []
    for n, (ds, ann) in enumerate(zip(study.datasets, study.annotations, strict=True)):
        image_id = f"img{n}"
        save(ds, root / "images" / "studyA" / f"{image_id}.dicom")
        base = ["studyA", "seriesA", image_id, ann.laterality, ann.view, str(ds.Rows), str(ds.Columns),
                "BI-RADS 4", "DENSITY C"]
        split = "test" if ann.laterality == "L" else "training"
        if not ann.lesions:
            rows.append(base + ["['No Finding']", "", "", "", "", "", split])
        for les in ann.lesions:
            birads = "BI-RADS 4" if les.lesion_class is LesionClass.MALIGNANT else "BI-RADS 2"
            rows.append(base + ["['Suspicious Calcification']", birads, *map(str, les.box), split])
        rows.append(base + ["['Mass', 'Architectural Distortion']", "BI-RADS 5", "5", "5", "25", "25", split])
    _write_csv(root / "finding_annotations.csv", VINDR_COLUMNS, rows)
    images = read_dataset("vindr", root)
    assert len(images) == 4
    by_view = {(a.laterality, a.view): a for a in study.annotations}
    for img in images:
        ann = by_view[(img.laterality, img.view)]
        assert img.image_path.name.endswith(".dicom") and img.image_path.exists()
        assert [x.lesion_class for x in img.lesions] == [x.lesion_class for x in ann.lesions]
        assert np.allclose([x.box for x in img.lesions], [x.box for x in ann.lesions]) if ann.lesions else not img.lesions
        assert img.breast_id == f"studyA_{img.laterality}"
    everything = read_dataset("vindr", root, calc_only=False)
    assert sum(len(i.lesions) for i in everything) == sum(len(i.lesions) for i in images) + 4
    assert all(i.malignant for i in everything)  # the BI-RADS 5 mass on every image
    assert {i.laterality for i in read_dataset("vindr", root, split="test")} == {"L"}
    assert not any(i.malignant for i in read_dataset("vindr", root, malignant_birads=5))


def test_mias_info_txt_origin_and_laterality(tmp_path: Path, study: SynthStudy) -> None:
    root = tmp_path / "mias"
    root.mkdir()
    ds = study.datasets[1]
    small = (ds.pixel_array.astype(np.float64) / ((1 << ds.BitsStored) - 1) * 255).astype(np.uint8)
    for ref in ("mdb001", "mdb002", "mdb003", "mdb004"):
        Image.fromarray(small).resize((1024, 1024)).save(root / f"{ref}.pgm")
    (root / "Info.txt").write_text(
        "REFNUM BG CLASS SEVERITY X Y RADIUS\n"
        "mdb001 G CALC M 300 700 40\n"
        "mdb001 G CALC B 1000 20 30\n"
        "mdb002 F NORM\n"
        "mdb003 D CIRC B 535 425 197\n"
        "mdb004 G CALC B\n")
    images = {i.extra["refnum"]: i for i in read_dataset("mias", root)}
    assert set(images) == {"mdb001", "mdb002", "mdb003"}  # mdb004: CALC without coordinates
    first = images["mdb001"]
    # The database README: "left (even filename numbers) and right mammograms (odd filename numbers)".
    assert first.laterality == "R" and images["mdb002"].laterality == "L" and first.view == "MLO"
    assert first.breast_id == "mias_001_R" and images["mdb002"].breast_id == "mias_001_L"
    flipped = {i.extra["refnum"]: i for i in read_dataset("mias", root, odd_is_left=True)}
    assert flipped["mdb001"].laterality == "L" and flipped["mdb002"].breast_id == "mias_001_R"
    assert first.pixel_spacing_mm == 0.2 and first.image_path == root / "mdb001.pgm"
    assert first.lesions[0].box == (260.0, 284.0, 340.0, 364.0)  # row = 1024 - 700
    assert first.lesions[1].box == (970.0, 974.0, 1023.0, 1023.0)  # clipped at the image edge
    assert [x.lesion_class for x in first.lesions] == [LesionClass.MALIGNANT, LesionClass.BENIGN]
    assert images["mdb003"].lesions == () and not images["mdb003"].malignant  # mass ignored: calc only
    with_masses = {i.extra["refnum"]: i for i in read_dataset("mias", root / "Info.txt", calc_only=False)}
    assert with_masses["mdb003"].lesions[0].box == (338.0, 402.0, 732.0, 796.0)
    assert len(read_dataset("mini-mias", root, skip_unlocalised=False)) == 4


def test_mias_patient_is_the_pair_of_films() -> None:
    """The pairing rule, in one place: the reader's breast_id and the realism report's exams use it."""
    from mammocad.model.readers import mias

    assert mias.patient(1) == mias.patient(2) == "mias_001"
    assert mias.patient(3) == "mias_002" and mias.patient(322) == "mias_161"
    with pytest.raises(ValueError, match="starts at 1"):
        mias.patient(0)


def test_inbreast_without_alldicoms_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "INbreast").mkdir()
    with pytest.raises(FileNotFoundError, match="AllDICOMs folder not found"):
        read_dataset("inbreast", tmp_path / "INbreast")
