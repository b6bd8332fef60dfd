"""Series-level figures: what the worklist shows for whole series.

Every real DICOM series under the datasets (``normal/dicom/``: healthy whole heads from four
scanners; ``dicom/``: healthy EPI series) is triaged as the app triages it, once split into
volumes (the model reads one volume) and once as the reader took it before the split (every
image of every volume assessed), so that the effect of the split is measured, not assumed.
All these series are healthy: a ``tumour`` verdict on any of them is a false alarm.

The NIfTI volumes (training.volume_series: healthy heads with the skull on, glioma volumes
with voxel masks) are triaged as a series per plane: verdict, class, images called tumour and
refused, tumour slices found and the suspect-region masks' Dice in 3D against the voxel mask.

``HELD_OUT`` names the series kept out of every later training run and threshold choice
(issue 16), written down before any model was trained on whole series.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from workstation.analysis.findings import ReasonKind, SeriesVerdict, Verdict
from workstation.analysis.run import analyse_series
from workstation.analysis.triage import MASK_THRESHOLD
from workstation.imaging import Series, load_study
from workstation.training.volume_series import PlaneSeries, plane_series, volume_cases

SERIES_FOLDERS = ("normal/dicom", "dicom")
# kept out of training and of threshold choice for the whole-series model, by subject: the one
# structural scanner DICOM series (Siemens MPRAGE, enhanced multi-frame), three IXI T1 heads,
# one T2 head, a low-grade glioma (BraTS 2018) and a BraTS 2013 glioma
HELD_OUT = (
    "normal/dicom/siemens_t1_mprage_sag_enhanced",
    "normal/nifti/ixi577_t1", "normal/nifti/ixi603_t1", "normal/nifti/ixi632_t1",
    "normal/nifti/fpg_t2",
    "volumes/brats18_tcia10_628", "volumes/brats2013_pat0002",
)


def held_out(name: str) -> bool:
    return any(name == h or name.startswith(h + "/") for h in HELD_OUT)


@dataclass(frozen=True)
class SeriesRow:
    """One series' verdict and slice counts under one way of reading it."""

    name: str
    volumes: int
    assessed: int  # images the model read
    verdict: str
    predicted_class: str
    tumour: int  # images called tumour
    review: int
    refused: int  # cannot assess (not brain MRI, blank, outside the head)
    refused_no_tissue: int = 0  # of those: no tissue (outside the head) or blank
    refused_not_brain: int = 0  # of those: "does not look like the brain MRI ..."

    def document(self) -> dict[str, Any]:
        return {"series": self.name, "volumes": self.volumes, "assessed_images": self.assessed,
                "verdict": self.verdict, "predicted_class": self.predicted_class,
                "images_called_tumour": self.tumour, "images_to_review": self.review,
                "images_refused": self.refused,
                "images_refused_no_tissue": self.refused_no_tissue,
                "images_refused_not_brain_mri": self.refused_not_brain}


def healthy_series(datasets: Path) -> Iterator[tuple[str, Series]]:
    """(name, series) for every DICOM series of the datasets, in a stable order."""
    for folder in SERIES_FOLDERS:
        root = datasets / folder
        if not root.is_dir():
            continue
        study = load_study([root])
        for series in sorted(study.series, key=lambda s: (s.source,
                                                          s.info.series_number or 0)):
            yield f"{folder}/{Path(series.source).relative_to(root)}", series


def as_one_volume(series: Series) -> Series:
    """The series as the reader took it before volumes: one volume, every image assessed."""
    return replace(series, volumes=())


def row(name: str, verdict: SeriesVerdict) -> SeriesRow:
    counts = {v: 0 for v in Verdict}
    for finding in verdict.findings:
        counts[finding.verdict] += 1
    refused = [f for f in verdict.findings if f.verdict is Verdict.CANNOT_ASSESS]
    return SeriesRow(name, len(verdict.series.volumes), len(verdict.findings),
                     verdict.verdict.value, verdict.predicted_class, counts[Verdict.TUMOUR],
                     counts[Verdict.REVIEW], len(refused),
                     sum(1 for f in refused if {ReasonKind.EMPTY, ReasonKind.BLANK}
                         & set(f.reason_kinds)),
                     sum(1 for f in refused if f.has_reason(ReasonKind.NOT_BRAIN)))


def run(datasets: Path, engine: Any) -> dict[str, list[dict[str, Any]]]:
    """Split and whole readings of every series: {"split": [...], "whole": [...]}."""
    policy = engine.calibration.policy()
    split, whole = [], []
    for name, series in healthy_series(datasets):
        split.append(row(name, analyse_series(series, engine, policy)).document())
        whole.append(row(name, analyse_series(as_one_volume(series), engine, policy))
                     .document())
    return {"split": split, "whole": whole}


