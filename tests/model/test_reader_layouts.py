"""Public data set folders laid out *almost* as published: each reader skips with a count or says what is wrong.

Copies of public sets differ from the published layout: a file renamed to upper case or saved
with another extension, an image the list names but the download lacks, an empty annotation
file, a CSV with an extra column. A reader must not crash with a traceback, nor return no
images without a word; the fixtures below are small synthetic versions of each layout.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from mammocad.model.annotations import AnnotatedImage
from mammocad.model.readers import read_dataset
from mammocad.model.readers.coco import write_coco
from mammocad.model.synth import generate_study
from mammocad.model.synth.generate import SynthStudy


@pytest.fixture(scope="module")
def study() -> SynthStudy:
    return generate_study(5, seed=360, spacing_mm=0.5)  # as tests/model/test_readers.py: lesions on 3 views


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def missing_counts(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int]]:
    return [(r.__dict__["missing"], r.__dict__["listed"]) for r in caplog.records
            if r.getMessage() == "dataset_images_missing"]


def _coco(tmp_path: Path, study: SynthStudy) -> Path:
    images = []
    for ds, ann in zip(study.datasets, study.annotations, strict=True):
        path = save(ds, tmp_path / "img" / f"{ann.laterality}{ann.view}.dcm")
        images.append(AnnotatedImage(image_path=path, laterality=ann.laterality, view=ann.view,
                                     breast_id=ann.breast_id, lesions=ann.lesions))
    return write_coco(images, tmp_path / "coco.json")


def test_coco_finds_renamed_images_skips_missing_ones_and_names_a_broken_file(
        tmp_path: Path, study: SynthStudy, caplog: pytest.LogCaptureFixture) -> None:
    json_path = _coco(tmp_path, study)
    (tmp_path / "img" / "RCC.dcm").rename(tmp_path / "img" / "RCC.DCM")
    (tmp_path / "img" / "LMLO.dcm").unlink()
    data = json.loads(json_path.read_text())
    data["images"][0]["extra column"] = "ignored"
    json_path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        images = read_dataset("coco", json_path)
    assert sorted(i.image_path.name for i in images) == ["LCC.dcm", "RCC.DCM", "RMLO.dcm"]
    assert missing_counts(caplog) == [(1, 4)]
    assert any(i.lesions for i in images if i.laterality == "L")
    for path in (tmp_path / "img").iterdir():
        path.unlink()
    with pytest.raises(FileNotFoundError, match="none of the 4 images .*coco.json lists was found"):
        read_dataset("coco", json_path)
    json_path.write_text("")
    with pytest.raises(ValueError, match="coco.json: not a JSON file"):
        read_dataset("coco", json_path)
    json_path.write_text(json.dumps({**data, "annotations": [{"id": 7, "image_id": 1, "category_id": 1}]}))
    with pytest.raises(ValueError, match="annotation 7 has no bbox"):
        read_dataset("coco", json_path)


VINDR_COLUMNS = ["study_id", "series_id", "image_id", "laterality", "view_position", "height", "width",
                 "breast_birads", "breast_density", "finding_categories", "finding_birads", "xmin", "ymin", "xmax",
                 "ymax", "split", "an extra column"]


def test_vindr_finds_images_saved_as_dcm_skips_missing_ones_and_names_an_unknown_split(
        tmp_path: Path, study: SynthStudy, caplog: pytest.LogCaptureFixture) -> None:
    root, rows = tmp_path / "vindr", []
    names = ["img0.DCM", "img1.dicom", "img2.dcm", None]  # img3: listed, not downloaded
    for n, (ds, ann) in enumerate(zip(study.datasets, study.annotations, strict=True)):
        if names[n]:
            save(ds, root / "images" / "studyA" / str(names[n]))
        base = ["studyA", "seriesA", f"img{n}", ann.laterality, ann.view, str(ds.Rows), str(ds.Columns),
                "BI-RADS 4", "DENSITY C"]
        rows += [base + ["['Suspicious Calcification']", "BI-RADS 4", *map(str, les.box), "training", "x"]
                 for les in ann.lesions] or [base + ["['No Finding']", "", "", "", "", "", "training", "x"]]
    _write_csv(root / "finding_annotations.csv", VINDR_COLUMNS, rows)
    with caplog.at_level(logging.WARNING):
        images = read_dataset("vindr", root)
    assert sorted(i.image_path.name for i in images) == ["img0.DCM", "img1.dicom", "img2.dcm"]
    assert missing_counts(caplog) == [(1, 4)]
    with pytest.raises(ValueError, match=r"no rows of split 'train'; its split column holds \['training'\]"):
        read_dataset("vindr", root, split="train")
    _write_csv(root / "finding_annotations.csv", VINDR_COLUMNS, [])
    with pytest.raises(ValueError, match="finding_annotations.csv holds no rows"):
        read_dataset("vindr", root)


def _write_csv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)


def test_mias_finds_upper_case_and_png_copies_and_skips_missing_images(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import numpy as np
    from PIL import Image

    root = tmp_path / "mias"
    root.mkdir()
    film = Image.fromarray(np.full((1024, 1024), 90, np.uint8))
    film.save(root / "MDB001.PGM")
    film.save(root / "mdb002.png")  # a copy converted to PNG
    (root / "INFO.TXT").write_text("mdb001 G CALC M 300 700 40 extra words\nmdb002 F NORM\nmdb003 F NORM\n")
    with caplog.at_level(logging.WARNING):
        images = read_dataset("mias", root)
    assert [i.image_path.name for i in images] == ["MDB001.PGM", "mdb002.png"]
    assert images[0].lesions and missing_counts(caplog) == [(1, 3)]
    for path in (root / "MDB001.PGM", root / "mdb002.png"):
        path.unlink()
    with pytest.raises(FileNotFoundError, match="none of the 3 images .*INFO.TXT lists was found"):
        read_dataset("mias", root)


def test_inbreast_reads_upper_case_files_and_skips_images_without_a_row_or_a_readable_xml(
        tmp_path: Path, study: SynthStudy, caplog: pytest.LogCaptureFixture) -> None:
    import plistlib

    root, table = tmp_path / "INbreast", []
    for n, (ds, ann) in enumerate(zip(study.datasets, study.annotations, strict=True)):
        file_id = f"5000{n}"
        suffix = ".DCM" if n == 0 else ".dcm"
        save(ds, root / "AllDICOMs" / f"{file_id}_a1b2c3d4e5f60718_MG_{ann.laterality}_{ann.view}_ANON{suffix}")
        if n != 3:  # 50003: no row in the table
            table.append([file_id, ann.laterality, ann.view, "4c" if ann.malignant else "2", "x"])
        (root / "AllXML").mkdir(exist_ok=True)
        rois = [{"Name": "Cluster", "Point_px": [f"({les.box[0]}, {les.box[1]})", f"({les.box[2]}, {les.box[3]})"]}
                for les in ann.lesions]
        xml = root / "AllXML" / f"{file_id}.xml"
        if n == 2:
            xml.write_bytes(b"")  # an empty annotation file
        else:
            with xml.open("wb") as fh:
                plistlib.dump({"Images": [{"ROIs": rois}]}, fh)
    header = ["File Name", "Laterality", "View", "Bi-Rads", "an extra column"]
    _write_csv(root / "INbreast.csv", header, table, delimiter=";")
    with caplog.at_level(logging.WARNING):
        images = read_dataset("inbreast", root)
    assert sorted(i.extra["file_id"] for i in images) == ["50000", "50001"]
    (skipped,) = [r.__dict__ for r in caplog.records if r.getMessage() == "inbreast_images_skipped"]
    assert (skipped["not_in_table"], skipped["unreadable_xml"], skipped["kept"]) == (1, 1, 2)
    _write_csv(root / "INbreast.csv", ["Filename", "Bi-Rads"], [])
    with pytest.raises(ValueError, match=r"missing INbreast columns \['file name'\]"):
        read_dataset("inbreast", root)
    (root / "INbreast.csv").write_text("")
    with pytest.raises(ValueError, match="INbreast.csv is empty"):
        read_dataset("inbreast", root)


def test_cbis_ddsm_reads_upper_case_files_counts_missing_images_and_names_bad_values(
        tmp_path: Path, study: SynthStudy, caplog: pytest.LogCaptureFixture) -> None:
    import numpy as np

    from tests.model.test_readers import CBIS_COLUMNS, _gray

    root, rows = tmp_path / "cbis", []
    for k, (ds, ann) in enumerate(zip(study.datasets, study.annotations, strict=True)):
        side = "LEFT" if ann.laterality == "L" else "RIGHT"
        subject = f"Calc-Training_P_0000{k}_{side}_{ann.view}"
        if k != 3:  # the last subject is listed but not downloaded
            save(ds, root / "CBIS-DDSM" / subject / "study" / "series" / "1-1.DCM")
        mask = np.zeros((ds.Rows, ds.Columns), np.uint8)
        mask[10:20, 10:20] = 255
        save(_gray(mask, ds), root / "CBIS-DDSM" / f"{subject}_1" / "study" / "series" / "1-1.DCM")
        rows.append([f"P_0000{k}", "2", side, ann.view, "1", "calcification", "PLEOMORPHIC", "CLUSTERED", "4",
                     "MALIGNANT", "3", f"{subject}/1.2/1.3/000000.dcm", f"{subject}_1/1.2/1.4/000000.dcm",
                     f"{subject}_1/1.2/1.4/000001.dcm", "an extra value"])
    _write_csv(root / "calc_case_description_train_set.csv", [*CBIS_COLUMNS, "extra"], rows)
    with caplog.at_level(logging.WARNING):
        images = read_dataset("cbis-ddsm", root)
    assert len(images) == 3 and all(len(i.lesions) == 1 for i in images)
    assert missing_counts(caplog) == [(1, 4)]
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'training'"):
        read_dataset("cbis-ddsm", root, split="training")
    rows[0][9] = "BENIGN WITHOUT CALLBACK"
    _write_csv(root / "calc_case_description_train_set.csv", [*CBIS_COLUMNS, "extra"], rows)
    with pytest.raises(ValueError, match=r"unknown pathology \['BENIGN WITHOUT CALLBACK'\]"):
        read_dataset("cbis-ddsm", root)
    _write_csv(root / "calc_case_description_train_set.csv", CBIS_COLUMNS, [])
    with pytest.raises(ValueError, match="hold no rows"):
        read_dataset("cbis-ddsm", root)
