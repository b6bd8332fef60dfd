"""Pieces of the training pipeline that can be checked without training anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from skimage.transform import resize

from workstation.analysis.ood import knn_distance, unit
from workstation.analysis.preprocess import prepare
from workstation.training import dedup
from workstation.training.evaluate import dice, expected_calibration_error, macro_f1
from workstation.training.export import fit_temperature, review_threshold
from workstation.training.manifest import assign_splits


def phantom(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:128, :128]
    image = np.zeros((128, 128), np.float32)
    image[((yy - 64) / 50) ** 2 + ((xx - 64) / 40) ** 2 < 1] = 0.5
    for _ in range(6):
        r, c = rng.integers(30, 98, 2)
        image[((yy - r) / 8) ** 2 + ((xx - c) / 8) ** 2 < 1] = rng.uniform(0.6, 1.0)
    return image


def test_near_copies_cluster_and_different_images_do_not() -> None:
    original = phantom(1)
    copies = [original, resize(original, (200, 200)), np.pad(original, 30),
              original[4:-4, 4:-4], phantom(2), phantom(3)]
    signatures = np.stack([dedup.signature(prepare(c).image) for c in copies])
    ids = dedup.clusters(signatures)
    assert len(set(ids[:4].tolist())) == 1
    assert len(set(ids.tolist())) == 3


def test_split_keeps_pinned_groups_and_excludes_leaking_copies() -> None:
    rows = [{"uid": f"u{i}", "group": g, "split": "", "cluster": ""} for i, g in enumerate(
        ["figshare-fold1", "figshare-fold4", "", "", "", "figshare-fold3"])]
    # 0 and 1 look alike across folds; 2 is a copy of both; 3-4 form a free cluster
    clusters = np.array([0, 0, 0, 3, 3, 5])
    stats = assign_splits(rows, clusters)
    assert [r["split"] for r in rows[:3]] == ["train", "test", "excluded"]
    assert rows[3]["split"] == rows[4]["split"] in {"train", "val", "test"}
    assert rows[5]["split"] == "val"
    assert stats["images_excluded"] == 1 and stats["clusters_pinned_to_several_sides"] == 1


def test_temperature_and_review_threshold() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 4000)
    logits = rng.normal(0, 1, (4000, 4))
    logits[np.arange(4000), labels] += 2.0
    base = fit_temperature(logits, labels)
    # logits three times too sharp need a temperature three times higher
    assert fit_temperature(logits * 3.0, labels) == pytest.approx(3.0 * base, rel=0.05)
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    threshold = review_threshold(probabilities, labels)
    tumour = labels != 3
    cleared = (probabilities.argmax(1) == 3) & (probabilities[:, 3] >= threshold)
    assert not (cleared & tumour).any()


def test_knn_distance_separates_unlike_features() -> None:
    rng = np.random.default_rng(0)
    bank = unit(rng.normal(0, 1, (500, 16)) + 5)
    near = rng.normal(0, 1, (10, 16)) + 5
    far = rng.normal(0, 1, (10, 16)) - 5
    assert knn_distance(near, bank, 10).max() < knn_distance(far, bank, 10).min()


def test_metrics() -> None:
    confusion = np.array([[5, 0], [1, 4]])
    f1, per_class = macro_f1(confusion)
    assert per_class[0] == pytest.approx(10 / 11) and f1 == pytest.approx((10 / 11 + 8 / 9) / 2)
    a = np.zeros((4, 4), bool)
    a[:2] = True
    assert dice(a, a) == 1.0 and dice(a, ~a) == 0.0
    perfect = np.eye(4)[[0, 1, 2, 3]]
    assert expected_calibration_error(perfect, np.array([0, 1, 2, 3])) == 0.0


def test_augment_moves_mask_with_image() -> None:
    torch = pytest.importorskip("torch")
    from workstation.training.augment import augment

    images = torch.zeros(4, 1, 32, 32)
    images[:, :, 8:16, 4:10] = 1.0
    masks = images.clone()
    out_images, out_masks = augment(images, masks, torch.Generator().manual_seed(0))
    assert out_images.shape == images.shape and out_masks.shape == masks.shape
    for image, mask in zip(out_images, out_masks, strict=True):
        bright = image[0] > 0.5
        assert (mask[0][bright] > 0.3).float().mean() > 0.8


def test_probes_are_all_local() -> None:
    from workstation.training.probes import probes

    kinds = {p.kind for p in probes()}
    assert kinds == {"dicom", "photo", "synthetic"}


def test_mask_boost_keeps_each_class_share() -> None:
    from workstation.training.train import TrainConfig, sample_weights

    rows = ([{"label": "glioma", "plane": "axial", "mask_known": str(i % 4 == 0)}
             for i in range(40)]
            + [{"label": "no_tumour", "plane": "axial", "mask_known": "1"} for _ in range(20)])
    for row in rows:
        row["mask_known"] = "1" if row["mask_known"] in ("1", "True") else "0"
    plain = sample_weights(rows, TrainConfig())
    boosted = sample_weights(rows, TrainConfig(mask_known_tumour_boost=3.0))
    glioma = np.array([r["label"] == "glioma" for r in rows])
    masked = np.array([r["mask_known"] == "1" for r in rows]) & glioma
    assert boosted[glioma].sum() == pytest.approx(plain[glioma].sum())
    assert boosted[masked].sum() / boosted[glioma].sum() == pytest.approx(0.5)  # 10*3 / (10*3+30)
    assert plain[masked].sum() / plain[glioma].sum() == pytest.approx(0.25)


def test_manifest_moves_excluded_images_out_of_every_split(tmp_path: Path) -> None:
    import csv

    from workstation.training.manifest import MANIFEST_FIELDS, Manifest

    with (tmp_path / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        for i, split in enumerate(["train", "test", "val"]):
            writer.writerow({f: "" for f in MANIFEST_FIELDS} | {
                "index": str(i), "uid": f"nickparvar/x{i}.jpg", "split": split})
    np.savez(tmp_path / "arrays.npz", images=np.zeros((3, 4, 4), np.uint8),
             masks=np.zeros((3, 4, 4), np.uint8))
    (tmp_path / "excluded.csv").write_text("uid,label,reason\nnickparvar/x1.jpg,glioma,CT\n")
    manifest = Manifest.load(tmp_path, exclusions=tmp_path / "excluded.csv")
    assert [r["split"] for r in manifest.rows] == ["train", "excluded", "val"]


def test_committed_exclusions_are_well_formed() -> None:
    import csv

    from workstation.training.manifest import exclusion_group

    path = Path(__file__).resolve().parents[2] / "models" / "labels" / "excluded.csv"
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(r["uid"].startswith(("nickparvar/", "dicom/siemens_epi_axial/"))
                        and r["reason"] for r in rows)
    groups = {exclusion_group(r["reason"]) for r in rows}
    assert groups == {"CT", "phantom"}
    assert len({r["uid"] for r in rows}) == len(rows)


def test_class_loss_importance_weights_undo_the_sampling_boost() -> None:
    from types import SimpleNamespace

    import torch
    from torch.nn import functional as F

    from workstation.training.train import TrainConfig, losses

    torch.manual_seed(0)
    out = SimpleNamespace(class_logits=torch.randn(4, 4), plane_logits=torch.randn(4, 3),
                          mask_logits=torch.zeros(4, 1, 4, 4))
    labels = torch.tensor([0, 1, 2, 3])
    planes = torch.full((4,), -1)
    masks = torch.zeros(4, 1, 16, 16)
    known = torch.zeros(4, dtype=torch.bool)
    config = TrainConfig(label_smoothing=0.0)
    weights = torch.tensor([1.0, 3.0, 0.0, 0.0])
    weighted = losses(out, labels, planes, masks, known, config, weights)["class"]
    each = F.cross_entropy(out.class_logits, labels, reduction="none")
    assert float(weighted) == pytest.approx(float((each[0] + 3 * each[1]) / 4), rel=1e-5)
    plain = losses(out, labels, planes, masks, known, config)["class"]
    assert float(plain) == pytest.approx(float(each.mean()), rel=1e-5)


def test_ood_settings_are_chosen_on_the_outlier_pictures() -> None:
    from workstation.training.export import choose_ood

    rng = np.random.default_rng(1)
    train = unit(rng.standard_normal((3000, 16)) + 4 * np.eye(16)[0])
    val = unit(rng.standard_normal((400, 16)) + 4 * np.eye(16)[0])
    outliers = unit(0.3 * rng.standard_normal((20, 16)) + 4 * np.eye(16)[1])
    chosen, rejected = choose_ood(train, val, outliers)
    assert rejected == 20
    # every candidate rejects all 20: the first one wins (k 10 on the 2000-slice bank)
    assert chosen.method == "knn" and chosen.neighbours == 10
    assert chosen.bank is not None and len(chosen.bank) == 2000
    scores = knn_distance(val, chosen.bank, chosen.neighbours)
    assert (scores > chosen.threshold).mean() <= 0.01


def test_reference_score_is_kept_only_when_it_adds_pictures_within_the_validation_cost(
) -> None:
    """The second novelty score wins on pictures the first misses; the smaller input size
    wins a tie; a score that adds no picture, or costs more than 1% of validation slices
    together with the first, is not shipped."""
    from workstation.training.export import choose_reference

    rng = np.random.default_rng(3)

    def cloud(count: int, axis: int, spread: float = 1.0) -> np.ndarray:
        return unit(spread * rng.standard_normal((count, 16)) + 4 * np.eye(16)[axis])

    bank, val = cloud(500, 0), cloud(400, 0)
    pictures = cloud(10, 1, 0.3)
    first_val, first_pictures = np.zeros(400, bool), np.zeros(10, bool)
    first_pictures[:6] = True  # the first score already refuses six of the ten
    features = {96: (bank, val, pictures), 64: (bank, val, pictures)}
    chosen = choose_reference(features, first_val, first_pictures)
    assert chosen is not None and chosen.pictures_rejected == 10
    assert chosen.input_size == 64  # both sizes tie: the cheaper one
    assert chosen.validation_rejected <= 0.01
    assert choose_reference({64: (bank, val, cloud(10, 0))}, first_val,
                            first_pictures) is None  # adds nothing over the first
    costly = first_val.copy()
    costly[:4] = True  # 1% already: any further validation slice refused is too many
    spread = {64: (bank, val, pictures)}
    assert choose_reference(spread, costly, first_pictures) is None


def test_ood_validation_pictures_are_the_same_every_time() -> None:
    """Export picks the out-of-distribution settings on these pictures: one drawn at random
    (binary_blobs unseeded) made two exports of the same weights choose differently."""
    from workstation.training.probes import ood_validation_images

    first, second = ood_validation_images(), ood_validation_images()
    assert len(first) == len(second) >= 10
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_ood_validation_pictures_are_not_probes() -> None:
    from workstation.training.probes import OOD_VALIDATION, PHOTOS, ood_validation_images

    assert not set(OOD_VALIDATION) & set(PHOTOS)
    images = ood_validation_images()
    assert len(images) >= 10
    assert all(i.ndim == 2 and i.min() >= 0 and i.max() <= 1 for i in images)


def test_contrast_curves_keep_black_and_touch_only_the_chosen_images() -> None:
    import torch

    from workstation.training.augment import random_curves

    generator = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, 64).view(1, 1, 8, 8).repeat(64, 1, 1, 1)
    chosen = torch.arange(64) % 2 == 0
    out = random_curves(ramp, chosen, generator)
    assert torch.equal(out[~chosen], ramp[~chosen])
    assert bool((out[:, 0, 0, 0] == 0).all())  # background stays background
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    changed = (out[chosen] - ramp[chosen]).abs().flatten(1).amax(1)
    assert bool((changed > 0.01).all())
    steps = out[chosen].flatten(1).diff(dim=1)
    monotone = (steps >= -1e-6).all(dim=1)
    assert 0 < int(monotone.sum()) < int(chosen.sum())  # both kinds of curve occur


def test_mahalanobis_wins_where_outliers_break_the_training_correlations() -> None:
    from workstation.analysis.ood import mahalanobis_distance
    from workstation.training.export import choose_ood

    rng = np.random.default_rng(1)

    def sample(count: int, sign: float) -> np.ndarray:
        x = 0.3 * rng.standard_normal((count, 16))
        x[:, 0] += 4
        shared = rng.standard_normal(count)
        x[:, 1], x[:, 2] = shared, sign * shared + 0.05 * rng.standard_normal(count)
        return unit(x)

    val = sample(400, 1)
    chosen, rejected = choose_ood(sample(3000, 1), val, sample(20, -1))
    assert chosen.method == "mahalanobis" and rejected >= 18
    assert chosen.mean is not None and chosen.precision is not None
    scores = mahalanobis_distance(val, chosen.mean, chosen.precision)
    assert (scores > chosen.threshold).mean() <= 0.02


def test_ct_check_separates_and_keeps_its_validation_false_alarms_low() -> None:
    from workstation.analysis.ood import logistic_probability
    from workstation.training.export import fit_logistic_check

    rng = np.random.default_rng(2)
    mr = rng.standard_normal((2000, 8)) + 6 * np.eye(8)[0]
    ct = rng.standard_normal((40, 8)) + 6 * np.eye(8)[1]
    val_mr = rng.standard_normal((400, 8)) + 6 * np.eye(8)[0]
    check = fit_logistic_check(mr, ct, val_mr)
    new_ct = rng.standard_normal((50, 8)) + 6 * np.eye(8)[1]
    assert (logistic_probability(new_ct, check["weights"], check["bias"])
            > check["threshold"]).mean() > 0.9
    assert (logistic_probability(val_mr, check["weights"], check["bias"])
            > check["threshold"]).mean() <= 0.01


def _synthetic_cache(tmp_path: Path, with_masks: bool) -> Path:
    """A cached manifest of 8 random training slices, two per class; ``with_masks``: every
    second slice has a known mask (a square; the last, a no-tumour slice, known empty)."""
    import csv

    from workstation.analysis.preprocess import INPUT_SIZE
    from workstation.training.manifest import MANIFEST_FIELDS

    cache = tmp_path / "cache"
    cache.mkdir()
    labels = ["glioma", "meningioma", "pituitary", "no_tumour"] * 2
    with (cache / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        for i, label in enumerate(labels):
            writer.writerow({f: "" for f in MANIFEST_FIELDS} | {
                "index": str(i), "uid": f"synthetic/{i}", "label": label, "plane": "axial",
                "mask_known": "1" if with_masks and i % 2 else "0", "split": "train"})
    masks = np.zeros((8, INPUT_SIZE, INPUT_SIZE), np.uint8)
    if with_masks:
        masks[1:7:2, 40:80, 50:90] = 1
    rng = np.random.default_rng(0)
    np.savez(cache / "arrays.npz",
             images=rng.integers(0, 255, (8, INPUT_SIZE, INPUT_SIZE), dtype=np.uint8),
             masks=masks)
    return cache


def test_train_without_export_needs_only_the_cache(tmp_path: Path) -> None:
    """`train --no-export` runs where the datasets are not (a GPU machine): it reads the
    cached manifest alone, records the machine it trained on, and --export-only finds the
    checkpoint it left."""
    import json

    from workstation.cli import main

    cache = _synthetic_cache(tmp_path, with_masks=False)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"epochs": 1, "samples_per_epoch": 4, "batch_size": 2}))
    missing = tmp_path / "no-datasets"

    assert main(["train", "--data", str(missing), "--cache", str(cache), "--config",
                 str(config), "--device", "cpu", "--no-export"]) == 0
    history = json.loads((cache / "run" / "history.json").read_text())
    assert (cache / "run" / "checkpoint.pt").is_file()
    assert history["device"] == "cpu" and "cores" in history["machine"]
    assert len(history["history"]) == 1
    # exporting reads the datasets (calibration, outlier pictures): refused without them
    assert main(["train", "--data", str(missing), "--cache", str(cache), "--export-only"]) == 2


def _tiny_run_args(tmp_path: Path, cache: Path, config: dict[str, object]) -> list[str]:
    """`workstation train` arguments for a seconds-long CPU run on the synthetic cache."""
    import json

    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"epochs": 1, "samples_per_epoch": 4, "batch_size": 2,
                                **config}))
    return ["--data", str(tmp_path / "none"), "--cache", str(cache), "--config", str(path),
            "--device", "cpu", "--no-export"]


def _weights(path: Path) -> dict[str, Any]:
    import torch

    loaded: dict[str, Any] = torch.load(path, weights_only=True)
    return loaded


@pytest.mark.parametrize("shape", [(48, False), (16, True)])
def test_decoder_stage_changes_the_mask_decoder_alone_and_resumes_the_same(
        tmp_path: Path, shape: tuple[int, bool]) -> None:
    """Stage 3 trains the mask decoder on the frozen network: every other tensor (batch-norm
    statistics included) is the stage 2 tensor, so no verdict can move; resuming from the
    stage 2 checkpoint gives the same weights as the whole run. A decoder shape other than
    stages 1-2's starts a fresh decoder of that shape, and the weights load by their shape."""
    import json

    import torch

    from workstation.analysis.network import TriageNet, decoder_shape
    from workstation.cli import main

    cache = _synthetic_cache(tmp_path, with_masks=True)
    common = _tiny_run_args(tmp_path, cache, {"decoder_epochs": 2, "decoder_dice_weight": 3.0,
                                              "decoder_width": shape[0],
                                              "decoder_merge_convs": shape[1]})
    run = cache / "run"

    def weights(name: str) -> dict[str, torch.Tensor]:
        return _weights(run / name)

    assert main(["train", *common]) == 0
    before, after = weights("checkpoint_stage2.pt"), weights("checkpoint.pt")
    moved = {key for key in after
             if key not in before or not torch.equal(before[key], after[key])}
    assert moved and all(key.startswith("decoder.") for key in moved)
    assert all(key in after for key in before if not key.startswith("decoder."))
    assert decoder_shape(before) == (48, False) and decoder_shape(after) == shape
    TriageNet.for_weights(after).load_state_dict(after)  # strict: every key fits
    assert any(key.startswith("backbone.") and "running_mean" in key for key in before)
    history = json.loads((run / "history.json").read_text())["history"]
    assert len(history) == 3 and set(history[-1]) == {"epoch", "minutes", "learning_rate",
                                                       "mask"}

    assert main(["train", *common, "--from-stage2"]) == 0
    resumed = weights("checkpoint.pt")
    assert all(torch.equal(after[key], resumed[key]) for key in after)
    assert len(json.loads((run / "history.json").read_text())["history"]) == 3


