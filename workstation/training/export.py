"""Calibrate a trained checkpoint on the validation split and write the shipped model.

- temperature scaling of the class head (minimum validation NLL);
- the review threshold: the smallest p(no_tumour) that clears a slice such that no tumour
  slice of the validation split is cleared;
- out-of-distribution: a bank of training features; an image's score is its cosine distance
  to the k-th nearest of them, and the threshold the 99.5th percentile of validation scores.
Everything goes into one fp16 weights archive whose sha256 the model description records.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from workstation.analysis.model_file import sha256_of
from workstation.analysis.network import ARCHITECTURE, CLASSES, TriageNet
from workstation.analysis.ood import knn_distance, unit
from workstation.analysis.preprocess import INPUT_SIZE
from workstation.training.manifest import Manifest

OOD_BANK_SIZE = 2000
OOD_NEIGHBOURS = 10
NO_TUMOUR = CLASSES.index("no_tumour")


def network_outputs(net: TriageNet, images: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
    logits, features = [], []
    net.eval()
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(images[start:start + batch]).float().div(255)[:, None]
            out = net(x.contiguous(memory_format=torch.channels_last))
            logits.append(out.class_logits.numpy())
            features.append(out.features.numpy())
    return {"logits": np.concatenate(logits), "features": np.concatenate(features)}


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    t_logits, t_labels = torch.from_numpy(logits).float(), torch.from_numpy(labels)
    grid = np.exp(np.linspace(np.log(0.3), np.log(5.0), 200))
    losses = [float(F.cross_entropy(t_logits / t, t_labels)) for t in grid]
    return float(grid[int(np.argmin(losses))])


def softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def review_threshold(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Smallest p(no_tumour) that clears no validation tumour slice (predicted no_tumour)."""
    tumour = labels != NO_TUMOUR
    called_normal = probabilities.argmax(axis=1) == NO_TUMOUR
    dangerous = probabilities[tumour & called_normal, NO_TUMOUR]
    floor = 0.5
    return float(max(floor, dangerous.max() + 1e-4)) if dangerous.size else floor


def export(manifest: Manifest, checkpoint: Path, models_dir: Path, name: str, version: str,
           training_notes: dict[str, object]) -> dict[str, object]:
    torch.set_num_threads(2)
    net = TriageNet()
    net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    net = net.to(memory_format=torch.channels_last)
    split = np.array([r["split"] for r in manifest.rows])
    labels = np.array([CLASSES.index(r["label"]) for r in manifest.rows])
    val = np.flatnonzero(split == "val")
    train_rows = np.flatnonzero(split == "train")
    rng = np.random.default_rng(0)
    train_sample = np.sort(rng.choice(train_rows, size=min(OOD_BANK_SIZE, len(train_rows)),
                                      replace=False))

    val_out = network_outputs(net, manifest.images[val])
    temperature = fit_temperature(val_out["logits"], labels[val])
    probabilities = softmax(val_out["logits"], temperature)
    threshold = review_threshold(probabilities, labels[val])
    bank = unit(network_outputs(net, manifest.images[train_sample])["features"])
    ood_threshold = float(np.percentile(
        knn_distance(val_out["features"], bank, OOD_NEIGHBOURS), 99.5))

    archive = {
        "state_dict": {k: v.half() if v.is_floating_point() else v
                       for k, v in net.state_dict().items()},
        "temperature": temperature,
        "review_threshold": threshold,
        "ood_threshold": ood_threshold,
        "ood_bank": torch.from_numpy(bank.astype(np.float32)).half(),
        "ood_neighbours": OOD_NEIGHBOURS,
    }
    models_dir.mkdir(parents=True, exist_ok=True)
    weights = models_dir / f"{name}.pt"
    torch.save(archive, weights)
    digest = sha256_of(weights)
    (models_dir / f"{name}.pt.sha256").write_text(f"{digest}  {weights.name}\n")
    normal_val = labels[val] == NO_TUMOUR
    cleared = (probabilities.argmax(1) == NO_TUMOUR) & (probabilities[:, NO_TUMOUR] >= threshold)
    description = {
        "name": name,
        "version": version,
        "architecture": f"{ARCHITECTURE} + class/plane heads + FPN mask decoder",
        "input_size": INPUT_SIZE,
        "classes": list(CLASSES),
        "weights": weights.name,
        "sha256": digest,
        "calibration": {
            "temperature": round(temperature, 4),
            "review_threshold": round(threshold, 4),
            "ood_threshold": round(ood_threshold, 4),
            "validation_normal_slices_sent_to_review": round(
                float((normal_val & ~cleared).sum() / max(1, normal_val.sum())), 4),
            "validation_tumour_slices_cleared": int((~normal_val & cleared).sum()),
        },
        "training": training_notes,
    }
    (models_dir / f"{name}.json").write_text(json.dumps(description, indent=2) + "\n")
    return description
