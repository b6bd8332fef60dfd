"""Calibrate a trained checkpoint on the validation split and write the shipped model.

Calibration runs as the app does: fp16-rounded weights, validation images prepared in float
from the datasets (not the 8-bit cache).

- temperature scaling of the class head (minimum validation NLL);
- the review threshold: the smallest p(no_tumour) that clears a slice such that no tumour
  slice of the validation split is cleared;
- out-of-distribution novelty: either the cosine distance to the k-th nearest of a bank of
  training features (a 2000-slice sample or every training slice; k 10, 5 or 1) or the
  Mahalanobis distance to the training features under a Ledoit-Wolf shrunk covariance; the
  threshold is the 99.5th percentile of validation scores. The candidate that rejects most
  pictures that are not among the evaluation probes (probes.OOD_VALIDATION) wins;
- a CT check: a logistic model on the features, CT images of the training side (the
  exclusion list's CT group) against the training MR slices, its threshold the 99.5th
  percentile of validation MR slices' scores; the validation side's CT images are reported.
Everything goes into one fp16 weights archive whose sha256 the model description records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from workstation.analysis.model_file import sha256_of
from workstation.analysis.network import CLASSES, TriageNet
from workstation.analysis.ood import ct_probability, knn_distance, mahalanobis_distance, unit
from workstation.analysis.preprocess import INPUT_SIZE, prepare
from workstation.training.manifest import Manifest, exclusion_group
from workstation.training.probes import ood_validation_images

OOD_BANK_SIZES = (2000, None)  # None: every training slice
OOD_NEIGHBOURS = (10, 5, 1)
OOD_PERCENTILE = 99.5
NO_TUMOUR = CLASSES.index("no_tumour")


def network_outputs(net: TriageNet, images: np.ndarray, batch: int = 64,
                    device: str = "cpu") -> dict[str, np.ndarray]:
    """Logits and pooled features of network inputs: uint8 (the cache) or float in [0, 1]."""
    logits, features = [], []
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    net.eval()
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(images[start:start + batch]).float().div(scale)[:, None]
            out = net(x.to(device).contiguous(memory_format=torch.channels_last))
            logits.append(out.class_logits.cpu().numpy())
            features.append(out.features.cpu().numpy())
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


def choose_ood(train_features: np.ndarray, val_features: np.ndarray,
               outlier_features: np.ndarray) -> dict[str, Any]:
    """The novelty score that rejects most out-of-distribution validation pictures, each
    candidate at the threshold that keeps 99.5% of validation slices (ties: the first
    candidate). ``train_features`` are unit length."""
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(0)
    candidates: list[tuple[dict[str, Any], Any]] = []
    for size in OOD_BANK_SIZES:
        if size is None or size >= len(train_features):
            bank = train_features
        else:
            bank = train_features[np.sort(rng.choice(len(train_features), size, replace=False))]
        for k in OOD_NEIGHBOURS:
            candidates.append(({"method": "knn", "bank": bank, "neighbours": k},
                               lambda x, bank=bank, k=k: knn_distance(x, bank, k)))
    shrunk = LedoitWolf().fit(train_features)
    mean = shrunk.location_.astype(np.float32)
    precision = shrunk.precision_.astype(np.float32)
    candidates.append(({"method": "mahalanobis", "mean": mean, "precision": precision},
                       lambda x: mahalanobis_distance(x, mean, precision)))
    best: dict[str, Any] = {}
    for settings, score in candidates:
        threshold = float(np.percentile(score(val_features), OOD_PERCENTILE))
        rejected = int((score(outlier_features) > threshold).sum())
        if not best or rejected > best["rejected"]:
            best = {**settings, "threshold": threshold, "rejected": rejected}
    return best


def fit_ct_check(mr_features: np.ndarray, ct_features: np.ndarray,
                 val_mr_features: np.ndarray) -> dict[str, Any]:
    """Logistic model CT vs MR on unit features (classes balanced); threshold: the 99.5th
    percentile of the validation MR slices' CT probability."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([unit(mr_features), unit(ct_features)])
    y = np.r_[np.zeros(len(mr_features)), np.ones(len(ct_features))]
    model = LogisticRegression(class_weight="balanced", max_iter=5000).fit(x, y)
    weights = model.coef_[0].astype(np.float32)
    bias = float(model.intercept_[0])
    threshold = float(np.percentile(ct_probability(val_mr_features, weights, bias),
                                    OOD_PERCENTILE))
    return {"weights": weights, "bias": bias, "threshold": threshold}