def test_class_head_refit_moves_the_class_head_alone_and_resumes_the_same(
        tmp_path: Path) -> None:
    """Stage 4 refits the class head on the frozen network's features: every other tensor is
    the stage 3 tensor (masks, plane calls and out-of-distribution features stay as they
    were); resuming from the stage 3 checkpoint gives the same weights as the whole run, and
    the model card counts the refit apart from the epochs."""
    import json

    import torch

    from workstation.cli import main
    from workstation.training.model_card import render

    cache = _synthetic_cache(tmp_path, with_masks=True)
    common = _tiny_run_args(tmp_path, cache, {"decoder_epochs": 1, "head_refit_steps": 5})
    run = cache / "run"

    def weights(name: str) -> dict[str, torch.Tensor]:
        return _weights(run / name)

    assert main(["train", *common]) == 0
    before, after = weights("checkpoint_stage3.pt"), weights("checkpoint.pt")
    assert before.keys() == after.keys()
    moved = {key for key in after if not torch.equal(before[key], after[key])}
    assert moved == {"class_head.weight", "class_head.bias"}
    history = json.loads((run / "history.json").read_text())
    assert len(history["history"]) == 3 and history["history"][-1]["steps"] == 5

    assert main(["train", *common, "--from-stage3"]) == 0
    resumed = weights("checkpoint.pt")
    assert all(torch.equal(after[key], resumed[key]) for key in after)
    assert len(json.loads((run / "history.json").read_text())["history"]) == 3

    card = Path(__file__).resolve().parents[2] / "models"
    report = json.loads((card / "evaluation.json").read_text())
    description = json.loads((card / "triage-v2.json").read_text())
    text = render(report, description, history, None)
    assert "- Training: 2 epochs and a class-head refit on the frozen network," in text


