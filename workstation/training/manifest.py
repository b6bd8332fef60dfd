"""Build the manifest over all sources, the preprocessed cache and the grouped split.

``workstation train`` calls ``build`` once; the result lives in the cache folder (never in
the repository): ``manifest.csv`` (one row per image) and ``arrays.npz`` (network-ready
images and mask targets, uint8).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workstation.analysis.preprocess import INPUT_SIZE, mask_to_input, prepare
from workstation.training import dedup
from workstation.training.sources import all_items

# Fixed sides for the groups that must not be split; everything else is split by cluster.
FIXED_SPLIT = {
    "figshare-fold1": "train", "figshare-fold2": "train", "figshare-fold3": "val",
    "figshare-fold4": "test",
    "dicom-mosaic-asc": "train", "dicom-mosaic-int": "val", "dicom-mosaic-desc": "test",
    "dicom-ge_epi_axial": "train", "dicom-siemens_epi_axial": "test",
    "brats-t1c": "train", "brats-t2f": "train", "brats-t1n": "val", "brats-t2w": "test",
}
FREE_SPLIT = (("train", 0.70), ("val", 0.15), ("test", 0.15))
MANIFEST_FIELDS = ("index", "uid", "source", "label", "plane", "plane_method", "group",
                   "mask_known", "mask_pixels", "foreground", "cluster", "split")


@dataclass(frozen=True)
class Manifest:
    rows: list[dict[str, str]]
    images: np.ndarray  # (N, S, S) uint8
    masks: np.ndarray  # (N, S, S) uint8 0/1

    @classmethod
    def load(cls, cache: Path, plane_labels: Path | None = None,
             exclusions: Path | None = None) -> Manifest:
        """The cached manifest, with the committed 2D plane labels filled in and the
        committed exclusions (images that are not brain MRI) moved to split ``excluded``:
        they are neither trained on nor counted in the test figures."""
        with (cache / "manifest.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        if exclusions is not None:
            excluded = read_exclusions(exclusions)
            for row in rows:
                if row["uid"] in excluded:
                    # the side it would have been on (export fits the CT check on "train")
                    row["excluded_from"], row["split"] = row["split"], "excluded"
                    row["exclusion"] = excluded[row["uid"]]
        if plane_labels is not None:
            with plane_labels.open() as handle:
                labels = {r["uid"]: r for r in csv.DictReader(handle)}
            for row in rows:
                label = labels.get(row["uid"])
                if not row["plane"] and label is not None and label["plane"]:
                    row["plane"], row["plane_method"] = label["plane"], label["method"]
        arrays = np.load(cache / "arrays.npz")
        return cls(rows=rows, images=arrays["images"], masks=arrays["masks"])


def read_exclusions(path: Path) -> dict[str, str]:
    """uid -> reason, from a committed exclusion list (models/labels/excluded.csv)."""
    with path.open() as handle:
        return {r["uid"]: r["reason"] for r in csv.DictReader(handle)}


def exclusion_group(reason: str) -> str:
    """The group an exclusion reason names: its text up to the first comma ("CT, not MR
    (checked by eye)" -> "CT")."""
    return reason.split(",", 1)[0].strip()


def _free_split(key: str) -> str:
    fraction = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    total = 0.0
    for name, share in FREE_SPLIT:
        total += share
        if fraction <= total:
            return name
    return FREE_SPLIT[-1][0]


def assign_splits(rows: list[dict[str, str]], cluster_ids: np.ndarray) -> dict[str, int]:
    """One side per near-duplicate cluster; fixed groups (patient folds, volunteers, the
    BraTS contrasts) keep their side.

    A cluster whose members are pinned to different sides (look-alike slices of different
    figshare patients) keeps each pinned member on its side, and its free members (their
    near-copies from other sources) are excluded rather than leaked into either side.
    """
    members: dict[int, list[int]] = {}
    for i, cluster in enumerate(cluster_ids.tolist()):
        members.setdefault(int(cluster), []).append(i)
    excluded = conflicts = 0
    for cluster, component in members.items():
        sides = {FIXED_SPLIT[rows[i]["group"]] for i in component
                 if rows[i]["group"] in FIXED_SPLIT}
        if len(sides) > 1:
            conflicts += 1
        free_side = (sides.pop() if len(sides) == 1 else "excluded") if sides else \
            _free_split(min(rows[i]["uid"] for i in component))
        for i in component:
            pinned = FIXED_SPLIT.get(rows[i]["group"])
            rows[i]["split"] = pinned or free_side
            rows[i]["cluster"] = str(cluster)
            excluded += rows[i]["split"] == "excluded"
    return {"clusters": len(members), "clusters_pinned_to_several_sides": conflicts,
            "images_excluded": excluded}


def resplit(cache: Path) -> dict[str, object]:
    """Recompute clusters and splits from the cached signatures (no image is re-read)."""
    with (cache / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    sig = np.load(cache / "signatures.npy")
    stats: dict[str, object] = dict(assign_splits(rows, dedup.clusters(sig)))
    stats.update(leakage_report(rows, sig))
    stats["counts"] = {f"{s}/{lab}": n for (s, lab), n in sorted(Counter(
        (r["split"], r["label"]) for r in rows).items())}
    with (cache / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    (cache / "manifest_stats.json").write_text(json.dumps(stats, indent=2))
    return stats


def build(datasets: Path, cache: Path, log: bool = True) -> dict[str, object]:
    cache.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    images, masks, signatures = [], [], []
    for item in all_items(datasets, cache):
        prepared = prepare(item.image)
        mask = np.zeros((INPUT_SIZE, INPUT_SIZE), np.uint8)
        if item.mask is not None and item.mask_known:
            mask = (mask_to_input(item.mask, prepared.crop) > 0.5).astype(np.uint8)
        rows.append({"index": str(len(rows)), "uid": item.uid, "source": item.source,
                     "label": item.label, "plane": item.plane,
                     "plane_method": item.plane_method,
                     "group": item.group, "mask_known": str(int(item.mask_known)),
                     "mask_pixels": str(int(mask.sum())),
                     "foreground": f"{prepared.foreground_fraction:.3f}",
                     "cluster": "", "split": ""})
        images.append(np.round(prepared.image * 255).astype(np.uint8))
        masks.append(mask)
        signatures.append(dedup.signature(prepared.image))
        if log and len(rows) % 1000 == 0:
            print(f"  prepared {len(rows)} images", flush=True)
    with (cache / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    np.savez(cache / "arrays.npz", images=np.stack(images), masks=np.stack(masks))
    np.save(cache / "signatures.npy", np.stack(signatures))
    return resplit(cache)


def leakage_report(rows: list[dict[str, str]], sig: np.ndarray) -> dict[str, object]:
    """How many Nickparvar Testing images have a near-copy in its Training (and in figshare)."""
    test = [i for i, r in enumerate(rows) if r["uid"].startswith("nickparvar/Testing/")]
    train = [i for i, r in enumerate(rows) if r["uid"].startswith("nickparvar/Training/")]
    fig = [i for i, r in enumerate(rows) if r["source"] == "figshare"]
    nick = test + train
    best_train = (sig[test] @ sig[train].T).max(axis=1)
    best_fig_in_nick = (sig[fig] @ sig[nick].T).max(axis=1)
    clusters = Counter(r["cluster"] for r in rows)
    return {
        "nickparvar_test_in_a_cluster_with_training": _clustered_with(
            rows, "nickparvar/Testing/", "nickparvar/Training/"),
        "nickparvar_test_images": len(test),
        "nickparvar_test_with_copy_in_training": int((best_train > dedup.THRESHOLD).sum()),
        "nickparvar_test_with_copy_in_training_r0.99": int((best_train > 0.99).sum()),
        "figshare_with_copy_in_nickparvar": int((best_fig_in_nick > dedup.THRESHOLD).sum()),
        "figshare_images": len(fig),
        "images_in_multi_image_clusters": int(sum(n for n in clusters.values() if n > 1)),
        "largest_cluster": int(max(clusters.values())),
        "threshold": dedup.THRESHOLD,
    }


def _clustered_with(rows: list[dict[str, str]], prefix: str, other: str) -> int:
    """Images under ``prefix`` whose cluster also holds an image under ``other``."""
    other_clusters = {r["cluster"] for r in rows if r["uid"].startswith(other)}
    return sum(1 for r in rows if r["uid"].startswith(prefix) and r["cluster"] in other_clusters)
