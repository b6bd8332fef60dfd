"""``workstation triage`` on real data: the documented JSON and the mask files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workstation.analysis.model_file import default_description

pytestmark = pytest.mark.skipif(not default_description().is_file(), reason="no shipped model")

SLICE_KEYS = {"index", "volume", "file", "probabilities", "predicted_class", "verdict", "plane",
              "plane_probabilities", "review_reasons", "ood_score", "reference_ood_score",
              "mask_area_px", "peak"}
SERIES_KEYS = {"source", "series_uid", "description", "modality", "plane", "plane_source",
               "verdict", "predicted_class", "confidence", "review_reasons", "assessed_on",
               "decided_by", "tumour_images", "series_suspicion",
               "volumes", "slices"}
VOLUME_KEYS = {"index", "label", "first_slice", "slice_count", "anatomical", "assessed",
               "not_assessed_reason"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workstation", "triage", *args],
                          capture_output=True, text=True, timeout=600, check=False)


def test_json_document_and_masks(datasets: Path, tmp_path: Path) -> None:
    images = datasets / "figshare_cheng" / "images"
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    result = run(str(images / "0001.jpg"), str(images / "0002.jpg"),
                 str(datasets / "dicom" / "siemens_epi_axial" / "mr_0003"), str(junk),
                 "--json", "--masks-dir", str(tmp_path / "masks"), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) >= {"model", "device", "series", "errors"}
    assert len(document["model"]["sha256"]) == 64 and document["device"] == "cpu"
    assert [e["path"].endswith("junk.png") for e in document["errors"]] == [True]
    assert len(document["series"]) == 3
    for series in document["series"]:
        assert set(series) == SERIES_KEYS
        assert series["verdict"] in {"tumour", "no_tumour", "review", "cannot_assess"}
        for s in series["slices"]:
            assert set(s) == SLICE_KEYS
            assert set(s["probabilities"]) == {"glioma", "meningioma", "pituitary", "no_tumour"}
    by_source = {Path(s["source"]).name: s for s in document["series"]}
    dicom = by_source["mr_0003"]
    assert dicom["plane_source"] == "dicom" and dicom["plane"] == "axial"
    # two time points of 5 slices: the model reads the first, the JSON lists both
    assert all(set(v) == VOLUME_KEYS for v in dicom["volumes"])
    assert [(v["label"], v["slice_count"], v["assessed"]) for v in dicom["volumes"]] == [
        ("time point 1", 5, True), ("time point 2", 5, False)]
    assert [s["index"] for s in dicom["slices"]] == [0, 1, 2, 3, 4]
    assert {s["volume"] for s in dicom["slices"]} == {0}
    assert "volume 1 (time point 1) of 2 volumes" in dicom["assessed_on"]
    assert by_source["0001.jpg"]["assessed_on"] is None
    assert by_source["0001.jpg"]["plane_source"] == "model"
    masks = sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert "0001.png" in masks and "0002.png" in masks and "3_0.png" in masks
    mask = Image.open(tmp_path / "masks" / "0001.png")
    assert mask.size == Image.open(images / "0001.jpg").size
    assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}


def test_a_tumour_slice_is_not_cleared(datasets: Path) -> None:
    images = datasets / "figshare_cheng"
    result = run(str(images / "images" / "0001.jpg"), "--json", "--device", "cpu")
    document = json.loads(result.stdout)
    (series,) = document["series"]
    assert series["verdict"] in {"tumour", "review"}
    assert series["verdict"] != "no_tumour"
