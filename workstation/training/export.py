"""Calibrate a trained checkpoint on the validation split and write the shipped model.

Calibration runs as the app does: fp16-rounded weights, batch norms folded into the
convolutions, validation images prepared in float from the datasets (not the 8-bit cache).

- temperature scaling of the class head (minimum validation NLL);
- the review threshold: the smallest p(no_tumour) that clears a slice such that no tumour
  slice of the validation split is cleared;
- out-of-distribution novelty: either the cosine distance to the k-th nearest of a bank of
  training features (a 2000-slice sample or every training slice; k 10, 5 or 1) or the
  Mahalanobis distance to the training features under a Ledoit-Wolf shrunk covariance; the
  threshold is the 99.5th percentile of validation scores. The candidate that rejects most
  pictures that are not among the evaluation probes (probes.OOD_VALIDATION) wins;
- a second novelty score on the unchanged ImageNet network's features (``ReferenceNet`` at
  64, 80 or 96 px; k-th nearest of a 2000-slice bank or Mahalanobis), at its own 99.5th
  percentile: kept when, with the first, it refuses more of those pictures than the first
  alone, while the two together refuse at most 1% of validation slices;
- a CT check: a logistic model on the features, CT images of the training side (the
  exclusion list's CT group) against the training MR slices, its threshold the 99.5th
  percentile of validation MR slices' scores; the validation side's CT images are reported.
Everything goes into one fp16 weights archive whose sha256 the model description records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workstation.analysis.model_file import sha256_of
from workstation.analysis.network import (
    CLASSES,
    ReferenceNet,
    TriageNet,
    fold_batch_norms,
    load_imagenet_backbone,
)
from workstation.analysis.ood import Novelty, logistic_probability, unit
from workstation.analysis.preprocess import INPUT_SIZE, prepare
from workstation.training.manifest import Manifest, exclusion_group
from workstation.training.probes import ood_validation_images, picture_crops

OOD_BANK_SIZES = (2000, None)  # None: every training slice
OOD_NEIGHBOURS = (10, 5, 1)
OOD_PERCENTILE = 99.5
# the reference network's input sizes: unfolded, it took 2.3 ms a slice at 64 px and 4.8 at
# 96 on the 2-core CPU (6.5 at 128), and the whole path must stay under 25 ms
REFERENCE_SIZES = (64, 80, 96)
REFERENCE_BANK_SIZE = 2000
# the two scores together may refuse at most this share of validation slices
REFERENCE_MAX_VALIDATION_REJECTED = 0.01
NO_TUMOUR = CLASSES.index("no_tumour")


def input_batches(images: np.ndarray, batch: int, device: str = "cpu"
                  ) -> Iterator[torch.Tensor]:
    """Network inputs, uint8 (the cache) or float in [0, 1], as (B, 1, H, W) float tensors
    in [0, 1] on ``device``."""
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    for start in range(0, len(images), batch):
        x = torch.from_numpy(images[start:start + batch]).float().div(scale)[:, None]
        yield x.to(device).contiguous(memory_format=torch.channels_last)


def network_outputs(net: nn.Module, images: np.ndarray, batch: int = 64,
                    device: str = "cpu") -> dict[str, np.ndarray]:
    """Logits and pooled features of network inputs: uint8 (the cache) or float in [0, 1]."""
    logits, features = [], []
    net.eval()
    with torch.inference_mode():
        for x in input_batches(images, batch, device):
            out = net(x)
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


def bank_sample(count: int, size: int | None) -> np.ndarray:
    """Which of ``count`` training slices form a feature bank of ``size`` (None: all); the
    same seeded sample for both novelty scores."""
    if size is None or size >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(0).choice(count, size, replace=False))


def novelty_candidates(train_features: np.ndarray, bank_sizes: tuple[int | None, ...]
                       ) -> list[Novelty]:
    """Every novelty score export tries, thresholds not yet set: k-th nearest neighbour
    (k in OOD_NEIGHBOURS) on each bank, and Mahalanobis under a Ledoit-Wolf shrunk covariance
    of all ``train_features`` (unit length)."""
    from sklearn.covariance import LedoitWolf

    candidates = [Novelty(threshold=float("nan"), method="knn",
                          bank=train_features[bank_sample(len(train_features), size)],
                          neighbours=k)
                  for size in bank_sizes for k in OOD_NEIGHBOURS]
    shrunk = LedoitWolf().fit(train_features)
    candidates.append(Novelty(threshold=float("nan"), method="mahalanobis",
                              mean=shrunk.location_.astype(np.float32),
                              precision=shrunk.precision_.astype(np.float32)))
    return candidates


def calibrated(candidate: Novelty, val_features: np.ndarray) -> Novelty:
    """The candidate at the threshold that keeps OOD_PERCENTILE % of validation slices."""
    return replace(candidate, threshold=float(np.percentile(candidate.score(val_features),
                                                            OOD_PERCENTILE)))


def choose_ood(train_features: np.ndarray, val_features: np.ndarray,
               outlier_features: np.ndarray) -> tuple[Novelty, int]:
    """The novelty score that rejects most out-of-distribution validation pictures, each
    candidate at the threshold that keeps 99.5% of validation slices (ties: the first
    candidate), and how many it rejects. ``train_features`` are unit length."""
    best: tuple[Novelty, int] | None = None
    for candidate in novelty_candidates(train_features, OOD_BANK_SIZES):
        score = calibrated(candidate, val_features)
        rejected = int((score.score(outlier_features) > score.threshold).sum())
        if best is None or rejected > best[1]:
            best = (score, rejected)
    assert best is not None
    return best


@dataclass(frozen=True, eq=False)
class ReferenceChoice:
    input_size: int
    novelty: Novelty
    pictures_rejected: int  # by either score
    validation_rejected: float  # share of validation slices refused by either score


def choose_reference(features: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
                     val_rejected: np.ndarray, pictures_rejected: np.ndarray
                     ) -> ReferenceChoice | None:
    """The second novelty score, on the ImageNet reference network's features at one of
    REFERENCE_SIZES: ``features[size]`` holds unit bank features (a training sample), the
    validation slices' and the held-out pictures'; ``val_rejected`` and
    ``pictures_rejected`` say what the first score refuses. Each candidate is at the
    threshold that keeps 99.5% of validation slices; one whose union with the first score
    refuses more than REFERENCE_MAX_VALIDATION_REJECTED of validation slices is out. The
    winner refuses most pictures together with the first score (ties: the smaller size, then
    candidate order), and only if that is more than the first score alone: None otherwise."""
    best: ReferenceChoice | None = None
    for size in sorted(features):
        bank, val, pictures = features[size]
        for candidate in novelty_candidates(bank, (None,)):
            score = calibrated(candidate, val)
            validation = float((val_rejected | (score.score(val) > score.threshold)).mean())
            union = int((pictures_rejected | (score.score(pictures) > score.threshold)).sum())
            if validation > REFERENCE_MAX_VALIDATION_REJECTED:
                continue
            if best is None or union > best.pictures_rejected:
                best = ReferenceChoice(size, score, union, validation)
    if best is None or best.pictures_rejected <= int(pictures_rejected.sum()):
        return None
    return best


def reference_network(imagenet: Path) -> tuple[ReferenceNet, dict[str, torch.Tensor]]:
    """The unchanged ImageNet backbone with its weights rounded to fp16, folded as the app
    runs it, and its weights as shipped (fp16)."""
    net = ReferenceNet(REFERENCE_SIZES[0])
    load_imagenet_backbone(net, imagenet)
    shipped = {k: v.half() if v.is_floating_point() else v
               for k, v in net.backbone.state_dict().items()}
    net.backbone.load_state_dict(shipped)  # copied into fp32, as the app loads them
    folded = fold_batch_norms(net)
    assert isinstance(folded, ReferenceNet)
    return folded, shipped


def reference_features(net: ReferenceNet, images: np.ndarray, batch: int = 128
                       ) -> np.ndarray:
    """Unit reference features of network inputs (uint8 cache or float in [0, 1])."""
    with torch.inference_mode():
        out = [net(x).numpy() for x in input_batches(images, batch)]
    return unit(np.concatenate(out))


def torch_entries(entries: dict[str, Any]) -> dict[str, Any]:
    """Archive entries with numpy arrays as tensors (a bank in fp16): torch.load with
    weights_only reads tensors, not numpy arrays."""
    out: dict[str, Any] = {}
    for key, value in entries.items():
        if isinstance(value, np.ndarray):
            tensor = torch.from_numpy(value.astype(np.float32))
            value = tensor.half() if key.endswith("_bank") else tensor
        out[key] = value
    return out


def fit_logistic_check(mr_features: np.ndarray, other_features: np.ndarray,
                       val_mr_features: np.ndarray) -> dict[str, Any]:
    """Logistic model "other" (CT; pictures) vs MR on unit features (classes balanced);
    threshold: the 99.5th percentile of the validation MR slices' probability."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([unit(mr_features), unit(other_features)])
    y = np.r_[np.zeros(len(mr_features)), np.ones(len(other_features))]
    model = LogisticRegression(class_weight="balanced", max_iter=5000).fit(x, y)
    weights = model.coef_[0].astype(np.float32)
    bias = float(model.intercept_[0])
    threshold = float(np.percentile(logistic_probability(val_mr_features, weights, bias),
                                    OOD_PERCENTILE))
    return {"weights": weights, "bias": bias, "threshold": threshold}