def app_inputs(datasets: Path, cache: Path, uids: list[str]) -> np.ndarray:
    """The network inputs the app makes of these images (float, from the datasets), in the
    order of ``uids``; the cache holds them rounded to 8 bits."""
    from workstation.training.sources import all_items_for

    prepared = {item.uid: prepare(item.image).image
                for item in all_items_for(datasets, cache, set(uids))}
    missing = [uid for uid in uids if uid not in prepared]
    if missing:
        raise ValueError(f"{len(missing)} images not found in {datasets}, e.g. {missing[0]}")
    return np.stack([prepared[uid] for uid in uids]).astype(np.float32)


def export(manifest: Manifest, checkpoint: Path, models_dir: Path, name: str, version: str,
           training_notes: dict[str, object], datasets: Path, cache: Path
           ) -> dict[str, object]:
    """Calibrate as the app runs: the weights rounded to fp16 as shipped, the validation
    images prepared from the datasets in float (a threshold set on the 8-bit cache left two
    validation tumour slices 0.0004 above it on the app's path)."""
    torch.set_num_threads(2)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    net = TriageNet.for_weights(state)
    shipped = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    net.load_state_dict(shipped)  # copied into the fp32 network, as the app loads them
    net = net.to(memory_format=torch.channels_last)
    split = np.array([r["split"] for r in manifest.rows])
    labels = np.array([CLASSES.index(r["label"]) for r in manifest.rows])
    val = np.flatnonzero(split == "val")
    train_rows = np.flatnonzero(split == "train")

    val_out = network_outputs(net, app_inputs(datasets, cache,
                                              [manifest.rows[i]["uid"] for i in val]))
    temperature = fit_temperature(val_out["logits"], labels[val])
    probabilities = softmax(val_out["logits"], temperature)
    threshold = review_threshold(probabilities, labels[val])
    train_features = unit(network_outputs(net, manifest.images[train_rows])["features"])
    outliers = network_outputs(net, np.stack([
        np.round(prepare(image).image * 255).astype(np.uint8)
        for image in ood_validation_images()]))["features"]
    ood = choose_ood(train_features, val_out["features"], outliers)
    ct_rows = [i for i, r in enumerate(manifest.rows) if r["split"] == "excluded"
               and exclusion_group(r.get("exclusion", "")) == "CT"]
    ct_side = np.array([manifest.rows[i]["excluded_from"] for i in ct_rows])
    if not (ct_side == "train").any():
        raise ValueError("no CT images on the training side of the exclusion list: the CT "
                         "check cannot be fitted")
    ct_features = network_outputs(net, manifest.images[np.array(ct_rows)])["features"]
    ct = fit_ct_check(train_features, ct_features[ct_side == "train"], val_out["features"])
    val_ct = ct_features[ct_side == "val"]
    val_ct_rejected = int((ct_probability(val_ct, ct["weights"], ct["bias"])
                           > ct["threshold"]).sum())

    archive = {
        "state_dict": shipped,
        "temperature": temperature,
        "review_threshold": threshold,
        "ood_threshold": ood["threshold"],
        "ood_method": ood["method"],
        "ct_weights": torch.from_numpy(ct["weights"]),
        "ct_bias": ct["bias"],
        "ct_threshold": ct["threshold"],
    }
    if ood["method"] == "knn":
        archive["ood_bank"] = torch.from_numpy(ood["bank"].astype(np.float32)).half()
        archive["ood_neighbours"] = ood["neighbours"]
    else:
        archive["ood_mean"] = torch.from_numpy(ood["mean"])
        archive["ood_precision"] = torch.from_numpy(ood["precision"])
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
        "architecture": net.describe(),
        "input_size": INPUT_SIZE,
        "classes": list(CLASSES),
        "weights": weights.name,
        "sha256": digest,
        "calibration": {
            "temperature": round(temperature, 4),
            "review_threshold": round(threshold, 4),
            "ood_threshold": round(ood["threshold"], 4),
            "ood_method": ood["method"],
            **({"ood_bank_size": len(ood["bank"]), "ood_neighbours": ood["neighbours"]}
               if ood["method"] == "knn" else {}),
            "ood_validation_pictures_rejected": f"{ood['rejected']} of {len(outliers)}",
            "ct_threshold": round(ct["threshold"], 4),
            "ct_training_images": int((ct_side == "train").sum()),
            "validation_ct_images_rejected": f"{val_ct_rejected} of {len(val_ct)}",
            "validation_normal_slices_sent_to_review": round(
                float((normal_val & ~cleared).sum() / max(1, normal_val.sum())), 4),
            "validation_tumour_slices_cleared": int((~normal_val & cleared).sum()),
        },
        "training": training_notes,
    }
    (models_dir / f"{name}.json").write_text(json.dumps(description, indent=2) + "\n")
    return description
