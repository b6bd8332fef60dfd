"""Measure the CPU inference candidates the shipped backend was chosen among.

``python -m workstation.training.speed_candidates [--count N]`` prints, on N test-split
slices (prepared as the app does), the network time per slice with 2 threads and the
largest probability difference from the torch network of:

- torch, batch norms folded (the torch backend);
- ONNX Runtime on the shipped graph (the onnxruntime backend: archive fp16 weights kept
  exactly, batch norms folded by ONNX Runtime in float32);
- ONNX Runtime on a graph whose weights are folded first and then stored as float16 (half
  the file, but folding makes values float16 cannot hold);
- ONNX Runtime with int8 dynamic quantization of the shipped graph.

A candidate is usable only where the largest difference stays <= 1e-3.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from workstation.analysis.preprocess import prepare


def _test_inputs(datasets: Path, cache: Path, count: int) -> np.ndarray:
    from workstation.commands.training import EXCLUSIONS
    from workstation.training.manifest import Manifest
    from workstation.training.sources import all_items_for

    manifest = Manifest.load(cache, exclusions=EXCLUSIONS)
    rng = np.random.default_rng(0)
    test = [r for r in manifest.rows if r["split"] == "test"]
    chosen = {r["uid"] for r in rng.permutation(np.array(test, dtype=object))[:count]}
    items = all_items_for(datasets, cache, chosen)
    return np.stack([prepare(np.asarray(i.image)).image for i in items])[:, None]


def _timed(run: Any, inputs: np.ndarray, batch: int = 32, repeats: int = 3
           ) -> tuple[np.ndarray, float]:
    run(inputs[:batch])
    best, logits = float("inf"), np.empty(0)
    for _ in range(repeats):
        started = time.perf_counter()
        logits = np.concatenate([run(inputs[k:k + batch]) for k in range(0, len(inputs), batch)])
        best = min(best, time.perf_counter() - started)
    return logits, 1000 * best / len(inputs)


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"grey": x})[0]  # every head runs; logits first


def measure(datasets: Path, cache: Path, count: int) -> dict[str, Any]:
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from workstation.analysis.engine import Engine
    from workstation.analysis.onnx_backend import OUTPUTS
    from workstation.training.onnx_export import _Graph, _store_half

    inputs = _test_inputs(datasets, cache, count)
    engine = Engine(device="cpu", threads=2, backend="torch")
    info = engine.info
    assert info.onnx is not None, "the shipped model has no ONNX graph"
    temperature = engine.calibration.temperature

    def probabilities(logits: np.ndarray) -> np.ndarray:
        return torch.softmax(torch.from_numpy(logits) / temperature, 1).numpy()

    backend = engine.torch_backend()  # its run: every head, as the app runs them

    def torch_run(x: np.ndarray) -> np.ndarray:
        return backend.run(x)["logits"]

    reference, torch_ms = _timed(torch_run, inputs)
    report: dict[str, Any] = {"slices": len(inputs), "threads": 2,
                              "torch_folded": {"ms_per_slice": round(torch_ms, 2)}}
    with tempfile.TemporaryDirectory() as folder:
        folded = Path(folder) / "folded.onnx"
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # the shipped graph's outputs, from the folded networks (so the times compare)
        graph = _Graph(engine.inference_net, engine.reference).eval()
        torch.onnx.export(graph, (torch.from_numpy(inputs[:2]),), str(folded), dynamo=False,
                          input_names=["grey"], output_names=list(OUTPUTS),
                          dynamic_axes={"grey": {0: "batch"}}, opset_version=17)
        half = Path(folder) / "folded_half.onnx"
        model = onnx.load(str(folded))
        for initializer in model.graph.initializer:  # round, so _store_half keeps them
            values = onnx.numpy_helper.to_array(initializer)
            if values.dtype == np.float32 and values.size >= 16:
                initializer.CopyFrom(onnx.numpy_helper.from_array(
                    values.astype(np.float16).astype(np.float32), initializer.name))
        onnx.save(_store_half(model), str(half))
        import onnxruntime as ort

        # quantization wants plain weights: the graph after ONNX Runtime's basic
        # optimisation (float16 casts folded away, batch norms folded into convolutions)
        plain = Path(folder) / "plain.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(plain)
        ort.InferenceSession(str(info.onnx.graph), options, providers=["CPUExecutionProvider"])
        int8 = Path(folder) / "int8.onnx"
        quantize_dynamic(str(plain), str(int8), weight_type=QuantType.QUInt8)
        for name, path in (("onnxruntime_shipped_graph", info.onnx.graph),
                           ("onnxruntime_folded_fp16_weights", half),
                           ("onnxruntime_int8_dynamic", int8)):
            logits, ms = _timed(_session(path), inputs)
            difference = float(np.abs(probabilities(logits) - probabilities(reference)).max())
            report[name] = {"ms_per_slice": round(ms, 2),
                            "largest_probability_difference": float(f"{difference:.2e}"),
                            "class_changes": int((logits.argmax(1)
                                                  != reference.argmax(1)).sum()),
                            "outputs_hold": difference <= 1e-3}
    return report


def main() -> None:
    from workstation.cli import _default_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(_default_data()))
    parser.add_argument("--cache", type=Path, default=Path("cache"))
    parser.add_argument("--count", type=int, default=128)
    args = parser.parse_args()
    print(json.dumps(measure(args.data, args.cache, args.count), indent=2))


if __name__ == "__main__":
    main()
