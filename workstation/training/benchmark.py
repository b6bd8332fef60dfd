"""Speed and accuracy of our model beside the ``detect-tumor`` VGG16 (ONNX) peer.

Both read the same test-split images: ours through the app's path, the peer through its
own preprocessing (RGB 240x240 of the image as a PIL picture). Accuracy is on the four
classes; the peer's "notumor" is our "no_tumour".
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from workstation.analysis.engine import Engine
from workstation.analysis.findings import CLASSES
from workstation.imaging import Slice, Window
from workstation.imaging.pixels import frozen
from workstation.training.manifest import Manifest
from workstation.training.sources import all_items_for

_PEER_CLASSES = {"glioma": "glioma", "meningioma": "meningioma", "notumor": "no_tumour",
                 "pituitary": "pituitary"}


def _timed(function: Any, repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def largest_difference(a: list[Any], b: list[Any]) -> dict[str, float]:
    """The largest absolute difference between two backends' predictions of each slice."""
    def most(values: Any) -> float:
        return float(f"{max(values):.2e}")
    pairs = list(zip(a, b, strict=True))
    return {
        "probability": most(np.abs(x.probabilities - y.probabilities).max() for x, y in pairs),
        "plane_probability": most(np.abs(x.plane_probabilities - y.plane_probabilities).max()
                                  for x, y in pairs),
        "mask": most(np.abs(x.mask - y.mask).max() for x, y in pairs),
        "ood_score": most(abs(x.ood_score - y.ood_score) for x, y in pairs),
        "reference_ood_score": most(abs(x.reference_ood_score - y.reference_ood_score)
                                    for x, y in pairs),
    }


# a real DICOM series for the cold start figure (a Siemens mosaic: 2 files, 35 slices read)
COLD_SERIES = ("dicom", "siemens_epi_mosaic_orientation", "ax", "axasc35")


def cold_triage(datasets: Path, runs: int = 3) -> dict[str, Any]:
    """Wall time of a cold ``workstation triage SERIES --json`` (a new process each time:
    imports, model load, reading, analysis), median and best of ``runs``."""
    series = datasets.joinpath(*COLD_SERIES)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "workstation", "triage", str(series),
                               "--json", "--device", "cpu"], capture_output=True, text=True,
                              timeout=300, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            return {"series": "/".join(COLD_SERIES), "failed": done.stderr[-500:]}
    document = json.loads(done.stdout)
    slices = sum(len(s["slices"]) for s in document["series"])
    return {"series": "/".join(COLD_SERIES), "slices": slices,
            "backend": document["backend"], "runs": runs,
            "median_s": round(statistics.median(times), 2), "best_s": round(min(times), 2)}


def run(datasets: Path, cache: Path, description: Path | None, count: int,
        exclusions: Path | None = None) -> dict[str, Any]:
    manifest = Manifest.load(cache, exclusions=exclusions)
    # a fixed, class-stratified sample of the test split (only classes the peer knows)
    rng = np.random.default_rng(0)
    test = [r for r in manifest.rows if r["split"] == "test"]
    chosen = {r["uid"] for r in rng.permutation(np.array(test, dtype=object))[:count]}
    items = list(all_items_for(datasets, cache, chosen))
    labels = [item.label for item in items]
    slices = [Slice(frozen(i.image), frozen(i.image), Window(0.5, 1.0, "full-range"), i.uid)
              for i in items]
    import torch

    from workstation.training.train import machine

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    report: dict[str, Any] = {"slices": len(items), "machine": machine(devices[-1])}
    outputs: dict[str, list[Any]] = {}
    runs = [("cpu", "torch"), ("cpu", "onnxruntime")] + [("cuda", "torch")] * (
        "cuda" in devices)
    for device, backend in runs:
        engine = Engine(description, device=device, backend=backend,
                        threads=2 if device == "cpu" else None)
        report["model"] = {"name": engine.info.name, "version": engine.info.version,
                           "sha256": engine.info.sha256}
        engine.analyse(slices[:16])
        done: list[Any] = []
        seconds = _timed(lambda e=engine, out=done: out.append(e.analyse(slices, batch_size=32)),
                         repeats=3)
        outputs[f"{device}_{backend}"] = done[-1]
        ours = [CLASSES[int(np.argmax(p.probabilities))] for p in done[-1]]
        report[f"ours_{device}_{backend}"] = {
            "backend": engine.backend, "threads": 2 if device == "cpu" else None,
            "ms_per_slice": round(1000 * seconds / len(slices), 2),
            "slices_per_second": round(len(slices) / seconds, 1),
            "accuracy": round(float(np.mean([a == b for a, b in zip(ours, labels,
                                                                      strict=True)])), 4),
        }
    report["cpu_backends_largest_difference"] = largest_difference(
        outputs["cpu_torch"], outputs["cpu_onnxruntime"])
    report["cold_triage"] = cold_triage(datasets)

    try:
        from detect_tumor import TumorDetector
    except ImportError:
        report["detect_tumor_vgg16_cpu"] = "not installed (pip install -e '.[bench]')"
        return report
    detector = TumorDetector()
    pictures = [Image.fromarray((np.asarray(i.image) * 255).astype(np.uint8)) for i in items]
    detector.predict(pictures[0])
    peer: list[str] = []

    def predict_all() -> None:
        peer.clear()
        peer.extend(_PEER_CLASSES[detector.predict(p).predicted_class] for p in pictures)

    seconds = _timed(predict_all, repeats=1)
    report["detect_tumor_vgg16_cpu"] = {
        "ms_per_slice": round(1000 * seconds / len(items), 2),
        "slices_per_second": round(len(items) / seconds, 1),
        "accuracy": round(float(np.mean([a == b for a, b in zip(peer, labels, strict=True)])), 4),
        "note": "onnxruntime default threads; one image per call, as the package offers",
    }
    return report
