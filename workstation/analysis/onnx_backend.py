"""The network in ONNX Runtime: the CPU inference path, without torch.

The graph (``models/<name>.onnx``) is exported from the weights archive by
``workstation train --onnx-only`` (workstation/training/onnx_export.py) and holds the
triage network, the mask upsampling and the reference network in one graph; its weights are
the archive's own float16 values (exact), computed in float32. The same outputs as the
torch backend to float rounding: tests/analysis/test_onnx_backend.py compares them on real
slices.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

NAME = "onnxruntime"
OUTPUTS = ("logits", "plane_logits", "masks", "features", "reference_features")


class OnnxBackend:
    name = NAME
    device = "cpu"

    def __init__(self, graph: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings of the optimiser are not the user's
        self.session = ort.InferenceSession(str(graph), options,
                                            providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """(B, 1, H, W) float32 network inputs -> the raw outputs the torch backend gives."""
        values = self.session.run(self.outputs, {"grey": np.ascontiguousarray(images)})
        return {name: np.asarray(value, dtype=np.float32)
                for name, value in zip(self.outputs, values, strict=True)}


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