def dice(predicted: npt.NDArray[np.bool_], truth: npt.NDArray[np.bool_]) -> float | None:
    total = int(predicted.sum()) + int(truth.sum())
    return None if total == 0 else 2.0 * int((predicted & truth).sum()) / total


def volume_row(cut: PlaneSeries, verdict: SeriesVerdict) -> dict[str, Any]:
    """One volume in one plane: the series row, with tumour-slice and mask figures."""
    base = row(cut.series.source, verdict).document()
    findings = {f.index: f for f in verdict.findings}
    called = np.array([findings[i].verdict is Verdict.TUMOUR if i in findings else False
                       for i in range(len(cut.series.slices))])
    drawn = np.array([findings[i].mask_area_px > 0 if i in findings else False
                      for i in range(len(cut.series.slices))])
    leading = np.array([findings[i].class_says_tumour if i in findings else False
                        for i in range(len(cut.series.slices))])
    predicted = np.concatenate([(findings[i].mask >= MASK_THRESHOLD).ravel() if i in findings
                                else np.zeros(cut.masks[i].size, bool)
                                for i in range(len(cut.series.slices))])
    truth = np.concatenate([m.ravel() for m in cut.masks])
    clear = cut.clear_slices
    base |= {"truth": cut.case.truth, "held_out": held_out(cut.case.name),
             "plane": cut.series.plane.value,
             "clear_slices_called_tumour": int((called & clear).sum()),
             "clear_slices_with_region_drawn": int((drawn & clear).sum()),
             # a tumour class leads (called tumour at the tumour-call threshold, review below)
             "clear_slices_tumour_class_leading": int((leading & clear).sum()),
             "clear_slices": int(clear.sum())}
    if cut.case.truth != "no_tumour":
        tumour = cut.tumour_slices
        base |= {"tumour_slices": int(tumour.sum()),
                 "tumour_slices_called_tumour": int((called & tumour).sum()),
                 "tumour_slices_cleared": int(sum(
                     1 for i in np.flatnonzero(tumour) if i in findings
                     and findings[int(i)].verdict is Verdict.NO_TUMOUR)),
                 "dice_3d": dice(predicted, truth)}
    return base


def run_volumes(datasets: Path, engine: Any, names: Sequence[str] | None = None
                ) -> list[dict[str, Any]]:
    """Every NIfTI volume (or those whose name starts with one of ``names``), per plane."""
    policy = engine.calibration.policy()
    rows = []
    for case in volume_cases(datasets):
        if names is not None and not any(case.name.startswith(n) for n in names):
            continue
        for cut in plane_series(case):
            rows.append(volume_row(cut, analyse_series(cut.series, engine, policy)))
    return rows


