"""Evaluate the shipped model on the grouped test split and write MODEL_CARD.md.

Runs the app's own path: each test image is read by ``workstation.imaging``, prepared by
``analysis.preprocess`` and analysed by ``analysis.engine``; masks are compared at the
input image's resolution.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from workstation.analysis.engine import Engine, SlicePrediction
from workstation.analysis.findings import CLASSES, PLANES, Finding, Verdict
from workstation.analysis.triage import series_verdict, slice_finding
from workstation.training.manifest import Manifest, exclusion_group, read_exclusions
from workstation.training.probes import probes, without_metadata
from workstation.training.sources import Item, all_items_for


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray,
                               bins: int = 15) -> float:
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def macro_f1(confusion: np.ndarray) -> tuple[float, list[float]]:
    f1s = []
    for k in range(len(confusion)):
        tp = confusion[k, k]
        precision = tp / max(1, confusion[:, k].sum())
        recall = tp / max(1, confusion[k].sum())
        total = precision + recall
        f1s.append(0.0 if total == 0 else 2 * precision * recall / total)
    return float(np.mean(f1s)), f1s


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    total = prediction.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * (prediction & truth).sum() / total)


def analysed(engine: Engine, items: Iterable[Item], batch: int = 32
             ) -> Iterator[tuple[Item, npt.NDArray[np.float32], SlicePrediction, Finding]]:
    """Each item through the app's own path (prepare, network, OOD score, review policy):
    the item, its raw class logits, the prediction on its image grid and its finding."""
    from workstation.analysis.preprocess import prepare

    policy = engine.calibration.policy()
    items = list(items)
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        predictions, raw = engine.predictions([prepare(item.image) for item in chunk])
        for k, (item, prediction) in enumerate(zip(chunk, predictions, strict=True)):
            yield item, raw["logits"][k], prediction, slice_finding(0, item.uid, prediction,
                                                                    policy, None)


def evaluate_items(engine: Engine, items: Iterable[Item], rows: dict[str, dict[str, str]],
                   batch: int = 32) -> dict[str, Any]:
    records: list[dict[str, Any]] = []
    for item, logits, prediction, finding in analysed(engine, items, batch):
        row = rows[item.uid]
        record: dict[str, Any] = {
            "uid": item.uid, "source": item.source, "label": item.label,
            "cluster": row["cluster"], "plane": row["plane"], "plane_method": row["plane_method"],
            "logits": logits, "probabilities": prediction.probabilities,
            "plane_probabilities": prediction.plane_probabilities,
            "verdict": finding.verdict, "peak": finding.peak,
            # an outline the viewer and the report draw (on a normal slice: a false region)
            "region_drawn": finding.mask_area_px > 0}
        if item.mask is not None and item.mask_known and item.mask.any():
            truth = item.mask.astype(bool)
            record["dice"] = dice(prediction.mask >= 0.5, truth)
            record["pointing_hit"] = bool(finding.peak is not None and truth[finding.peak])
        records.append(record)
    return summarise(records, engine)


def cluster_specificity(records: list[dict[str, Any]], called_tumour: np.ndarray
                         ) -> dict[str, Any]:
    """Specificity with each near-duplicate cluster counted once (a slice without a
    cluster is its own): the sources hold copies of one image, and a copy called tumour
    counts once per copy in the slice figure. A cluster counts as called tumour when any of
    its slices is."""
    clusters: dict[str, bool] = {}
    for k, (record, tumour) in enumerate(zip(records, called_tumour, strict=True)):
        key = record.get("cluster") or f"slice {k}"
        clusters[key] = clusters.get(key, False) or bool(tumour)
    wrong = sum(clusters.values())
    return {"clusters": len(clusters), "clusters_called_tumour": wrong,
            "slices_called_tumour": int(np.sum(called_tumour)),
            "specificity_by_cluster": 1.0 - wrong / len(clusters) if clusters else None}


def summarise(records: list[dict[str, Any]], engine: Engine) -> dict[str, Any]:
    labels = np.array([CLASSES.index(r["label"]) for r in records])
    probabilities = np.stack([r["probabilities"] for r in records])
    logits = np.stack([r["logits"] for r in records])
    raw = np.exp(logits - logits.max(1, keepdims=True))
    raw /= raw.sum(1, keepdims=True)
    predicted = probabilities.argmax(1)
    confusion = np.zeros((4, 4), dtype=int)
    for t, p in zip(labels, predicted, strict=True):
        confusion[t, p] += 1
    f1, per_class_f1 = macro_f1(confusion)
    no = CLASSES.index("no_tumour")
    verdicts = [r["verdict"] for r in records]
    tumour = labels != no
    cleared = np.array([v is Verdict.NO_TUMOUR for v in verdicts])
    review = np.array([v is Verdict.REVIEW for v in verdicts])
    unassessable = np.array([v is Verdict.CANNOT_ASSESS for v in verdicts])
    by_plane: dict[str, dict[str, Any]] = {}
    for plane in PLANES:
        normal = np.array([r["plane"] == plane for r in records]) & ~tumour
        if normal.any():
            by_plane[plane] = {
                "normal_slices": int(normal.sum()),
                "specificity": float((predicted[normal] == no).mean()),
                "cleared_as_no_tumour": float(cleared[normal].mean()),
                "sent_to_review": float(review[normal].mean()),
                **cluster_specificity([r for r, n in zip(records, normal, strict=True) if n],
                                       predicted[normal] != no),
            }
    plane_known = [r for r in records if r["plane"]]
    plane_exact = [r for r in plane_known if r["plane_method"] in ("dicom", "volume")]

    def plane_accuracy(rs: list[dict[str, Any]]) -> float | None:
        if not rs:
            return None
        return float(np.mean([PLANES[int(np.argmax(r["plane_probabilities"]))] == r["plane"]
                              for r in rs]))

    masked = [r for r in records if "dice" in r]
    by_source = defaultdict(list)
    for r, p in zip(records, predicted, strict=True):
        by_source[r["source"]].append(CLASSES[p] == r["label"])
    return {
        "slices": len(records),
        "by_source": {k: {"slices": len(v), "accuracy": float(np.mean(v))}
                      for k, v in sorted(by_source.items())},
        "accuracy": float((predicted == labels).mean()),
        "macro_f1": f1,
        "per_class": {c: {"recall": float(confusion[k, k] / max(1, confusion[k].sum())),
                          "f1": per_class_f1[k], "slices": int(confusion[k].sum())}
                      for k, c in enumerate(CLASSES)},
        "confusion": confusion.tolist(),
        "tumour_slices_cleared_as_no_tumour": int((tumour & cleared).sum()),
        "cleared_tumour_slices": [
            {"uid": r["uid"], "label": r["label"],
             "p_no_tumour": round(float(r["probabilities"][no]), 4)}
            for r, bad in zip(records, tumour & cleared, strict=True) if bad],
        "normal_slices_called_tumour": [
            {"uid": r["uid"], "cluster": r.get("cluster", ""), "plane": r["plane"],
             "predicted": CLASSES[p], "probability": round(float(r["probabilities"][p]), 4)}
            for r, p in zip(records, predicted, strict=True)
            if r["label"] == "no_tumour" and p != no],
        "tumour_slices": int(tumour.sum()),
        "review_rate_all": float(review.mean()),
        "review_rate_normal": float(review[~tumour].mean()) if (~tumour).any() else None,
        "cannot_assess_rate": float(unassessable.mean()),
        # brain MRI slices refused: each goes to a reader, neither flagged nor cleared
        "cannot_assess_by_label": dict(sorted(Counter(
            r["label"] for r, u in zip(records, unassessable, strict=True) if u).items())),
        "cannot_assess_by_source": dict(sorted(Counter(
            r["source"] for r, u in zip(records, unassessable, strict=True) if u).items())),
        "ece_before": expected_calibration_error(raw, labels),
        "ece_after": expected_calibration_error(probabilities, labels),
        "specificity_by_plane": by_plane,
        "plane_accuracy_all_labelled": plane_accuracy(plane_known),
        "plane_accuracy_exact_labels": plane_accuracy(plane_exact),
        "plane_labelled_slices": len(plane_known),
        "plane_exact_slices": len(plane_exact),
        "mask_dice_mean": float(np.mean([r["dice"] for r in masked])) if masked else None,
        "pointing_game_hit_rate": (float(np.mean([r["pointing_hit"] for r in masked]))
                                   if masked else None),
        "mask_slices": len(masked),
        "normal_slices_with_region_drawn": (
            float(np.mean([r["region_drawn"] for r, t in zip(records, tumour, strict=True)
                           if not t])) if (~tumour).any() else None),
        # the policy sends these to review: a slice cleared as no tumour shows no outline
        "cleared_slices_with_region_drawn": int(sum(
            r["region_drawn"] for r, c in zip(records, cleared, strict=True) if c)),
    }


def evaluate_probes(engine: Engine) -> dict[str, Any]:
    policy = engine.calibration.policy()
    results = []
    for probe in probes():
        predictions = engine.analyse(probe.series.slices)  # the header does not change them
        with_header = series_verdict(probe.series, predictions, policy)
        image_only = series_verdict(without_metadata(probe.series), predictions, policy)
        first = max(f.ood_score for f in image_only.findings)
        second = max(f.reference_ood_score for f in image_only.findings)
        picture = max(p.picture_score for p in predictions)
        results.append({"probe": probe.name, "kind": probe.kind,
                        "verdict": with_header.verdict.value,
                        "verdict_image_only": image_only.verdict.value,
                        "ood_score": round(first, 2),
                        # each score over its threshold: above 1 refuses the image
                        "ood_score_relative": round(first / policy.ood_threshold, 2),
                        "reference_ood_score_relative": (
                            round(second / policy.reference_ood_threshold, 2)
                            if np.isfinite(policy.reference_ood_threshold) else None),
                        "picture_score_relative": (
                            round(picture / policy.picture_threshold, 2)
                            if policy.picture_threshold < 1.0 else None)})
    rejected = sum(r["verdict"] == "cannot_assess" for r in results)
    rejected_image = sum(r["verdict_image_only"] == "cannot_assess" for r in results)
    return {"probes": results, "rejected": rejected, "rejected_image_only": rejected_image,
            "total": len(results)}


def evaluate_excluded(engine: Engine, items: Iterable[Item], rows: dict[str, dict[str, str]],
                      batch: int = 32) -> dict[str, Any]:
    """The images of the datasets that are not brain MRI (CT found in Nickparvar, the QA
    phantom in the DICOM folder), one summary per group: they should come out
    cannot_assess, and a tumour among them must never be cleared. Rejection is also given
    by the side of the split each image would have been on: export fits the CT check on
    the training side, so the test side is the held-out figure."""
    results = [{"uid": item.uid, "label": item.label,
                "reason": rows[item.uid].get("exclusion", ""),
                "side": rows[item.uid].get("excluded_from", ""),
                "verdict": finding.verdict.value, "ood_score": round(prediction.ood_score, 3),
                "reference_ood_score": round(prediction.reference_ood_score, 3),
                "ct_score": round(prediction.ct_score, 3)}
               for item, _, prediction, finding in analysed(engine, items, batch)]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        groups[exclusion_group(str(result["reason"]))].append(result)

    def rejected_by_side(members: list[dict[str, Any]]) -> dict[str, str]:
        sides: dict[str, list[bool]] = defaultdict(list)
        for r in members:
            sides[r["side"]].append(r["verdict"] == Verdict.CANNOT_ASSESS.value)
        return {side: f"{sum(v)} of {len(v)}" for side, v in sorted(sides.items())}

    return {name: {
        "images": len(members),
        "verdicts": dict(sorted(Counter(r["verdict"] for r in members).items())),
        "labels": dict(sorted(Counter(r["label"] for r in members).items())),
        "rejected_by_side": rejected_by_side(members),
        "tumour_labelled": sum(r["label"] != "no_tumour" for r in members),
        "tumour_labelled_cleared": [r["uid"] for r in members
                                    if r["label"] != "no_tumour"
                                    and r["verdict"] == Verdict.NO_TUMOUR.value],
        "results": members} for name, members in sorted(groups.items())}


def cpu_speed(engine: Engine, items: list[Item], repeats: int = 3) -> dict[str, Any]:
    from workstation.imaging import Slice, Window
    from workstation.imaging.pixels import frozen

    slices = [Slice(frozen(i.image), frozen(i.image), Window(0.5, 1, "full-range"), i.uid)
              for i in items[:64]]
    engine.analyse(slices[:16])
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine.analyse(slices)
        times.append(time.perf_counter() - started)
    best = min(times)
    return {"ms_per_slice": 1000 * best / len(slices), "slices_per_second": len(slices) / best,
            "slices": len(slices), "backend": engine.backend}


def run_split(datasets: Path, cache: Path, plane_labels: Path, exclusions: Path,
              description: Path | None, split: str, device: str = "cpu") -> dict[str, Any]:
    """The test-split measures on another split (``val``: for choosing between runs without
    looking at the test split); no probes, no CPU timing, no model card."""
    manifest = Manifest.load(cache, plane_labels, exclusions)
    rows = {r["uid"]: r for r in manifest.rows}
    uids = {uid for uid, r in rows.items() if r["split"] == split}
    engine = Engine(description, device=device, threads=2)
    return {"model": {"name": engine.info.name, "sha256": engine.info.sha256}, "split": split,
            split: evaluate_items(engine, all_items_for(datasets, cache, uids), rows)}


def run(datasets: Path, cache: Path, plane_labels: Path, exclusions: Path,
        description: Path | None, device: str = "cpu") -> dict[str, Any]:
    manifest = Manifest.load(cache, plane_labels, exclusions)
    excluded_uids = set(read_exclusions(exclusions))
    rows = {r["uid"]: r for r in manifest.rows}
    test_uids = {uid for uid, r in rows.items() if r["split"] == "test"}
    engine = Engine(description, device=device, threads=2)
    test_items = list(all_items_for(datasets, cache, test_uids))
    report = {"model": {"name": engine.info.name, "version": engine.info.version,
                        "sha256": engine.info.sha256},
              "device": engine.device,
              "test": evaluate_items(engine, test_items, rows),
              "ood": evaluate_probes(engine),
              "excluded": evaluate_excluded(
                  engine, all_items_for(datasets, cache, excluded_uids), rows),
              "cpu": cpu_speed(Engine(description, device="cpu", threads=2), test_items),
              "split": json.loads((cache / "manifest_stats.json").read_text()),
              "split_counts": dict(Counter(r["split"] for r in manifest.rows))}
    return report
