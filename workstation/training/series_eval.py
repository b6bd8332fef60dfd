"""Series-level figures: what the worklist shows for whole DICOM series.

Every real DICOM series under the datasets (``normal/dicom/``: healthy whole heads from four
scanners; ``dicom/``: healthy EPI series) is triaged as the app triages it, once split into
volumes (the model reads one volume) and once as the reader took it before the split (every
image of every volume assessed), so that the effect of the split is measured, not assumed.
All these series are healthy: a ``tumour`` verdict on any of them is a false alarm.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from workstation.analysis.findings import SeriesVerdict, Verdict
from workstation.analysis.run import analyse_series
from workstation.imaging import Series, load_study

SERIES_FOLDERS = ("normal/dicom", "dicom")


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

    def document(self) -> dict[str, Any]:
        return {"series": self.name, "volumes": self.volumes, "assessed_images": self.assessed,
                "verdict": self.verdict, "predicted_class": self.predicted_class,
                "images_called_tumour": self.tumour, "images_to_review": self.review,
                "images_refused": self.refused}


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
    return SeriesRow(name, len(verdict.series.volumes), len(verdict.findings),
                     verdict.verdict.value, verdict.predicted_class, counts[Verdict.TUMOUR],
                     counts[Verdict.REVIEW], counts[Verdict.CANNOT_ASSESS])


def run(datasets: Path, engine: Any) -> dict[str, list[dict[str, Any]]]:
    """Split and whole readings of every series: {"split": [...], "whole": [...]}."""
    policy = engine.calibration.policy()
    split, whole = [], []
    for name, series in healthy_series(datasets):
        split.append(row(name, analyse_series(series, engine, policy)).document())
        whole.append(row(name, analyse_series(as_one_volume(series), engine, policy))
                     .document())
    return {"split": split, "whole": whole}


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