def test_model_card_quotes_the_gpu_measurements_kept_in_models() -> None:
    import json

    from workstation.training.model_card import _measured_elsewhere

    folder = Path(__file__).resolve().parents[2] / "models" / "measurements"
    records = {p.name: json.loads(p.read_text()) for p in folder.glob("*.json")}
    lines = _measured_elsewhere(records)
    assert len(lines) == len(records)
    history = next(r for r in records.values() if "history" in r)
    changed = history["config"] | {"fine_tune_epochs": history["config"]["fine_tune_epochs"] + 1}
    assert "the shipped config" in " ".join(_measured_elsewhere(records, history["config"]))
    other = " ".join(_measured_elsewhere(records, changed))
    assert "an earlier config (fine_tune_epochs" in other and "a time, not these weights" in other
    # a stage the measured run did not have: its config lacks the key, the default held
    staged = " ".join(_measured_elsewhere(records, history["config"] | {"decoder_epochs": 20}))
    assert "an earlier config (decoder_epochs 0, shipped 20)" in staged
    for name, record in records.items():
        line = next(line for line in lines if name in line)
        if "ours_cuda" in record:
            assert f"{record['ours_cuda']['ms_per_slice']} ms/slice" in line
            # a speed measured on other weights says so
            assert "an earlier model" in line
            shipped = " ".join(_measured_elsewhere(records, None, record["model"]["sha256"]))
            assert f"model {record['model']['version']}." in shipped
            assert "an earlier model" not in shipped
        else:
            assert f"{record['history'][-1]['minutes']} minutes" in line
            assert record["device"] == "cuda"


