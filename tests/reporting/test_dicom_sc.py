"""Key images as Secondary Capture: outline and decision-support label burnt in."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from tests.reporting.dicom_cases import GE, dciodvfy_errors, triaged
from workstation.analysis.findings import SeriesVerdict
from workstation.reporting.dicom_export import write_dataset
from workstation.reporting.dicom_sc import LABEL, build_key_image, key_image_picture
from workstation.reporting.dicom_source import SourceImage, source_images


@pytest.fixture(scope="module")
def tumour_image(datasets: Path) -> tuple[SeriesVerdict, SourceImage]:
    result = triaged(datasets, GE, tumour=[6])
    verdict = result.verdicts[0]
    images = source_images(verdict)
    return verdict, next(s for s in images if (s.finding.mask >= 0.5).any())


def test_the_key_image_carries_outline_label_and_references(
        tumour_image: tuple[SeriesVerdict, SourceImage], tmp_path: Path) -> None:
    verdict, source = tumour_image
    sc = build_key_image(verdict, source, "1.2.826.0.1.3680043.10.1.1", 1)
    ds = pydicom.dcmread(write_dataset(sc, tmp_path / "sc.dcm"))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert ds.BurnedInAnnotation == "YES"
    assert ds.PhotometricInterpretation == "RGB"
    assert ds.StudyInstanceUID == source.dataset.StudyInstanceUID
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == source.dataset.SOPInstanceUID
    assert LABEL in ds.ImageComments and "Tumour suspected" in ds.ImageComments
    pixels = ds.pixel_array
    picture = np.asarray(key_image_picture(verdict, source.finding))
    assert np.array_equal(pixels, picture)
    # the label band on top is black with white letters; the outline is pure white
    band = pixels[:40]
    assert (band == 255).all(axis=2).any() and (band == 0).all(axis=2).mean() > 0.5
    plain = np.asarray(key_image_picture(
        verdict, replace(source.finding, mask=np.zeros_like(source.finding.mask))))
    changed = (pixels != plain).any(axis=2)
    assert changed.sum() > 50, "the suspect region's outline is missing"
    line = pixels[changed]
    assert ((line == 255).all(axis=1) | (line == 0).all(axis=1)).all()  # white line, black rim
    Image.fromarray(pixels).save(tmp_path / "key_image.png")  # to look at by hand


@pytest.mark.skipif(shutil.which("dciodvfy") is None,
                    reason="dciodvfy is not installed (Debian package 'dicom3tools')")
def test_dciodvfy_accepts_the_key_image(tumour_image: tuple[SeriesVerdict, SourceImage],
                                        tmp_path: Path) -> None:
    verdict, source = tumour_image
    path = write_dataset(build_key_image(verdict, source, "1.2.826.0.1.3680043.10.1.2", 1),
                         tmp_path / "sc.dcm")
    assert dciodvfy_errors(path) == []
