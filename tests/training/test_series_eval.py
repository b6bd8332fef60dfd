"""Series-level figures (evaluate --split series) with a stand-in engine: what is counted."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from workstation.analysis.triage import Policy
from workstation.training import series_eval


class FakeEngine:
    """Calls every image a confident no tumour, and counts what it was asked to read."""

    def __init__(self) -> None:
        self.calibration = SimpleNamespace(policy=lambda: Policy(0.9, 3.0))
        self.last_seconds = 0.0
        self.read = 0

    def analyse(self, slices: Any, progress: Any = None, cancelled: Any = None) -> list[Any]:
        self.read += len(slices)
        return [SimpleNamespace(
            probabilities=np.array([0.01, 0.01, 0.01, 0.97], np.float32),
            plane_probabilities=np.array([0.9, 0.05, 0.05], np.float32),
            mask=np.zeros(s.shape, np.float32), ood_score=0.0, foreground_fraction=0.5,
            ct_score=0.0, reference_ood_score=0.0, picture_score=0.0) for s in slices]


def test_split_reads_one_volume_and_whole_reads_every_image(datasets: Path) -> None:
    engine = FakeEngine()
    result = series_eval.run(datasets, engine)
    by_name = {r["series"]: r for r in result["split"]}
    whole = {r["series"]: r for r in result["whole"]}
    canon = "normal/dicom/canon_dti_sag"
    assert by_name[canon]["volumes"] == 13 and by_name[canon]["assessed_images"] == 40
    assert whole[canon]["assessed_images"] == 520
    assert by_name["normal/dicom/philips_gre_fieldmap_ax"]["assessed_images"] == 53
    assert engine.read == sum(r["assessed_images"] for r in result["split"] + result["whole"])
    summary = series_eval.summary(result["split"])
    assert summary["series"] == len(result["split"]) == 30
    assert summary["images_called_tumour"] == 0
    assert sum(summary["verdicts"].values()) == 30
    assert "normal/dicom/canon_dti_sag | 13 |" in series_eval.render(result)


def test_a_series_row_counts_its_refused_images_by_reason() -> None:
    """The card states per series how many healthy slices were refused as not brain MRI,
    apart from those refused for showing no tissue (outside the head)."""
    from dataclasses import replace

    from tests.fakes import make_finding, make_series, verdict_of
    from workstation.analysis.findings import ReasonKind, Verdict

    series = make_series((6,))
    base = verdict_of(series)

    def refused(index: int, kind: ReasonKind) -> Any:
        return replace(make_finding(index), verdict=Verdict.CANNOT_ASSESS,
                       review_reasons=(kind.value,), reason_kinds=(kind,))

    findings = (refused(0, ReasonKind.EMPTY), refused(1, ReasonKind.BLANK),
                refused(2, ReasonKind.NOT_BRAIN), refused(3, ReasonKind.CT),
                *base.findings[4:])
    document = series_eval.row("s", replace(base, findings=findings)).document()
    assert document["images_refused"] == 4
    assert document["images_refused_no_tissue"] == 2
    assert document["images_refused_not_brain_mri"] == 1
    healthy = {**document, "truth": "no_tumour", "clear_slices": 6,
               "clear_slices_called_tumour": 0, "clear_slices_with_region_drawn": 0,
               "tumour_slices_cleared": 0, "dice_3d": None}
    assert series_eval.volume_summary([healthy])["healthy_slices_refused_not_brain_mri"] == 1
    older = {k: v for k, v in healthy.items() if "refused_" not in k}
    assert series_eval.volume_summary([older])["healthy_slices_refused_not_brain_mri"] is None