def volume_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Healthy and tumour volumes' series figures."""
    healthy = [r for r in rows if r["truth"] == "no_tumour"]
    tumour = [r for r in rows if r["truth"] != "no_tumour"]
    clear = sum(r["clear_slices"] for r in healthy)
    dices = [r["dice_3d"] for r in tumour if r["dice_3d"] is not None]
    return {
        "healthy_series": len(healthy),
        "healthy_verdicts": summary(healthy)["verdicts"] if healthy else {},
        "healthy_slices": clear,
        "healthy_slices_called_tumour": sum(r["clear_slices_called_tumour"] for r in healthy),
        # rows written before the tumour-call threshold do not have it
        "healthy_slices_tumour_class_leading": sum(
            r.get("clear_slices_tumour_class_leading", r["clear_slices_called_tumour"])
            for r in healthy),
        "healthy_slices_with_region_drawn": sum(r["clear_slices_with_region_drawn"]
                                                for r in healthy),
        "healthy_slices_refused": sum(r["images_refused"] for r in healthy),
        # rows written before the split by reason do not have it
        "healthy_slices_refused_not_brain_mri": (
            sum(r["images_refused_not_brain_mri"] for r in healthy)
            if all("images_refused_not_brain_mri" in r for r in healthy) else None),
        "healthy_assessed": sum(r["assessed_images"] for r in healthy),
        "tumour_series": len(tumour),
        "tumour_verdicts": summary(tumour)["verdicts"] if tumour else {},
        "tumour_series_cleared": sum(1 for r in tumour if r["verdict"] == "no_tumour"),
        "tumour_series_class_glioma": sum(1 for r in tumour if r["predicted_class"] == "glioma"
                                          and r["verdict"] == "tumour"),
        "tumour_slices_cleared": sum(r["tumour_slices_cleared"] for r in tumour),
        "mean_dice_3d": round(float(np.mean(dices)), 4) if dices else None,
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    verdicts = {v.value: 0 for v in Verdict}
    for r in rows:
        verdicts[r["verdict"]] += 1
    assessed = sum(r["assessed_images"] for r in rows)
    tumour = sum(r["images_called_tumour"] for r in rows)
    refused = sum(r["images_refused"] for r in rows)
    return {"series": len(rows), "verdicts": verdicts, "assessed_images": assessed,
            "images_called_tumour": tumour, "images_refused": refused,
            "share_called_tumour": round(tumour / assessed, 4) if assessed else 0.0,
            "share_refused": round(refused / assessed, 4) if assessed else 0.0}


def render(result: dict[str, list[dict[str, Any]]]) -> str:
    """A plain table, split beside whole, one line per series."""
    lines = ["series | volumes | split: verdict (class), images assessed / tumour / review / "
             "refused | as one volume: verdict (class), images assessed / tumour / review / "
             "refused"]
    for s, w in zip(result["split"], result["whole"], strict=True):
        def cells(r: dict[str, Any]) -> str:
            label = r["verdict"] + (f" ({r['predicted_class']})" if r["verdict"] == "tumour"
                                    else "")
            return (f"{label}, {r['assessed_images']} / {r['images_called_tumour']} / "
                    f"{r['images_to_review']} / {r['images_refused']}")
        lines.append(f"{s['series']} | {s['volumes']} | {cells(s)} | {cells(w)}")
    for key in ("split", "whole"):
        lines.append(f"{key}: {summary(result[key])}")
    return "\n".join(lines) + "\n"


def render_volumes(rows: list[dict[str, Any]]) -> str:
    """One line per volume and plane, then the summaries (all, and held out)."""
    lines = ["volume/plane | truth | verdict (class) | images assessed / tumour / review / "
             "refused | healthy slices called tumour / region drawn | tumour slices found / "
             "cleared, Dice 3D"]
    for r in rows:
        label = r["verdict"] + (f" ({r['predicted_class']})" if r["verdict"] == "tumour"
                                else "")
        refused = str(r["images_refused"])
        if "images_refused_not_brain_mri" in r:
            refused += f" ({r['images_refused_not_brain_mri']} not brain MRI)"
        line = (f"{r['series']}{' (held out)' if r['held_out'] else ''} | {r['truth']} | "
                f"{label} | {r['assessed_images']} / {r['images_called_tumour']} / "
                f"{r['images_to_review']} / {refused} | "
                f"{r['clear_slices_called_tumour']} / {r['clear_slices_with_region_drawn']} "
                f"of {r['clear_slices']}")
        if "tumour_slices" in r:
            shown = "n/a" if r["dice_3d"] is None else f"{r['dice_3d']:.3f}"
            line += (f" | {r['tumour_slices_called_tumour']} of {r['tumour_slices']} / "
                     f"{r['tumour_slices_cleared']}, {shown}")
        lines.append(line)
    lines.append(f"all: {volume_summary(rows)}")
    lines.append(f"held out: {volume_summary([r for r in rows if r['held_out']])}")
    return "\n".join(lines) + "\n"


def held_out_report(datasets: Path, engine: Any) -> dict[str, Any]:
    """The held-out series (``HELD_OUT``) as the app triages them: each NIfTI volume in three
    planes and each DICOM series; the figures the model card shows beside the slice ones."""
    policy = engine.calibration.policy()
    cases = sorted({h for h in HELD_OUT if not h.startswith("normal/dicom/")})
    volumes = run_volumes(datasets, engine, cases)
    dicom = []
    for name, series in healthy_series(datasets):
        if held_out(name):
            verdict = analyse_series(series, engine, policy)
            counted = row(name, verdict).document()
            counted |= {"truth": "no_tumour", "held_out": True, "plane": series.plane.value,
                        "clear_slices": counted["assessed_images"],
                        "clear_slices_called_tumour": counted["images_called_tumour"],
                        "clear_slices_with_region_drawn": sum(
                            1 for f in verdict.findings if f.mask_area_px > 0),
                        "clear_slices_tumour_class_leading": sum(
                            1 for f in verdict.findings if f.class_says_tumour)}
            dicom.append(counted)
    rows = volumes + dicom
    return {"series": rows, "summary": volume_summary(rows)}
