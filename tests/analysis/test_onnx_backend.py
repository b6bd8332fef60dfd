"""The onnxruntime backend: the same outputs as torch, verified files, chosen only where it
can run, and no torch import on its path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workstation.analysis.model_file import ModelInfo, ModelIntegrityError, default_description

pytest.importorskip("onnxruntime")

MODEL = default_description()
needs_model = pytest.mark.skipif(not MODEL.is_file(), reason="no shipped model")


@pytest.fixture(scope="module")
def engines() -> tuple[object, object]:
    from workstation.analysis.engine import Engine

    return (Engine(device="cpu", backend="onnxruntime"), Engine(device="cpu", backend="torch"))


@needs_model
def test_shipped_graph_is_exported_from_the_shipped_weights() -> None:
    info = ModelInfo.load(MODEL)
    assert info.onnx is not None, "no ONNX graph: run workstation train --onnx-only"
    assert info.onnx.from_weights == info.sha256


@needs_model
def test_backends_agree_on_real_slices(engines: tuple, datasets: Path) -> None:
    from workstation.imaging import load_study

    fast, reference = engines
    assert (fast.backend, reference.backend) == ("onnxruntime", "torch")
    study = load_study([datasets / "figshare_cheng" / "images" / "0001.jpg",
                        datasets / "dicom" / "ge_epi_axial",
                        datasets / "normal" / "dicom" / "siemens_t1_mprage_sag_enhanced"])
    assert len(study.series) == 3, study.problems
    slices = [s for series in study.series for s in series.slices[::3]]
    assert len(slices) >= 20
    ours, theirs = fast.analyse(slices), reference.analyse(slices)
    for a, b in zip(ours, theirs, strict=True):
        assert np.abs(a.probabilities - b.probabilities).max() <= 1e-3
        assert np.abs(a.plane_probabilities - b.plane_probabilities).max() <= 1e-3
        assert np.abs(a.mask - b.mask).max() <= 1e-3
        assert abs(a.ood_score - b.ood_score) <= 1e-3
        assert abs(a.reference_ood_score - b.reference_ood_score) <= 1e-3
        assert abs(a.ct_score - b.ct_score) <= 1e-3
        assert abs(a.picture_score - b.picture_score) <= 1e-3
    assert fast.calibration.policy() == reference.calibration.policy()


@needs_model
def test_backends_give_the_same_series_verdicts(engines: tuple, datasets: Path) -> None:
    from workstation.analysis.run import triage_study
    from workstation.imaging import load_study

    study = load_study([datasets / "normal" / "dicom" / "siemens_t1_mprage_sag_enhanced"])
    assert study.series, study.problems
    fast, reference = (triage_study(study, engine) for engine in engines)
    assert len(fast.verdicts) == len(study.series)
    assert fast.backend == "onnxruntime" and reference.backend == "torch"
    for a, b in zip(fast.verdicts, reference.verdicts, strict=True):
        assert (a.verdict, a.predicted_class, a.review_reasons) == (
            b.verdict, b.predicted_class, b.review_reasons)
        assert a.confidence == pytest.approx(b.confidence, abs=1e-3)


def _copy_model(folder: Path) -> dict:
    description = json.loads(MODEL.read_text())
    for name in (MODEL.name, description["weights"], description["onnx"]["file"],
                 description["onnx"]["calibration"]):
        shutil.copy(MODEL.parent / name, folder / name)
    return description


@needs_model
def test_tampered_graph_is_refused(tmp_path: Path) -> None:
    from workstation.analysis.engine import Engine

    description = _copy_model(tmp_path)
    graph = tmp_path / description["onnx"]["file"]
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match=r"ONNX graph .* does not match"):
        Engine(tmp_path / MODEL.name, device="cpu")


@needs_model
def test_graph_of_other_weights_falls_back_to_torch(tmp_path: Path) -> None:
    from workstation.analysis.engine import choose_backend

    description = _copy_model(tmp_path)
    description["onnx"]["from_weights_sha256"] = "0" * 64
    (tmp_path / MODEL.name).write_text(json.dumps(description))
    info = ModelInfo.load(tmp_path / MODEL.name)
    assert choose_backend(info, "cpu") == "torch"
    with pytest.raises(RuntimeError, match="exported from other weights"):
        choose_backend(info, "cpu", "onnxruntime")
    del description["onnx"]
    (tmp_path / MODEL.name).write_text(json.dumps(description))
    assert choose_backend(ModelInfo.load(tmp_path / MODEL.name), "cpu") == "torch"
    with pytest.raises(RuntimeError, match="CPU only"):
        choose_backend(ModelInfo.load(MODEL), "cuda", "onnxruntime")
    with pytest.raises(ValueError, match="unknown backend"):
        choose_backend(ModelInfo.load(MODEL), "cpu", "tensorrt")


@needs_model
def test_cpu_engine_does_not_import_torch() -> None:
    code = ("import sys; from workstation.analysis.engine import Engine; "
            "e = Engine(device='cpu'); print(e.backend, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out == ["onnxruntime", "False"]


@needs_model
def test_grad_cam_still_works_on_an_onnx_engine(engines: tuple) -> None:
    from workstation.analysis.saliency import gradcam

    fast, _ = engines
    image = np.zeros((200, 200), np.float32)
    image[40:160, 50:150] = 0.7
    heat = gradcam(fast, image, 0)
    assert heat.shape == image.shape and np.isfinite(heat).all()