def app_inputs(datasets: Path, cache: Path, uids: list[str]) -> np.ndarray:
    """The network inputs the app makes of these images (float, from the datasets), in the
    order of ``uids``; the cache holds them rounded to 8 bits."""
    from workstation.training import volume_cache
    from workstation.training.sources import all_items_for

    flat = {uid for uid in uids if not uid.startswith("vol:")}
    prepared = {item.uid: prepare(item.image).image
                for item in all_items_for(datasets, cache, flat)}
    prepared |= volume_cache.app_inputs(datasets, [uid for uid in uids if uid not in flat])
    missing = [uid for uid in uids if uid not in prepared]
    if missing:
        raise ValueError(f"{len(missing)} images not found in {datasets}, e.g. {missing[0]}")
    return np.stack([prepared[uid] for uid in uids]).astype(np.float32)


def export(manifest: Manifest, checkpoint: Path, models_dir: Path, name: str, version: str,
           training_notes: dict[str, object], datasets: Path, cache: Path, imagenet: Path,
           volumes: Manifest | None = None) -> dict[str, object]:
    """Calibrate as the app runs: the weights rounded to fp16 as shipped, the validation
    images prepared from the datasets in float (a threshold set on the 8-bit cache left two
    validation tumour slices 0.0004 above it on the app's path).

    With ``volumes`` (the whole-series slices of training.volume_cache) their validation
    slices join the calibration (temperature, review threshold, novelty thresholds) and
    their training slices the novelty banks: a head's edge slices are brain MRI too."""
    torch.set_num_threads(2)
    if volumes is not None:
        manifest = Manifest(rows=manifest.rows + volumes.rows,
                            images=np.concatenate([manifest.images, volumes.images]),
                            masks=np.concatenate([manifest.masks, volumes.masks]))
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    trained = TriageNet.for_weights(state)
    shipped = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    trained.load_state_dict(shipped)  # copied into the fp32 network, as the app loads them
    net = fold_batch_norms(trained).to(memory_format=torch.channels_last)  # as the app runs
    split = np.array([r["split"] for r in manifest.rows])
    labels = np.array([CLASSES.index(r["label"]) for r in manifest.rows])
    val = np.flatnonzero(split == "val")
    train_rows = np.flatnonzero(split == "train")

    val_images = app_inputs(datasets, cache, [manifest.rows[i]["uid"] for i in val])
    val_out = network_outputs(net, val_images)
    temperature = fit_temperature(val_out["logits"], labels[val])
    probabilities = softmax(val_out["logits"], temperature)
    threshold = review_threshold(probabilities, labels[val])
    train_features = unit(network_outputs(net, manifest.images[train_rows])["features"])
    pictures = np.stack([np.round(prepare(image).image * 255).astype(np.uint8)
                         for image in ood_validation_images()])
    outliers = network_outputs(net, pictures)["features"]
    ood, ood_rejected = choose_ood(train_features, val_out["features"], outliers)
    reference_net, reference_weights = reference_network(imagenet)
    bank_rows = train_rows[bank_sample(len(train_rows), REFERENCE_BANK_SIZE)]
    by_size = {}
    for size in REFERENCE_SIZES:
        reference_net.input_size = size
        by_size[size] = (reference_features(reference_net, manifest.images[bank_rows]),
                         reference_features(reference_net, val_images),
                         reference_features(reference_net, pictures))
    reference = choose_reference(
        by_size, ood.score(val_out["features"]) > ood.threshold,
        ood.score(outliers) > ood.threshold)
    ct_rows = [i for i, r in enumerate(manifest.rows) if r["split"] == "excluded"
               and exclusion_group(r.get("exclusion", "")) == "CT"]
    ct_side = np.array([manifest.rows[i]["excluded_from"] for i in ct_rows])
    if not (ct_side == "train").any():
        raise ValueError("no CT images on the training side of the exclusion list: the CT "
                         "check cannot be fitted")
    ct_features = network_outputs(net, manifest.images[np.array(ct_rows)])["features"]
    ct = fit_logistic_check(train_features, ct_features[ct_side == "train"], val_out["features"])
    val_ct = ct_features[ct_side == "val"]
    val_ct_rejected = int((logistic_probability(val_ct, ct["weights"], ct["bias"])
                           > ct["threshold"]).sum())
    # the picture check: MR slices against crops of the OOD_VALIDATION pictures, in the
    # 8-bit network inputs the other pictures' features are taken from
    crops = np.stack([np.round(prepare(image).image * 255).astype(np.uint8)
                      for image in picture_crops()])
    picture = fit_logistic_check(train_features, network_outputs(net, crops)["features"],
                                 val_out["features"])
    val_pictures = (logistic_probability(val_out["features"], picture["weights"],
                                         picture["bias"]) > picture["threshold"])

    archive = {
        "state_dict": shipped,
        "temperature": temperature,
        "review_threshold": threshold,
        **torch_entries(ood.archive("ood")),
        "ct_weights": torch.from_numpy(ct["weights"]),
        "ct_bias": ct["bias"],
        "ct_threshold": ct["threshold"],
        "picture_weights": torch.from_numpy(picture["weights"]),
        "picture_bias": picture["bias"],
        "picture_threshold": picture["threshold"],
    }
    if reference is not None:
        archive["reference_state_dict"] = reference_weights
        archive["reference_input_size"] = reference.input_size
        archive.update(torch_entries(reference.novelty.archive("reference_ood")))
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
        "architecture": trained.describe(),
        "input_size": INPUT_SIZE,
        "classes": list(CLASSES),
        "weights": weights.name,
        "sha256": digest,
        "calibration": {
            "temperature": round(temperature, 4),
            "review_threshold": round(threshold, 4),
            **novelty_notes("ood", ood),
            "ood_validation_pictures_rejected": f"{ood_rejected} of {len(outliers)}",
            **(reference_notes(reference, len(outliers)) if reference is not None else {}),
            "ct_threshold": round(ct["threshold"], 4),
            "ct_training_images": int((ct_side == "train").sum()),
            "validation_ct_images_rejected": f"{val_ct_rejected} of {len(val_ct)}",
            "picture_threshold": round(picture["threshold"], 4),
            "picture_training_images": len(crops),
            "validation_slices_rejected_by_picture_check": round(float(val_pictures.mean()), 4),
            "validation_normal_slices_sent_to_review": round(
                float((normal_val & ~cleared).sum() / max(1, normal_val.sum())), 4),
            "validation_tumour_slices_cleared": int((~normal_val & cleared).sum()),
        },
        "training": training_notes,
    }
    (models_dir / f"{name}.json").write_text(json.dumps(description, indent=2) + "\n")
    if volumes is not None:
        description = add_series_rule(models_dir, name, archive, description, datasets)
    # last: the ONNX Runtime form of exactly these weights (the CPU backend)
    from workstation.training.onnx_export import add_onnx

    return add_onnx(models_dir / f"{name}.json")