def test_export_calibrates_on_the_apps_float_inputs(datasets: Path, tmp_path: Path) -> None:
    """Export reads the validation images as the app does (float, from the datasets); the
    cache holds the same inputs rounded to 8 bits."""
    from workstation.analysis.preprocess import INPUT_SIZE
    from workstation.training.export import app_inputs
    from workstation.training.sources import figshare_items

    items = []
    for item in figshare_items(datasets):
        items.append(item)
        if len(items) == 3:
            break
    uids = [items[2].uid, items[0].uid]  # the caller's order, not the datasets'
    inputs = app_inputs(datasets, tmp_path, uids)
    assert inputs.shape == (2, INPUT_SIZE, INPUT_SIZE) and inputs.dtype == np.float32
    assert np.array_equal(inputs[0], prepare(items[2].image).image)
    assert not np.array_equal(inputs[0], np.round(inputs[0] * 255) / 255)  # not 8-bit
    with pytest.raises(ValueError, match="not found"):
        app_inputs(datasets, tmp_path, ["figshare/no-such-image.png"])


def test_summary_counts_regions_drawn_on_normal_slices_only() -> None:
    """A suspect-region outline on a normal slice is a false region the reader sees: the
    summary counts it among normal slices, not tumour ones."""
    from workstation.analysis.findings import CLASSES, Verdict
    from workstation.training.evaluate import summarise

    def record(label: str, drawn: bool, verdict: Verdict) -> dict[str, object]:
        probabilities = np.full(4, 0.01, np.float32)
        probabilities[CLASSES.index(label)] = 0.97
        return {"uid": label, "source": "synthetic", "label": label, "plane": "axial",
                "plane_method": "model", "logits": np.log(probabilities),
                "probabilities": probabilities,
                "plane_probabilities": np.array([0.9, 0.05, 0.05], np.float32),
                "verdict": verdict, "peak": None, "region_drawn": drawn}

    records = [record("no_tumour", True, Verdict.NO_TUMOUR),
               record("no_tumour", False, Verdict.NO_TUMOUR),
               record("no_tumour", False, Verdict.REVIEW),
               record("glioma", True, Verdict.TUMOUR)]
    summary = summarise(records, None)  # type: ignore[arg-type]
    assert summary["normal_slices_with_region_drawn"] == 1 / 3
    assert summary["cleared_slices_with_region_drawn"] == 1  # the record made by hand
    assert summary["tumour_slices_cleared_as_no_tumour"] == 0


