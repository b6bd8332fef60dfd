"""Results as values: a Finding per slice and a SeriesVerdict per series (no torch here)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from workstation.imaging.series import Series

CLASSES = ("glioma", "meningioma", "pituitary", "no_tumour")
PLANES = ("axial", "coronal", "sagittal")
TUMOUR_CLASSES = CLASSES[:3]


def percent(p: float, decimals: int = 0) -> str:
    """A probability for people: never '100%' or '0%' for what is not certain
    (with one decimal: '>99.9%', '<0.1%')."""
    text = f"{p:.{decimals}%}"
    step = 10.0 ** -decimals  # the last shown digit, in percent
    if float(text[:-1]) >= 100:
        return f">{100 - step:.{decimals}f}%"
    if float(text[:-1]) <= 0:
        return f"<{step:.{decimals}f}%"
    return text


class Verdict(enum.StrEnum):
    TUMOUR = "tumour"  # priority read
    NO_TUMOUR = "no_tumour"  # routine
    REVIEW = "review"  # needs human review
    CANNOT_ASSESS = "cannot_assess"  # not a brain MRI, or unreadable


VERDICT_WORDS = {
    Verdict.TUMOUR: "Tumour suspected (priority read)",
    Verdict.NO_TUMOUR: "No tumour detected (routine)",
    Verdict.REVIEW: "Needs human review",
    Verdict.CANNOT_ASSESS: "Cannot assess",
}


# why a confident no-tumour call goes to review anyway (triage sets it, the report and the
# window look for it)
REGION_REASON = ("called no tumour, but the suspect-region map outlines an area: the class "
                 "and region heads disagree")
_SUSPICION_RANK = {Verdict.TUMOUR: 2.0, Verdict.REVIEW: 1.0}


@dataclass(frozen=True, eq=False)
class Finding:
    """The model's reading of one slice."""

    index: int
    file: str
    probabilities: dict[str, float]
    predicted_class: str
    verdict: Verdict
    plane: str
    plane_probabilities: dict[str, float]
    review_reasons: tuple[str, ...]
    ood_score: float
    reference_ood_score: float  # novelty on the unchanged ImageNet network's features
    mask: npt.NDArray[np.float32]  # suspect-region probability, input image grid
    mask_area_px: int
    peak: tuple[int, int] | None  # most suspicious pixel (row, col)

    @property
    def tumour_probability(self) -> float:
        return 1.0 - self.probabilities["no_tumour"]

    @property
    def suspicion(self) -> float:
        """Order for "most suspicious first" lists: tumour calls, then images sent to review,
        then the rest; by p(tumour) within each."""
        return _SUSPICION_RANK.get(self.verdict, 0.0) + self.tumour_probability

    @property
    def heads_disagree(self) -> bool:
        """Sent to review because the mask outlines a region on a no-tumour call."""
        return REGION_REASON in self.review_reasons


@dataclass(frozen=True, eq=False)
class SeriesVerdict:
    """The verdict on one series, with every slice's finding."""

    series: Series
    verdict: Verdict
    predicted_class: str
    confidence: float  # tumour: p(tumour) of the strongest slice; otherwise p(no_tumour)
    review_reasons: tuple[str, ...]
    findings: tuple[Finding, ...]
    plane: str
    plane_source: str

    @property
    def class_probability(self) -> float:
        """Mean probability of ``predicted_class`` over the slices that voted for a tumour."""
        voting = [f for f in self.findings if f.verdict is Verdict.TUMOUR] or list(self.findings)
        if not voting or self.predicted_class not in CLASSES:
            return 0.0
        return float(np.mean([f.probabilities[self.predicted_class] for f in voting]))

    @property
    def headline(self) -> str:
        words = VERDICT_WORDS[self.verdict]
        if self.verdict is Verdict.TUMOUR:
            return (f"{words}: most likely {self.predicted_class} "
                    f"({percent(self.class_probability)}); tumour probability "
                    f"{percent(self.confidence)}")
        if self.verdict is Verdict.NO_TUMOUR:
            return f"{words}: p(no tumour) {percent(self.confidence)} or more on every image"
        return words

    def finding_at(self, index: int) -> Finding | None:
        """The finding of slice ``index`` of the series; None where it was not assessed
        (another volume than the one the model read)."""
        for finding in self.findings:
            if finding.index == index:
                return finding
        return None

    @property
    def assessed_on(self) -> str | None:
        """Which volume(s) the verdict was decided on, for a series of several volumes."""
        series = self.series
        if not series.is_multi_volume:
            return None
        assessed = series.assessed_volumes
        if not assessed:
            return f"none of the {len(series.volumes)} volumes is an anatomical image"
        names = ", ".join(v.name for v in assessed)
        rest = len(series.volumes) - len(assessed)
        return (f"decided on {names} of {len(series.volumes)} volumes; the other {rest} "
                f"{'volume was' if rest == 1 else 'volumes were'} not assessed")

    def most_suspicious(self, count: int = 3) -> list[Finding]:
        return sorted(self.findings, key=lambda f: -f.suspicion)[:count]