def add_series_rule(models_dir: Path, name: str, archive: dict[str, Any],
                    description: dict[str, Any], datasets: Path) -> dict[str, Any]:
    """Choose the whole-series rule on the validation series with the exported model, as
    the app runs it, and keep it in the weights archive (verified with them)."""
    from workstation.analysis.engine import SERIES_RULE_KEYS, Engine
    from workstation.training.series_rule_choice import (
        CALL_MARGIN,
        CALL_TARGET,
        choose,
        choose_tumour_call_threshold,
        per_series,
        validation_series,
    )

    engine = Engine(models_dir / f"{name}.json", device="cpu")
    items = validation_series(datasets, engine)
    rule, table = choose(items)
    call_threshold, call_table = choose_tumour_call_threshold(items)
    archive.update({f"series_rule_{k}": getattr(rule, k) for k in SERIES_RULE_KEYS})
    archive["tumour_call_threshold"] = call_threshold
    weights = models_dir / f"{name}.pt"
    torch.save(archive, weights)
    digest = sha256_of(weights)
    (models_dir / f"{name}.pt.sha256").write_text(f"{digest}  {weights.name}\n")
    description["sha256"] = digest
    description["series_rule"] = {
        **{k: getattr(rule, k) for k in SERIES_RULE_KEYS},
        "chosen_on": f"{len(items)} validation series "
                     f"({sum(i.truth == 'no_tumour' for i in items)} healthy)",
        "best_candidates": table[:6],
        "validation_series": per_series(items, rule),
    }
    chosen = next(r for r in call_table if r["threshold"] == call_threshold)
    description["tumour_call"] = {
        "threshold": call_threshold,
        "chosen_on": description["series_rule"]["chosen_on"],
        "rule": (f"the lowest p(tumour) at which no more than {CALL_TARGET * CALL_MARGIN:.1%} "
                 "of the healthy validation series' images are called tumour"),
        "validation": chosen,
        "candidates": [r for r in call_table if r["threshold"] in (0.5, 0.6, 0.7, 0.8, 0.9)
                       or r is chosen],
    }
    (models_dir / f"{name}.json").write_text(json.dumps(description, indent=2) + "\n")
    return description


def novelty_notes(prefix: str, score: Novelty) -> dict[str, object]:
    """How a novelty score is set, for the model description (and the card)."""
    return {f"{prefix}_threshold": round(score.threshold, 4), f"{prefix}_method": score.method,
            **({f"{prefix}_bank_size": len(score.bank), f"{prefix}_neighbours": score.neighbours}
               if score.method == "knn" and score.bank is not None else {})}


def reference_notes(reference: ReferenceChoice, pictures: int) -> dict[str, object]:
    return {**novelty_notes("reference_ood", reference.novelty),
            "reference_ood_input_size": reference.input_size,
            "ood_validation_pictures_rejected_by_either": (
                f"{reference.pictures_rejected} of {pictures}"),
            "validation_slices_rejected_by_either": round(reference.validation_rejected, 4)}