def test_specificity_counts_each_near_duplicate_cluster_once() -> None:
    """Five copies of one normal image called tumour are five slices but one cluster; a
    cluster with any slice called tumour counts as called tumour."""
    from workstation.analysis.findings import CLASSES, Verdict
    from workstation.training.evaluate import summarise

    def record(cluster: str, called: str) -> dict[str, object]:
        probabilities = np.full(4, 0.01, np.float32)
        probabilities[CLASSES.index(called)] = 0.97
        verdict = Verdict.NO_TUMOUR if called == "no_tumour" else Verdict.TUMOUR
        return {"uid": cluster, "source": "synthetic", "label": "no_tumour",
                "cluster": cluster, "plane": "axial", "plane_method": "model",
                "logits": np.log(probabilities), "probabilities": probabilities,
                "plane_probabilities": np.array([0.9, 0.05, 0.05], np.float32),
                "verdict": verdict, "peak": None, "region_drawn": False}

    records = ([record("copies", "glioma")] * 5 + [record("mixed", "pituitary"),
                                                   record("mixed", "no_tumour")]
               + [record(f"single {k}", "no_tumour") for k in range(8)])
    axial = summarise(records, None)["specificity_by_plane"]  # type: ignore[arg-type]
    axial = axial["axial"]
    assert axial["normal_slices"] == 15
    assert axial["specificity"] == 9 / 15
    assert axial["slices_called_tumour"] == 6
    assert (axial["clusters"], axial["clusters_called_tumour"]) == (10, 2)
    assert axial["specificity_by_cluster"] == 8 / 10
    listed = summarise(records, None)["normal_slices_called_tumour"]  # type: ignore[arg-type]
    assert [(r["cluster"], r["predicted"]) for r in listed] == (
        [("copies", "glioma")] * 5 + [("mixed", "pituitary")])


