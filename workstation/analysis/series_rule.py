"""The whole-series rule: a tumour must persist across neighbouring slices.

A clinic sends every slice from the vertex to the skull base; one slice's tumour call there
(an ear, the temporal pole, a vertex slice) is far more often an artefact of that slice than a
tumour, while a tumour of 1 cm shows on every slice it crosses. So, for a series of several
slices with positions:

- **tumour** when a *run* of neighbouring slices (no more than ``GAP_FACTOR`` slice spacings
  apart) all have a tumour class leading (``Finding.class_says_tumour``: also a slice whose
  p(tumour) is below the tumour-call threshold, sent to review on its own, counts: persistence
  is the evidence here), their suspect regions overlapping from slice to slice (a
  slice without a drawn region does not break a run), and the run covers at least
  ``RuleParameters.min_extent_mm`` (slices x spacing) and ``MIN_RUN_SLICES`` slices. The
  series' class is the class the run's slices carry: each slice's class probabilities
  weighted by its p(tumour) and its suspect-region area, summed over the run(s);
- otherwise its **suspicion** is the highest mean p(tumour) over any stretch of
  ``RuleParameters.window_mm`` (at least one slice): below ``RuleParameters.clear_below`` the
  series is **routine**; at or above it, **review**. A routine series can hold single images
  the image rule would send to review; the report lists them.

The parameters were chosen on the validation series (``training.series_rule_choice``,
``models/series_rule.json``) and are kept with the model. A single image, or a series whose
slices have no positions, keeps the image rule (``triage.decide``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from workstation.analysis.findings import CLASSES, TUMOUR_CLASSES, Finding, Verdict

GAP_FACTOR = 1.5  # neighbours: no further apart than this many median slice spacings
MIN_RUN_SLICES = 2
MASK_THRESHOLD = 0.5  # a suspect-region map's pixel is drawn from here (triage uses it too)


@dataclass(frozen=True)
class RuleParameters:
    """What the series rule needs: chosen on validation series, shipped with the model."""

    min_extent_mm: float
    window_mm: float
    clear_below: float
    overlap: bool = True  # neighbouring suspect regions must overlap to continue a run


@dataclass(frozen=True)
class SeriesReading:
    """What the rule found in one series."""

    verdict: Verdict  # TUMOUR, NO_TUMOUR or REVIEW
    predicted_class: str
    confidence: float  # tumour: the run's mean p(tumour); otherwise 1 - suspicion
    suspicion: float  # the highest windowed mean p(tumour)
    carrying: tuple[int, ...]  # series indices of the slices that carry the tumour
    extent_mm: float  # of the longest run of tumour slices
    spacing_mm: float


def spacing_of(positions: npt.NDArray[np.float64]) -> float:
    """The median distance between neighbouring slice positions (mm; 1.0 when unknown)."""
    steps = np.diff(np.sort(positions))
    steps = steps[steps > 1e-6]
    return float(np.median(steps)) if steps.size else 1.0


def _overlaps(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> bool:
    """Do two suspect-region maps overlap (either drawing nothing counts as overlapping:
    the run is then held together by the class calls alone)?"""
    region_a, region_b = a >= MASK_THRESHOLD, b >= MASK_THRESHOLD
    if not region_a.any() or not region_b.any():
        return True
    if region_a.shape != region_b.shape:
        return True  # different grids (should not happen within one volume)
    return bool((region_a & region_b).any())


def tumour_runs(findings: Sequence[Finding], positions: npt.NDArray[np.float64],
                spacing: float, overlap: bool) -> list[list[int]]:
    """Runs of neighbouring tumour-called slices (positions into ``findings``, which are in
    slice order), their regions overlapping when ``overlap``."""
    runs: list[list[int]] = []
    current: list[int] = []
    for k, finding in enumerate(findings):
        if not finding.class_says_tumour:
            if current:
                runs.append(current)
            current = []
            continue
        if current:
            previous = current[-1]
            near = abs(positions[k] - positions[previous]) <= GAP_FACTOR * spacing + 1e-6
            if not near or (overlap and not _overlaps(findings[previous].mask, finding.mask)):
                runs.append(current)
                current = []
        current.append(k)
    if current:
        runs.append(current)
    return runs


def windowed_suspicion(tumour_probability: npt.NDArray[np.float64],
                       positions: npt.NDArray[np.float64], window_mm: float) -> float:
    """The highest mean p(tumour) over the slices within ``window_mm`` centred on a slice."""
    if tumour_probability.size == 0:
        return 0.0
    half = window_mm / 2 + 1e-6
    best = 0.0
    for centre in positions:
        inside = np.abs(positions - centre) <= half
        best = max(best, float(tumour_probability[inside].mean()))
    return best


def run_class(findings: Sequence[Finding], run: Sequence[int]) -> str:
    """The class the run's slices carry: p(class) weighted by p(tumour) and region area."""
    votes = np.zeros(len(TUMOUR_CLASSES))
    for k in run:
        finding = findings[k]
        weight = finding.tumour_probability * (1.0 + finding.mask_area_px)
        votes += weight * np.array([finding.probabilities[c] for c in TUMOUR_CLASSES])
    return TUMOUR_CLASSES[int(np.argmax(votes))]


def read_series(findings: Sequence[Finding], positions: Sequence[float],
                parameters: RuleParameters) -> SeriesReading:
    """The rule on the assessed, not refused findings of one series (in slice order) and
    their positions along the slice normal (mm)."""
    where = np.asarray(positions, dtype=np.float64)
    order = np.argsort(where, kind="stable")
    findings = [findings[i] for i in order]
    where = where[order]
    spacing = spacing_of(where)
    runs = tumour_runs(findings, where, spacing, parameters.overlap)
    qualifying = [r for r in runs if len(r) >= MIN_RUN_SLICES
                  and len(r) * spacing >= parameters.min_extent_mm - 1e-6]
    longest = max((len(r) * spacing for r in runs), default=0.0)
    probability = np.array([f.tumour_probability for f in findings])
    suspicion = windowed_suspicion(probability, where, parameters.window_mm)
    if qualifying:
        carrying = sorted(k for r in qualifying for k in r)
        return SeriesReading(
            Verdict.TUMOUR, run_class(findings, carrying),
            float(probability[carrying].mean()), suspicion,
            tuple(findings[k].index for k in carrying), longest, spacing)
    verdict = Verdict.NO_TUMOUR if suspicion < parameters.clear_below else Verdict.REVIEW
    predicted = "no_tumour" if verdict is Verdict.NO_TUMOUR else _leading_class(findings)
    return SeriesReading(verdict, predicted, 1.0 - suspicion, suspicion, (), longest, spacing)


def _leading_class(findings: Sequence[Finding]) -> str:
    """The class most probable over the series' slices (what a review series leans to)."""
    totals = np.zeros(len(CLASSES))
    for finding in findings:
        totals += np.array([finding.probabilities[c] for c in CLASSES])
    return CLASSES[int(np.argmax(totals))]
