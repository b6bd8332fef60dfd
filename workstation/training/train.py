"""The training loop: multi-task loss, weighted sampling, seeded, CPU or GPU.

Run through ``workstation train``; the config (models/train_config.json) says how long and
with what. Checkpoints go to the output folder after each epoch.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from workstation.analysis.network import (
    CLASSES,
    PLANES,
    MaskDecoder,
    TriageNet,
    load_imagenet_backbone,
)
from workstation.training.augment import augment
from workstation.training.manifest import Manifest


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    samples_per_epoch: int = 6000
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    plane_weight: float = 0.5
    mask_weight: float = 1.0
    # normal slices in coronal/sagittal planes are rare: sample them more (plane confound)
    non_axial_normal_boost: float = 4.0
    # only figshare tumour slices carry masks: sample them more often within their class
    # (each class keeps its share), so the mask decoder sees more than ~1000 per epoch; the
    # class loss is importance-weighted back to the unboosted mix (a boost without that
    # taught the classifier figshare-vs-Nickparvar cues and cleared more tumours)
    mask_known_tumour_boost: float = 1.0
    # share of training images whose intensities go through a random curve (augment.py):
    # contrasts the training set lacks (T2-weighted, FLAIR variants, EPI)
    contrast_curve_probability: float = 0.0
    seed: int = 20261125
    threads: int = 2
    # stage 2: continue from stage 1 at a lower rate with more weight on the mask decoder
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float = 3e-4
    fine_tune_mask_weight: float = 2.0
    # contrast curves in stage 2 (None: as in stage 1); fewer lets the mask decoder settle
    fine_tune_contrast_curve_probability: float | None = None
    # stage 3: the mask decoder alone on the frozen network (backbone, class and plane heads
    # keep their stage 2 weights, so every verdict stays as it was), on the slices whose mask
    # is known; the Dice term weighs more here (what the mask is judged by)
    decoder_epochs: int = 0
    decoder_learning_rate: float = 1e-3
    decoder_dice_weight: float = 1.0
    # the stage 3 decoder's shape; when it differs from the stage 1-2 decoder (48 channels,
    # no merge convs) stage 3 starts a fresh decoder of this shape: a wider one is too slow
    # to carry through stages 1-2 on a CPU, and only stage 3 needs it
    decoder_width: int = 48
    decoder_merge_convs: bool = False
    # stage 4: the class head refitted on the frozen network (classifier re-training): a
    # fresh linear layer on the pooled features of the un-augmented training slices, full
    # batch, class-balanced as stage 1 samples; everything else keeps its stage 3 weights
    # (masks, plane calls and the out-of-distribution features do not move). Chosen on the
    # validation split: fewer normal axial slices called tumour than the jointly trained
    # head (5 of 536 against 8), macro-F1 not lower
    head_refit_steps: int = 0
    head_refit_learning_rate: float = 1e-2
    head_refit_weight_decay: float = 0.1
    # stage 5, whole series (issue 16): the whole network fine-tuned on batches that mix the
    # 2D training slices with every slice of the training volumes (volume_cache: healthy
    # heads with the skull on, edge slices included, and glioma volumes with voxel masks);
    # ``series_volume_share`` of each batch comes from the volumes, of which
    # ``series_glioma_share`` are tumour slices and ``series_stripped_clear_share`` the
    # glioma patients' tumour-free (skull-stripped) slices, against the "skull-stripped means
    # tumour" confound; the class loss is importance-weighted back to four equal classes
    series_epochs: int = 0
    series_learning_rate: float = 2e-4
    series_mask_weight: float = 2.0
    series_volume_share: float = 0.4
    series_glioma_share: float = 0.4
    series_stripped_clear_share: float = 0.2

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        return cls(**json.loads(path.read_text()))


def machine(device: str) -> str:
    """What the run trained on (kept in history.json and the model card)."""
    cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))} GPU, {cpu}"
    return cpu


def sample_weights(rows: list[dict[str, str]], config: TrainConfig) -> np.ndarray:
    """Balance the four classes; boost no-tumour slices that are not axial; within each
    tumour class, boost the slices that carry a mask (the class keeps its share)."""
    counts = Counter(r["label"] for r in rows)
    weights = np.array([1.0 / counts[r["label"]] for r in rows])
    boost = np.array([config.non_axial_normal_boost
                      if r["label"] == "no_tumour" and r["plane"] in ("coronal", "sagittal")
                      else 1.0 for r in rows])
    weights *= boost
    if config.mask_known_tumour_boost != 1.0:
        labels = np.array([r["label"] for r in rows])
        masked = np.array([r["mask_known"] == "1" and r["label"] != "no_tumour" for r in rows])
        for label in set(labels.tolist()) - {"no_tumour"}:
            inside = labels == label
            share = weights[inside].sum()
            weights[inside & masked] *= config.mask_known_tumour_boost
            weights[inside] *= share / weights[inside].sum()
    return weights / weights.sum()


def series_stage_weights(rows: list[dict[str, str]], volume: np.ndarray, config: TrainConfig
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Stage 5 sampling weights over the training rows (2D slices and volume slices,
    ``volume`` marks the latter) and the class-loss importance weights that bring the sampled
    class mix back to four equal classes."""
    weights = np.zeros(len(rows))
    flat = [rows[i] for i in np.flatnonzero(~volume)]
    weights[~volume] = sample_weights(flat, config) * (1 - config.series_volume_share)
    labels = np.array([r["label"] for r in rows])
    stripped = np.array([r.get("source") == "volumes" for r in rows])
    groups = (
        (volume & (labels != "no_tumour"), config.series_glioma_share),
        (volume & (labels == "no_tumour") & stripped, config.series_stripped_clear_share),
        (volume & (labels == "no_tumour") & ~stripped,
         1 - config.series_glioma_share - config.series_stripped_clear_share),
    )
    for members, share in groups:
        if members.any():
            weights[members] = config.series_volume_share * share / members.sum()
    weights /= weights.sum()
    class_share = {c: weights[labels == c].sum() for c in CLASSES}
    importance = np.array([0.25 / class_share[lab] for lab in labels])
    return weights, importance


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum(dim=(1, 2, 3))
    total = prob.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3))
    return 1 - (2 * inter + 1) / (total + 1)