def test_model_card_describes_the_second_novelty_score_and_the_refused_slices() -> None:
    """The card says how the second score was set and which test slices were refused; a
    model or evaluation from before the second score still renders (no such line)."""
    import json

    from workstation.training.model_card import render

    folder = Path(__file__).resolve().parents[2] / "models"
    report = json.loads((folder / "evaluation.json").read_text())
    description = json.loads((folder / "triage-v2.json").read_text())
    calibration = description["calibration"]
    text = render(report, description, None, None)
    assert "- Second out-of-distribution score: cosine distance to the" in text
    assert (f"reject {calibration['ood_validation_pictures_rejected_by_either']} of them"
            in text)
    refused = report["test"]["cannot_assess_by_label"]
    assert ", ".join(f"{k} {v}" for k, v in refused.items()) in text
    probe = report["ood"]["probes"][0]
    assert (f"({probe['ood_score_relative']} / {probe['reference_ood_score_relative']} / "
            f"{probe['picture_score_relative']})" in text)
    assert "the two novelty scores and the picture score over their thresholds" in text
    assert "- Picture check on pixels alone (outlier exposure)" in text
    before_pictures = {**report, "ood": {**report["ood"], "probes": [
        {k: v for k, v in p.items() if k != "picture_score_relative"}
        for p in report["ood"]["probes"]]}}
    text = render(before_pictures, description, None, None)
    assert (f"({probe['ood_score_relative']} / {probe['reference_ood_score_relative']})"
            in text)
    assert "the two novelty scores over their thresholds" in text
    mahalanobis = {**description, "calibration": {**calibration,
                                                  "reference_ood_method": "mahalanobis"}}
    assert "Second out-of-distribution score: Mahalanobis" in render(report, mahalanobis,
                                                                     None, None)
    older = {**description, "calibration": {k: v for k, v in calibration.items()
                                            if not k.startswith("reference_ood")}}
    old_report = {**report, "test": {k: v for k, v in report["test"].items()
                                     if not k.startswith("cannot_assess_by")},
                  "ood": {**report["ood"], "probes": [
                      {k: v for k, v in p.items() if "relative" not in k}
                      for p in report["ood"]["probes"]]}}
    old_text = render(old_report, older, None, None)
    assert "Second out-of-distribution score" not in old_text
    assert f"({report['ood']['probes'][0]['ood_score']})" in old_text


