"""Whole-series training slices: every slice of every NIfTI volume, in all three planes.

The curated 2D sets hold chosen slices; a clinic sends every slice from the vertex to the skull
base. ``build`` cuts each volume of ``volume_series.volume_cases`` exactly as the series
evaluation does (``plane_series``: every slice, edge slices included, square pixels, the
app's display window) and prepares each slice as the app does (``preprocess.prepare`` on the
display image), into ``cache/volumes.csv`` and ``cache/volumes.npz`` (network inputs and mask
targets, uint8, like the 2D cache). Nothing of it is committed.

Labels, per slice:
- a healthy head: ``no_tumour``, mask known (empty);
- a glioma volume: ``glioma`` when the voxel mask covers at least ``MIN_TUMOUR_AREA_MM2`` of
  the slice, ``no_tumour`` (mask known, empty) when it covers nothing; slices in between are
  kept out of training and calibration (split ``edge``);
- a slice the app refuses as blank (foreground below ``triage.MIN_FOREGROUND``): split
  ``blank`` (the app never asks the network about it).

Split by subject: ``series_eval.HELD_OUT`` (split ``held_out``: never trained on, never used
to choose a threshold), ``VALIDATION`` (split ``val``: calibration and the series rule), the
rest ``train``.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

from workstation.analysis.preprocess import mask_to_input, prepare
from workstation.analysis.triage import MIN_FOREGROUND
from workstation.training.series_eval import held_out
from workstation.training.volume_series import (
    MIN_TUMOUR_AREA_MM2,
    PlaneSeries,
    VolumeCase,
    plane_series,
    volume_cases,
)

# chosen before training, by subject: four IXI T1 heads, the one volunteer's T1 and PD (CC
# BY-NC 4.0, "do not ship": kept out of the shipped weights' training) with the niivue T2
# (possibly the same volunteer, and its licence the weakest), and two glioma patients (one
# BraTS 2018, one BraTS 2013) for calibration and for choosing the series rule
VALIDATION = (
    "normal/nifti/ixi516_t1", "normal/nifti/ixi526_t1", "normal/nifti/ixi546_t1",
    "normal/nifti/ixi565_t1", "normal/nifti/chrisrorden_t1", "normal/nifti/chrisrorden_pd",
    "normal/nifti/niivuereg_t2",
    "volumes/brats18_tcia13_623", "volumes/brats2013_pat0005",
)
FIELDS = ("index", "uid", "source", "label", "plane", "plane_method", "group", "mask_known",
          "mask_pixels", "foreground", "cluster", "split", "case", "slice", "slices",
          "area_mm2", "position_mm")
CSV_NAME, ARRAYS_NAME = "volumes.csv", "volumes.npz"


def subject_split(name: str) -> str:
    """``held_out``, ``val`` or ``train`` for a volume case name."""
    if held_out(name):
        return "held_out"
    if any(name == v or name.startswith(v + "/") for v in VALIDATION):
        return "val"
    return "train"


def slice_uid(case: str, plane: str, index: int) -> str:
    return f"vol:{case}/{plane}/{index}"


def _label(cut: PlaneSeries, index: int, foreground: float, side: str) -> tuple[str, str]:
    """(label, split) of one slice."""
    area = float(cut.tumour_area_mm2[index])
    if foreground < MIN_FOREGROUND:
        return "no_tumour", "blank"
    if cut.case.truth == "no_tumour" or area == 0:
        return "no_tumour", side
    if area >= MIN_TUMOUR_AREA_MM2:
        return cut.case.truth, side
    return cut.case.truth, "edge"


def prepared_inputs(cut: PlaneSeries) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(network input in [0, 1] float32, mask target 0/1 uint8, foreground) per slice."""
    out = []
    for slice_, region in zip(cut.series.slices, cut.masks, strict=True):
        prepared = prepare(np.asarray(slice_.image))
        target = (mask_to_input(region, prepared.crop) >= 0.5).astype(np.uint8)
        out.append((prepared.image, target, prepared.foreground_fraction))
    return out


