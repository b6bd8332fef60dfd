"""Export a shipped model to ONNX Runtime's form: one graph and a numpy calibration file.

The graph runs, for a batch of network inputs (B, 1, 160, 160), the triage network (class
and plane logits, pooled features), the mask decoder's logits upsampled to the input and
passed through the sigmoid, and the ImageNet reference network's features. It is exported
from the networks as trained (batch norms kept: ONNX Runtime folds them when it loads the
graph), so every weight is the archive's own float16 value, stored as float16 without loss
and computed in float32. The reference network's antialiased resize (not an ONNX operator)
is the same linear map written as two matrix products, read off torch's own resize.

The calibration file holds every other entry of the weights archive (temperature, review
threshold, novelty banks, CT check, series rule) as numpy arrays, so that the onnxruntime
backend needs no torch. Both files' sha256 and the sha256 of the weights they come from go
into the model description; the engine uses them only when that last one matches.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workstation.analysis.model_file import ModelInfo, sha256_of, verified_weights
from workstation.analysis.network import ReferenceNet, TriageNet, imagenet_input
from workstation.analysis.onnx_backend import OUTPUTS
from workstation.analysis.preprocess import INPUT_SIZE
from workstation.analysis.torch_backend import (
    TorchBackend,
    load_archive,
    reference_net,
    triage_net,
)

OPSET = 17
_STATE_KEYS = ("state_dict", "reference_state_dict")


def resize_operator(source: int, target: int) -> torch.Tensor:
    """The (target, source) matrix of torch's antialiased bilinear resize along one axis:
    resizing an image whose row i is all ones gives column i of it (the resize is linear,
    separable, and keeps constants)."""
    rows = torch.zeros(source, 1, source, source)
    for i in range(source):
        rows[i, 0, i, :] = 1.0
    out = F.interpolate(rows, size=(target, target), mode="bilinear", antialias=True,
                        align_corners=False)
    return out[:, 0, :, 0].T.contiguous()


class _Reference(nn.Module):
    rows: torch.Tensor
    columns: torch.Tensor

    def __init__(self, reference: ReferenceNet) -> None:
        super().__init__()
        self.reference = reference
        operator = resize_operator(INPUT_SIZE, reference.input_size)
        self.register_buffer("rows", operator)
        self.register_buffer("columns", operator.T.contiguous())

    def forward(self, grey: torch.Tensor) -> torch.Tensor:
        small = torch.matmul(torch.matmul(self.rows, grey), self.columns)
        backbone = self.reference.backbone
        features = backbone.forward_features(
            imagenet_input(small, self.reference.mean, self.reference.std))
        return backbone.forward_head(features, pre_logits=True)


class _Graph(nn.Module):
    def __init__(self, net: TriageNet, reference: ReferenceNet | None) -> None:
        super().__init__()
        self.net = net
        self.reference = _Reference(reference) if reference is not None else None

    def forward(self, grey: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(grey)
        masks = torch.sigmoid(F.interpolate(out.mask_logits, size=(INPUT_SIZE, INPUT_SIZE),
                                            mode="bilinear", align_corners=False))[:, 0]
        values = (out.class_logits, out.plane_logits, masks, out.features)
        if self.reference is None:
            return values
        return (*values, self.reference(grey))


def _store_half(model: Any) -> Any:
    """Keep as float16 (with a Cast to float32 in front of its users) every float32
    initializer whose values float16 holds exactly: the file halves, no value changes."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    kept, casts = [], []
    for initializer in graph.initializer:
        values = numpy_helper.to_array(initializer)
        half = values.astype(np.float16)
        if values.dtype == np.float32 and values.size >= 16 and np.array_equal(
                half.astype(np.float32), values):
            kept.append(numpy_helper.from_array(half, f"{initializer.name}__fp16"))
            casts.append(helper.make_node("Cast", [f"{initializer.name}__fp16"],
                                          [initializer.name], to=TensorProto.FLOAT))
        else:
            kept.append(initializer)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend([*casts, *nodes])
    return model


def export_graph(archive: dict[str, Any], path: Path) -> None:
    import onnx

    reference = reference_net(archive)
    graph = _Graph(triage_net(archive), reference).eval()
    names = list(OUTPUTS if reference is not None else OUTPUTS[:-1])
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(graph, (torch.rand(2, 1, INPUT_SIZE, INPUT_SIZE),),
                          buffer,  # type: ignore[arg-type]
                          dynamo=False, opset_version=OPSET, input_names=["grey"],
                          output_names=names, dynamic_axes={"grey": {0: "batch"}},
                          training=torch.onnx.TrainingMode.PRESERVE,
                          do_constant_folding=False)
    model = _store_half(onnx.load_from_string(buffer.getvalue()))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def export_calibration(archive: dict[str, Any], path: Path) -> None:
    """Every archive entry but the network weights, as numpy arrays (no pickles)."""
    arrays: dict[str, np.ndarray] = {}
    for key, value in archive.items():
        if key in _STATE_KEYS:
            continue
        arrays[key] = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        if arrays[key].dtype == object:
            raise ValueError(f"archive entry {key} is not a plain number, text or array")
    with path.open("wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]


def largest_difference(archive: dict[str, Any], graph: Path, images: np.ndarray
                       ) -> dict[str, float]:
    """Largest absolute difference of each output between the torch backend and the graph
    on ``images`` (B, 1, H, W); probabilities at the archive's temperature."""
    from workstation.analysis.onnx_backend import OnnxBackend

    torch_out = TorchBackend(archive, "cpu").run(images)
    onnx_out = OnnxBackend(graph).run(images)
    temperature = float(archive["temperature"])

    def probabilities(logits: np.ndarray) -> np.ndarray:
        return torch.softmax(torch.from_numpy(logits) / temperature, 1).numpy()

    report = {"probabilities": float(np.abs(probabilities(torch_out["logits"])
                                            - probabilities(onnx_out["logits"])).max())}
    for key, value in torch_out.items():
        report[key] = float(np.abs(value - onnx_out[key]).max())
    return report


def check_images(count: int = 16, seed: int = 0) -> np.ndarray:
    """Network inputs to compare the backends on at export: smooth random images in [0, 1]
    (the real-slice comparison is a test: tests/analysis/test_onnx_backend.py)."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((count, 1, 10, 10), dtype=np.float32))
    return F.interpolate(coarse, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                         align_corners=False).numpy()


def add_onnx(description_path: Path) -> dict[str, Any]:
    """Export the model ``description_path`` names to ``<name>.onnx`` and
    ``<name>.calibration.npz`` beside it and record them in the description."""
    info = ModelInfo.load(description_path)
    archive = load_archive(verified_weights(info))
    folder = description_path.parent
    graph, calibration = folder / f"{info.name}.onnx", folder / f"{info.name}.calibration.npz"
    export_graph(archive, graph)
    export_calibration(archive, calibration)
    differences = largest_difference(archive, graph, check_images())
    description = json.loads(description_path.read_text())
    description["onnx"] = {
        "file": graph.name, "sha256": sha256_of(graph),
        "calibration": calibration.name, "calibration_sha256": sha256_of(calibration),
        "from_weights_sha256": info.sha256, "opset": OPSET,
        "export_check": {"images": 16, "largest_difference": {
            k: float(f"{v:.2e}") for k, v in differences.items()}},
    }
    description_path.write_text(json.dumps(description, indent=2) + "\n")
    return description