def test_manifest_numbers_dicom_slices_as_before_volumes(datasets: Path) -> None:
    """The training manifest's ``dicom/<series>/<index>`` keeps the reader's order from before
    series were split into volumes (position, then Instance Number): same split, same
    weights."""
    from workstation.imaging import load_study
    from workstation.training.sources import manifest_order

    (series,) = load_study([datasets / "dicom" / "ge_epi_axial"]).series
    ordered = manifest_order(series)
    assert len(ordered) == 150 and set(map(id, ordered)) == set(map(id, series.slices))
    keys = [(round(s.position or 0.0, 3), s.instance_number) for s in ordered]
    assert keys == sorted(keys)  # type: ignore[type-var]
    assert ordered[:10] != list(series.slices[:10])  # the volumes order the series itself
    mosaic = load_study([datasets / "dicom" / "siemens_epi_mosaic_orientation" / "ax"
                         / "axdesc35"]).series[0]
    tiles = manifest_order(mosaic)  # file after file, tiles in stored order
    assert [(s.instance_number, s.frame) for s in tiles] == sorted(
        (s.instance_number, s.frame) for s in tiles)  # type: ignore[type-var]


def _synthetic_volume_cache(cache: Path) -> None:
    """Six whole-series slices beside the synthetic manifest: glioma and tumour-free slices
    of a (skull-stripped) glioma volume and slices of a healthy head."""
    import csv

    from workstation.analysis.preprocess import INPUT_SIZE
    from workstation.training.volume_cache import ARRAYS_NAME, CSV_NAME, FIELDS

    cases = [("volumes/synthetic/t1c", "glioma"), ("volumes/synthetic/t1c", "glioma"),
             ("volumes/synthetic/t1c", "no_tumour"), ("volumes/synthetic/t1c", "no_tumour"),
             ("normal/nifti/synthetic_t1", "no_tumour"),
             ("normal/nifti/synthetic_t1", "no_tumour")]
    with (cache / CSV_NAME).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for i, (case, label) in enumerate(cases):
            writer.writerow({f: "" for f in FIELDS} | {
                "index": str(i), "uid": f"vol:{case}/axial/{i}", "label": label,
                "source": case.split("/")[0], "plane": "axial", "mask_known": "1",
                "split": "train", "case": case})
    masks = np.zeros((6, INPUT_SIZE, INPUT_SIZE), np.uint8)
    masks[:2, 60:90, 60:90] = 1
    rng = np.random.default_rng(1)
    np.savez(cache / ARRAYS_NAME,
             images=rng.integers(0, 255, (6, INPUT_SIZE, INPUT_SIZE), dtype=np.uint8),
             masks=masks)