def _case_rows(case: VolumeCase) -> tuple[list[dict[str, str]], list[np.ndarray],
                                          list[np.ndarray]]:
    """One volume's rows (``index`` left blank), inputs and mask targets."""
    side = subject_split(case.name)
    rows: list[dict[str, str]] = []
    images, masks = [], []
    for cut in plane_series(case):
        plane = cut.series.plane.value
        count = len(cut.series.slices)
        for index, (image, target, foreground) in enumerate(prepared_inputs(cut)):
            label, split = _label(cut, index, foreground, side)
            rows.append({
                "index": "", "uid": slice_uid(case.name, plane, index),
                "source": case.name.split("/", 1)[0], "label": label, "plane": plane,
                "plane_method": "volume", "group": f"vol-{_subject(case)}",
                "mask_known": "1", "mask_pixels": str(int(target.sum())),
                "foreground": f"{foreground:.3f}", "cluster": "", "split": split,
                "case": case.name, "slice": str(index), "slices": str(count),
                "area_mm2": f"{float(cut.tumour_area_mm2[index]):.1f}",
                "position_mm": f"{cut.series.slices[index].position or 0.0:.2f}"})
            images.append(np.round(image * 255).astype(np.uint8))
            masks.append(target)
    return rows, images, masks


def build(datasets: Path, cache: Path, log: bool = True, workers: int = 2
          ) -> dict[str, object]:
    """Cut, prepare and label every volume (``workers`` processes, one volume each at a
    time; the result does not depend on how many); write the volume cache; return counts."""
    from concurrent.futures import ProcessPoolExecutor

    rows: list[dict[str, str]] = []
    images, masks = [], []
    cases = volume_cases(datasets)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for case, (case_rows, case_images, case_masks) in zip(
                cases, pool.map(_case_rows, cases), strict=True):
            for row in case_rows:
                row["index"] = str(len(rows))
                rows.append(row)
            images.extend(case_images)
            masks.extend(case_masks)
            if log:
                print(f"volume cache: {case.name} ({subject_split(case.name)}), "
                      f"{len(rows)} slices so far", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / CSV_NAME).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    np.savez(cache / ARRAYS_NAME, images=np.stack(images), masks=np.stack(masks))
    return summary(rows)


def _subject(case: VolumeCase) -> str:
    """The person: a BraTS case folder, or the head file's subject (ixi012, chrisrorden)."""
    parts = case.name.split("/")
    return parts[1] if parts[0] == "volumes" else parts[-1].split("_")[0]


def summary(rows: list[dict[str, str]]) -> dict[str, object]:
    return {"slices": len(rows),
            "by_split_and_label": {f"{s}/{lab}": n for (s, lab), n in sorted(
                Counter((r["split"], r["label"]) for r in rows).items())}}


def load_rows(cache: Path) -> tuple[list[dict[str, str]], np.ndarray, np.ndarray]:
    """The cached rows (subject sides re-read from ``subject_split``, so a changed list needs
    no rebuild), inputs and mask targets."""
    with (cache / CSV_NAME).open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["split"] in ("train", "val", "held_out"):
            row["split"] = subject_split(row["case"])
    arrays = np.load(cache / ARRAYS_NAME)
    return rows, arrays["images"], arrays["masks"]


def app_inputs(datasets: Path, uids: list[str]) -> dict[str, np.ndarray]:
    """The float network inputs the app makes of these volume slices (re-cut from the
    volumes: the cache holds them rounded to 8 bits)."""
    wanted = set(uids)
    cases = {uid.removeprefix("vol:").rsplit("/", 2)[0] for uid in wanted}
    out: dict[str, np.ndarray] = {}
    for case in volume_cases(datasets):
        if case.name not in cases:
            continue
        for cut in plane_series(case):
            plane = cut.series.plane.value
            for index, slice_ in enumerate(cut.series.slices):
                uid = slice_uid(case.name, plane, index)
                if uid in wanted:
                    out[uid] = prepare(np.asarray(slice_.image)).image
    return out
