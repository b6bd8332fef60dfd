"""Choosing the whole-series rule's parameters on validation series (never the held-out ones).

Every validation series (the validation subjects' volumes, cut in three planes, and the
validation DICOM series) is analysed once as the app analyses it; each candidate rule is then
applied to the same findings with ``triage.decide_by_series_rule``, the function the app runs.
For each candidate the clearing threshold is set at ``CLEAR_MARGIN`` times the lowest
suspicion of any validation tumour series (so no validation tumour series could be cleared,
with room for a weaker one), and the candidates are ranked by:

1. fewest healthy series called tumour,
2. most tumour series called tumour,
3. most healthy series routine (not review),
4. the shortest run (the most sensitive rule), then the shortest window.

The tumour-call threshold (the p(tumour) an image needs to be called tumour on its own; a
weaker call goes to review) is chosen on the same series: the lowest of ``CALL_THRESHOLDS`` at
which no more than ``CALL_TARGET * CALL_MARGIN`` of the healthy validation series' shown images
would be called tumour (half the model card's 1% target: room for scanners not seen). The
series rule does not depend on it: its runs read the leading class, not the verdict.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workstation.analysis.findings import Finding, ReasonKind, Verdict
from workstation.analysis.run import analyse_series
from workstation.analysis.series_rule import RuleParameters
from workstation.analysis.triage import decide_by_series_rule
from workstation.imaging import Series

EXTENTS_MM = (3.0, 5.0, 8.0, 12.0, 16.0, 24.0)
WINDOWS_MM = (5.0, 10.0, 20.0)
OVERLAP = (True, False)
CLEAR_MARGIN = 0.5
CALL_THRESHOLDS = tuple(round(0.5 + 0.01 * k, 2) for k in range(50))  # 0.50 ... 0.99
CALL_TARGET = 0.01  # healthy slices called tumour, the model card's target
CALL_MARGIN = 0.5
# DICOM series of the healthy scanner folder used for validation (the structural Siemens
# series is held out; the Philips field map is kept for the held-out style check too)
VALIDATION_DICOM = ("normal/dicom/canon_dti_sag", "normal/dicom/ge_se_epi_fieldmap_ax")


@dataclass(frozen=True, eq=False)
class ValidationSeries:
    name: str
    truth: str  # "no_tumour" or a tumour class
    series: Series
    findings: tuple[Finding, ...]
    # a glioma volume's tumour area per slice (mm^2); None for a healthy or DICOM series
    tumour_area_mm2: tuple[float, ...] | None = None


def validation_series(datasets: Path, engine: Any) -> list[ValidationSeries]:
    """Analyse every validation series once (the policy without a series rule: only the
    slices' findings are kept)."""
    from dataclasses import replace

    from workstation.training.series_eval import healthy_series
    from workstation.training.volume_cache import subject_split
    from workstation.training.volume_series import plane_series, volume_cases

    policy = replace(engine.calibration.policy(), series_rule=None)
    out = []
    for case in volume_cases(datasets):
        if subject_split(case.name) != "val":
            continue
        for cut in plane_series(case):
            verdict = analyse_series(cut.series, engine, policy)
            out.append(ValidationSeries(cut.series.source, case.truth, cut.series,
                                        verdict.findings,
                                        tuple(float(a) for a in cut.tumour_area_mm2)))
    for name, series in healthy_series(datasets):
        if any(name.startswith(v) for v in VALIDATION_DICOM):
            verdict = analyse_series(series, engine, policy)
            out.append(ValidationSeries(name, "no_tumour", series, verdict.findings))
    return out


def _verdict(item: ValidationSeries, rule: RuleParameters) -> tuple[Verdict, float]:
    ruled = decide_by_series_rule(item.findings, item.series, rule)
    if ruled is None:
        return Verdict.CANNOT_ASSESS, 0.0
    return ruled[0], ruled[4].suspicion


def choose(items: list[ValidationSeries]) -> tuple[RuleParameters, list[dict[str, Any]]]:
    """The chosen parameters and every candidate's validation counts (best first)."""
    table = []
    for extent, window, overlap in itertools.product(EXTENTS_MM, WINDOWS_MM, OVERLAP):
        probe = RuleParameters(extent, window, clear_below=0.0, overlap=overlap)
        suspicion = {item.name: _verdict(item, probe)[1] for item in items}
        tumour_suspicion = [suspicion[i.name] for i in items if i.truth != "no_tumour"]
        clear_below = CLEAR_MARGIN * min(tumour_suspicion, default=0.0)
        rule = RuleParameters(extent, window, round(clear_below, 6), overlap)
        verdicts = {item.name: _verdict(item, rule)[0] for item in items}
        healthy = [verdicts[i.name] for i in items if i.truth == "no_tumour"]
        tumour = [verdicts[i.name] for i in items if i.truth != "no_tumour"]
        table.append({
            "min_extent_mm": extent, "window_mm": window, "overlap": overlap,
            "clear_below": rule.clear_below,
            "healthy_series": len(healthy),
            "healthy_tumour": healthy.count(Verdict.TUMOUR),
            "healthy_routine": healthy.count(Verdict.NO_TUMOUR),
            "healthy_review": healthy.count(Verdict.REVIEW),
            "tumour_series": len(tumour),
            "tumour_called_tumour": tumour.count(Verdict.TUMOUR),
            "tumour_cleared": tumour.count(Verdict.NO_TUMOUR),
        })
    table.sort(key=lambda r: (r["tumour_cleared"], r["healthy_tumour"],
                              -r["tumour_called_tumour"], -r["healthy_routine"],
                              r["min_extent_mm"], r["window_mm"], not r["overlap"]))
    best = table[0]
    return RuleParameters(float(best["min_extent_mm"]), float(best["window_mm"]),
                          float(best["clear_below"]), bool(best["overlap"])), table


def per_series(items: list[ValidationSeries], rule: RuleParameters) -> list[dict[str, Any]]:
    """Each validation series' verdict under the chosen rule."""
    rows = []
    for item in items:
        ruled = decide_by_series_rule(item.findings, item.series, rule)
        rows.append({"series": item.name, "truth": item.truth,
                     "verdict": ruled[0].value if ruled else "image rule",
                     "class": ruled[1] if ruled else "",
                     "suspicion": round(ruled[4].suspicion, 4) if ruled else None,
                     "longest_tumour_run_mm": round(ruled[4].extent_mm, 1) if ruled else None})
    return rows


def _shown(item: ValidationSeries) -> list[Finding]:
    return [f for f in item.findings if not f.has_reason(ReasonKind.EMPTY)]


def choose_tumour_call_threshold(items: list[ValidationSeries]
                                 ) -> tuple[float, list[dict[str, Any]]]:
    """The tumour-call threshold and, per candidate, the validation counts: healthy images
    that would be called tumour, and tumour images (>= MIN_TUMOUR_AREA_MM2 of mask) of the
    validation glioma volumes that would still be called tumour (the rest go to review)."""
    from workstation.training.volume_series import MIN_TUMOUR_AREA_MM2

    healthy = [f for i in items if i.truth == "no_tumour" for f in _shown(i)]
    tumour = [f for i in items if i.truth != "no_tumour" and i.tumour_area_mm2 is not None
              for f in _shown(i) if i.tumour_area_mm2[f.index] >= MIN_TUMOUR_AREA_MM2]
    table = []
    for threshold in CALL_THRESHOLDS:
        called = sum(1 for f in healthy
                     if f.class_says_tumour and f.tumour_probability >= threshold)
        found = sum(1 for f in tumour
                    if f.class_says_tumour and f.tumour_probability >= threshold)
        table.append({"threshold": threshold, "healthy_images": len(healthy),
                      "healthy_called_tumour": called,
                      "healthy_share": round(called / max(1, len(healthy)), 4),
                      "tumour_images": len(tumour), "tumour_called_tumour": found})
    allowed = CALL_TARGET * CALL_MARGIN
    chosen = next((r for r in table if r["healthy_share"] <= allowed), table[-1])
    return float(chosen["threshold"]), table