def test_whole_series_stage_trains_on_the_volumes_and_resumes_the_same(tmp_path: Path
                                                                       ) -> None:
    """Stage 5 continues from the stage 4 checkpoint on 2D and volume slices together;
    resuming from that checkpoint (the route that starts from shipped weights) gives the
    whole run's weights bit for bit."""
    import json

    import torch

    from workstation.cli import main

    cache = _synthetic_cache(tmp_path, with_masks=True)
    _synthetic_volume_cache(cache)
    common = _tiny_run_args(tmp_path, cache, {"series_epochs": 1})
    run = cache / "run"
    assert main(["train", *common]) == 0
    before, after = _weights(run / "checkpoint_stage4.pt"), _weights(run / "checkpoint.pt")
    assert any(not torch.equal(before[key], after[key]) for key in after)
    history = json.loads((run / "history.json").read_text())["history"]
    assert len(history) == 2  # stage 1 and stage 5, one epoch each
    assert main(["train", *common, "--from-stage4"]) == 0
    resumed = _weights(run / "checkpoint.pt")
    assert all(torch.equal(after[key], resumed[key]) for key in after)


def test_picture_check_examples_are_seeded_crops_of_the_validation_pictures_not_probes(
        ) -> None:
    from workstation.training.probes import (
        OOD_VALIDATION,
        PHOTOS,
        ood_validation_images,
        picture_crops,
    )

    pictures = ood_validation_images()
    crops = picture_crops(per_picture=3)
    assert len(crops) == 4 * len(pictures)  # each picture whole, then three crops of it
    again = picture_crops(per_picture=3)
    assert all(np.array_equal(a, b) for a, b in zip(crops, again, strict=True))
    assert all(np.array_equal(crops[4 * k], p) for k, p in enumerate(pictures))
    for crop in crops:
        assert crop.dtype == np.float32 and crop.ndim == 2
        assert crop.min() >= 0.0 and crop.max() <= 1.0
        assert crop.shape[0] == crop.shape[1] or crop.shape in [p.shape for p in pictures]
    assert not set(PHOTOS) & set(OOD_VALIDATION)  # the probes test the check


def test_model_card_splits_each_series_refusals_by_reason() -> None:
    """Refused healthy slices per series: those without tissue apart from those refused as
    not brain MRI; rows from before that split render as before."""
    from workstation.training.model_card import series_section

    row = {"series": "normal/nifti/x/sagittal", "truth": "no_tumour", "verdict": "review",
           "predicted_class": "no_tumour", "assessed_images": 100, "images_called_tumour": 0,
           "images_to_review": 10, "images_refused": 30, "images_refused_no_tissue": 24,
           "images_refused_not_brain_mri": 5, "clear_slices": 100,
           "clear_slices_called_tumour": 0, "clear_slices_with_region_drawn": 0,
           "clear_slices_tumour_class_leading": 0, "held_out": True}
    text = "\n".join(series_section({"series": [row]}, None))
    assert "| 30 (30%): 24 no tissue, 5 not brain MRI, 1 other |" in text
    assert ("| of those, refused as not brain MRI (per series above: no tissue, not brain "
            "MRI, other) | 5 of 100 |") in text
    older = {k: v for k, v in row.items() if "refused_" not in k}
    text = "\n".join(series_section({"series": [older]}, None))
    assert "| 30 (30%) |" in text and "refused as not brain MRI" not in text
