"""The CPU package leaves torch out: the engine then runs ONNX Runtime on the CPU, even on a
machine with a GPU, and what needs torch says so in words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workstation.analysis import engine
from workstation.analysis.engine import FULL_INSTALL_NEEDED, choose_backend, torch_installed
from workstation.analysis.model_file import ModelInfo, default_description

MODEL = default_description()
needs_model = pytest.mark.skipif(not MODEL.is_file(), reason="no shipped model")


def test_torch_is_found_without_importing_it() -> None:
    assert torch_installed()  # the test environment is the full install


@needs_model
def test_without_torch_the_cpu_runs_onnx_even_with_a_gpu(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(engine, "torch_installed", lambda: False)
    monkeypatch.setattr(engine, "cuda_present", lambda: True)
    info = ModelInfo.load(MODEL)
    assert choose_backend(info, "auto") == "onnxruntime"
    assert choose_backend(info, "cpu") == "onnxruntime"
    for device, backend in (("cuda", "auto"), ("cpu", "torch"), ("auto", "torch")):
        with pytest.raises(RuntimeError) as refused:
            choose_backend(info, device, backend)
        assert str(refused.value) == FULL_INSTALL_NEEDED
    description = json.loads(MODEL.read_text())
    del description["onnx"]  # a model without a graph needs torch
    (tmp_path / MODEL.name).write_text(json.dumps(description))
    with pytest.raises(RuntimeError, match=r"has no ONNX graph: .*need the full install"):
        choose_backend(ModelInfo.load(tmp_path / MODEL.name), "cpu")