def mask_loss(mask_logits: torch.Tensor, masks: torch.Tensor, mask_known: torch.Tensor,
              dice_weight: float = 1.0) -> torch.Tensor:
    """Pixel BCE (x10) on the slices whose mask is known, plus the Dice loss on those with a
    tumour in them; zero when no slice in the batch has a known mask."""
    mask_logits = F.interpolate(mask_logits, size=masks.shape[-2:], mode="bilinear",
                                align_corners=False)
    if not bool(mask_known.any()):
        return mask_logits.new_zeros(())
    known_logits, known_masks = mask_logits[mask_known], masks[mask_known]
    bce = F.binary_cross_entropy_with_logits(known_logits, known_masks)
    has_tumour = known_masks.sum(dim=(1, 2, 3)) > 0
    dice = (dice_loss(known_logits[has_tumour], known_masks[has_tumour]).mean()
            if bool(has_tumour.any()) else bce.new_zeros(()))
    return bce * 10 + dice_weight * dice


def losses(out: object, labels: torch.Tensor, planes: torch.Tensor, masks: torch.Tensor,
           mask_known: torch.Tensor, config: TrainConfig,
           class_weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    per_sample = F.cross_entropy(out.class_logits, labels,  # type: ignore[attr-defined]
                                 label_smoothing=config.label_smoothing, reduction="none")
    class_loss = (per_sample.mean() if class_weights is None
                  else (per_sample * class_weights).sum() / class_weights.sum())
    known_plane = planes >= 0
    plane_loss = (F.cross_entropy(out.plane_logits[known_plane],  # type: ignore[attr-defined]
                                  planes[known_plane])
                  if bool(known_plane.any()) else class_loss.new_zeros(()))
    masked = mask_loss(out.mask_logits, masks, mask_known)  # type: ignore[attr-defined]
    total = class_loss + config.plane_weight * plane_loss + config.mask_weight * masked
    return {"total": total, "class": class_loss, "plane": plane_loss, "mask": masked}


def batch_tensors(manifest: Manifest, index: np.ndarray
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    rows = [manifest.rows[i] for i in index]
    images = torch.from_numpy(manifest.images[index]).float().div(255).unsqueeze(1)
    masks = torch.from_numpy(manifest.masks[index]).float().unsqueeze(1)
    labels = torch.tensor([CLASSES.index(r["label"]) for r in rows])
    planes = torch.tensor([PLANES.index(r["plane"]) if r["plane"] else -1 for r in rows])
    mask_known = torch.tensor([r["mask_known"] == "1" for r in rows])
    return images, masks, labels, planes, mask_known


def train(manifest: Manifest, config: TrainConfig, out_dir: Path, pretrained: Path,
          device: str = "cpu", log: bool = True, from_stage: int = 0,
          volumes: Manifest | None = None) -> Path:
    """Stage 1 from ImageNet weights, then the optional fine-tuning stage 2, the optional
    decoder-only stage 3 and the optional class-head refit, stage 4.

    ``from_stage`` 1, 2, 3 or 4 resumes from ``out_dir/checkpoint_stage<N>.pt`` (written when
    that stage ended) and runs the later stages only; each stage is seeded on its own, so
    every route gives the same run. Stage 5 (``series_epochs``) needs ``volumes`` (the volume
    cache, rows shaped as the manifest's).
    """
    # seed before the heads are initialised: the run must not depend on anything earlier
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    generator = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_index = np.array([i for i, r in enumerate(manifest.rows) if r["split"] == "train"])
    train_rows = [manifest.rows[i] for i in train_index]
    weights = sample_weights(train_rows, config)
    # importance weights that undo the mask boost for the class loss
    importance = sample_weights(train_rows, replace(config, mask_known_tumour_boost=1.0)) / weights
    net = TriageNet()
    history: list[dict[str, float]] = []
    if from_stage:
        done = config.epochs + (config.fine_tune_epochs if from_stage >= 2 else 0) \
            + (config.decoder_epochs if from_stage >= 3 else 0) \
            + (1 if from_stage >= 4 and config.head_refit_steps else 0)
        state = torch.load(out_dir / f"checkpoint_stage{from_stage}.pt", map_location="cpu",
                           weights_only=True)
        if from_stage >= 3:  # the stage 3 decoder may have another shape
            net = TriageNet.for_weights(state)
        net.load_state_dict(state)
        previous = json.loads((out_dir / "history.json").read_text())
        history = previous["history"][:done]
        started_from = previous.get("started_from")  # --from-weights: a shipped model
    else:
        started_from = None
        load_imagenet_backbone(net, pretrained)
    net = net.to(device).to(memory_format=torch.channels_last)
    started = time.perf_counter() - 60 * (history[-1]["minutes"] if history else 0.0)
    if from_stage < 1:
        _run_stage(net, manifest, train_index, weights, importance, config, config.epochs,
                   config.learning_rate, config.mask_weight, generator, rng, device, history,
                   started, log, pct_start=0.1, curves=config.contrast_curve_probability)
        torch.save(net.state_dict(), out_dir / "checkpoint_stage1.pt")
    fine_tune_curves = (config.contrast_curve_probability
                        if config.fine_tune_contrast_curve_probability is None
                        else config.fine_tune_contrast_curve_probability)
    if config.fine_tune_epochs and from_stage < 2:
        seed = config.seed + 1
        torch.manual_seed(seed)
        _run_stage(net, manifest, train_index, weights, importance, config,
                   config.fine_tune_epochs,
                   config.fine_tune_learning_rate, config.fine_tune_mask_weight,
                   torch.Generator().manual_seed(seed), np.random.default_rng(seed), device,
                   history, started, log, pct_start=0.05, curves=fine_tune_curves)
    if from_stage < 2:
        torch.save(net.state_dict(), out_dir / "checkpoint_stage2.pt")
    if config.decoder_epochs and from_stage < 3:
        seed = config.seed + 2
        torch.manual_seed(seed)
        if (net.decoder.width, net.decoder.merge_convs) != (config.decoder_width,
                                                             config.decoder_merge_convs):
            net.decoder = MaskDecoder(net.decoder_channels(), config.decoder_width,
                                      config.decoder_merge_convs
                                      ).to(device).to(memory_format=torch.channels_last)
        known = np.array([r["mask_known"] == "1" for r in train_rows])
        _run_decoder_stage(net, manifest, train_index[known],
                           weights[known] / weights[known].sum(), config,
                           torch.Generator().manual_seed(seed), np.random.default_rng(seed),
                           device, history, started, log, curves=fine_tune_curves)
    if from_stage < 3:
        torch.save(net.state_dict(), out_dir / "checkpoint_stage3.pt")
    if config.head_refit_steps and from_stage < 4:
        torch.manual_seed(config.seed + 3)
        _refit_class_head(net, manifest, train_index, weights * importance, config, device,
                          history, started, log)
    if from_stage < 4:
        torch.save(net.state_dict(), out_dir / "checkpoint_stage4.pt")
    if config.series_epochs:
        if volumes is None:
            raise ValueError("stage 5 (series_epochs) needs the volume cache")
        seed = config.seed + 4
        torch.manual_seed(seed)
        both = Manifest(rows=manifest.rows + volumes.rows,
                        images=np.concatenate([manifest.images, volumes.images]),
                        masks=np.concatenate([manifest.masks, volumes.masks]))
        index = np.concatenate([train_index, len(manifest.rows) + np.array(
            [i for i, r in enumerate(volumes.rows) if r["split"] == "train"])])
        volume = index >= len(manifest.rows)
        series_weights, series_importance = series_stage_weights(
            [both.rows[i] for i in index], volume, config)
        _run_stage(net, both, index, series_weights, series_importance, config,
                   config.series_epochs, config.series_learning_rate,
                   config.series_mask_weight, torch.Generator().manual_seed(seed),
                   np.random.default_rng(seed), device, history, started, log,
                   pct_start=0.1, curves=fine_tune_curves)
    torch.save(net.state_dict(), out_dir / "checkpoint.pt")
    (out_dir / "history.json").write_text(json.dumps(
        {"config": asdict(config), "device": device, "machine": machine(device),
         "history": history, **({"started_from": started_from} if started_from else {})},
        indent=2))
    return out_dir / "checkpoint.pt"


def _refit_class_head(net: TriageNet, manifest: Manifest, index: np.ndarray,
                      weights: np.ndarray, config: TrainConfig, device: str,
                      history: list[dict[str, float]], started: float, log: bool) -> None:
    """Stage 4: a fresh class head fitted on the frozen network's pooled features of the
    training slices (no augmentation, no dropout), full batch on the CPU; ``weights`` are the
    per-slice class weights (the stage 1 sampling weights without the mask boost)."""
    from workstation.training.export import network_outputs

    net.eval()
    features = torch.from_numpy(network_outputs(net.to(device), manifest.images[index],
                                                device=device)["features"]).float()
    labels = torch.tensor([CLASSES.index(manifest.rows[i]["label"]) for i in index])
    sample = torch.from_numpy(weights / weights.mean()).float()
    head = torch.nn.Linear(features.shape[1], len(CLASSES))
    optimiser = torch.optim.AdamW(head.parameters(), lr=config.head_refit_learning_rate,
                                  weight_decay=config.head_refit_weight_decay)
    for _ in range(config.head_refit_steps):
        loss = (F.cross_entropy(head(features), labels, reduction="none") * sample).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    net.class_head.load_state_dict({k: v.to(device) for k, v in head.state_dict().items()})
    record = {"epoch": len(history) + 1,
              "minutes": round((time.perf_counter() - started) / 60, 1),
              "learning_rate": config.head_refit_learning_rate,
              "steps": config.head_refit_steps, "class": round(float(loss.detach()), 4)}
    history.append(record)
    if log:
        print(json.dumps(record), flush=True)


def _run_decoder_stage(net: TriageNet, manifest: Manifest, index: np.ndarray,
                       weights: np.ndarray, config: TrainConfig, generator: torch.Generator,
                       rng: np.random.Generator, device: str, history: list[dict[str, float]],
                       started: float, log: bool, curves: float) -> None:
    """Train the mask decoder alone: everything else is frozen and kept in eval mode (its
    batch-norm statistics do not move), so the class, plane and feature outputs are the
    stage 2 outputs bit for bit."""
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    decoder = list(net.decoder.parameters())
    for parameter in decoder:
        parameter.requires_grad_(True)
    optimiser = torch.optim.AdamW(decoder, lr=config.decoder_learning_rate,
                                  weight_decay=config.weight_decay)
    steps_per_epoch = config.samples_per_epoch // config.batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.decoder_learning_rate,
        total_steps=config.decoder_epochs * steps_per_epoch, pct_start=0.1)
    for _ in range(config.decoder_epochs):
        net.eval()
        net.decoder.train()
        total = 0.0
        for _ in range(steps_per_epoch):
            chosen = index[rng.choice(len(index), size=config.batch_size, p=weights)]
            images, masks, _, _, known = batch_tensors(manifest, chosen)
            images, masks = augment(images, masks, generator, curves)
            images = images.to(device, memory_format=torch.channels_last)
            with torch.no_grad():
                features = net.features(images)
            loss = mask_loss(net.decoder(features), (masks > 0.5).float().to(device),
                             known.to(device), config.decoder_dice_weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach())
        record = {"epoch": len(history) + 1,
                  "minutes": round((time.perf_counter() - started) / 60, 1),
                  "learning_rate": config.decoder_learning_rate,
                  "mask": round(total / steps_per_epoch, 4)}
        history.append(record)
        if log:
            print(json.dumps(record), flush=True)
    for parameter in net.parameters():
        parameter.requires_grad_(True)


def _run_stage(net: TriageNet, manifest: Manifest, train_index: np.ndarray,
               weights: np.ndarray, importance: np.ndarray, config: TrainConfig, epochs: int,
               learning_rate: float,
               mask_weight: float, generator: torch.Generator, rng: np.random.Generator,
               device: str, history: list[dict[str, float]], started: float, log: bool,
               pct_start: float, curves: float) -> None:
    stage_config = replace(config, mask_weight=mask_weight)
    optimiser = torch.optim.AdamW(net.parameters(), lr=learning_rate,
                                  weight_decay=config.weight_decay)
    steps_per_epoch = config.samples_per_epoch // config.batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=learning_rate, total_steps=epochs * steps_per_epoch,
        pct_start=pct_start)
    for _ in range(epochs):
        net.train()
        sums: dict[str, float] = defaultdict(float)
        for _ in range(steps_per_epoch):
            chosen = rng.choice(len(train_index), size=config.batch_size, p=weights)
            index = train_index[chosen]
            class_weights = torch.from_numpy(importance[chosen]).float().to(device)
            images, masks, labels, planes, known = batch_tensors(manifest, index)
            images, masks = augment(images, masks, generator, curves)
            images = images.to(device, memory_format=torch.channels_last)
            out = net(images)
            parts = losses(out, labels.to(device), planes.to(device),
                           (masks > 0.5).float().to(device), known.to(device), stage_config,
                           class_weights)
            optimiser.zero_grad(set_to_none=True)
            parts["total"].backward()
            optimiser.step()
            schedule.step()
            for key, value in parts.items():
                sums[key] += float(value.detach())
        record = {"epoch": len(history) + 1,
                  "minutes": round((time.perf_counter() - started) / 60, 1),
                  "learning_rate": learning_rate,
                  **{k: round(v / steps_per_epoch, 4) for k, v in sums.items()}}
        history.append(record)
        if log:
            print(json.dumps(record), flush=True)
