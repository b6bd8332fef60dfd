"""Results as values: a Finding per slice and a SeriesVerdict per series (no torch here).

A review reason is kept twice: the words a person reads (``review_reasons``), and beside
them its ``ReasonKind`` (``reason_kinds``), which every decision uses; code never matches
the words.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

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


class ReasonKind(enum.StrEnum):
    """Why an image or a series is sent to review or refused, for code to decide on."""

    # an image
    EMPTY = "empty"  # no tissue: outside the head, or an empty tile of a mosaic
    BLANK = "blank"  # blank or almost empty picture
    TOO_LONG = "too_long"  # too long and narrow for one slice (montage, whole body)
    CT = "ct"  # looks like CT
    NOT_BRAIN = "not_brain"  # out of distribution: not the brain MRI the model knows
    LOW_CONFIDENCE = "low_confidence"  # p(no tumour) below the review threshold
    # a tumour class leads, but p(tumour) is below the tumour-call threshold
    LOW_CONFIDENCE_TUMOUR = "low_confidence_tumour"
    REGION_DISAGREES = "region_disagrees"  # no tumour called, a suspect region outlined
    # a series
    NOT_MR = "not_mr"  # the header's Modality
    BODY_PART = "body_part"  # the header's Body Part Examined
    NO_ANATOMICAL = "no_anatomical"  # only phase, field-map or other derived volumes
    NO_IMAGES = "no_images"
    NO_TISSUE = "no_tissue"  # every image is empty
    MOSTLY_UNASSESSABLE = "mostly_unassessable"  # more than half the images refused
    SOME_UNASSESSABLE = "some_unassessable"
    SINGLE_TUMOUR_IMAGE = "single_tumour_image"  # one weak tumour image, the rest normal
    # the whole-series rule: suspicion that neither persists nor is low enough to clear
    SERIES_SUSPICION = "series_suspicion"


class Reason(NamedTuple):
    """A review reason: its kind, and the words a person reads."""

    kind: ReasonKind
    text: str


class _WithReasons:
    """Review reasons in words (``review_reasons``) paired with their kinds
    (``reason_kinds``), checked at construction; shared by Finding and SeriesVerdict."""

    review_reasons: tuple[str, ...]
    reason_kinds: tuple[ReasonKind, ...]

    def __post_init__(self) -> None:
        texts, kinds = self.review_reasons, self.reason_kinds
        if len(texts) != len(kinds) or not all(isinstance(k, ReasonKind) for k in kinds):
            raise ValueError(f"{len(texts)} review reasons need as many ReasonKinds, "
                             f"got {kinds}")

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return tuple(map(Reason, self.reason_kinds, self.review_reasons))

    def has_reason(self, kind: ReasonKind) -> bool:
        return kind in self.reason_kinds


class AnalysisCancelled(Exception):
    """The user cancelled the analysis: verdicts already given stand, no partial one."""


_SUSPICION_RANK = {Verdict.TUMOUR: 2.0, Verdict.REVIEW: 1.0}


@dataclass(frozen=True, eq=False)
class Finding(_WithReasons):
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
    reason_kinds: tuple[ReasonKind, ...] = ()  # one per review reason, in the same order

    @property
    def tumour_probability(self) -> float:
        return 1.0 - self.probabilities["no_tumour"]

    @property
    def suspicion(self) -> float:
        """Order for "most suspicious first" lists: tumour calls, then images sent to review,
        then the rest; by p(tumour) within each."""
        return _SUSPICION_RANK.get(self.verdict, 0.0) + self.tumour_probability

    @property
    def class_says_tumour(self) -> bool:
        """A tumour class leads on an assessed image, whether or not p(tumour) reached the
        tumour-call threshold (the series rule's runs read this, not the verdict)."""
        return self.verdict is not Verdict.CANNOT_ASSESS and self.predicted_class in TUMOUR_CLASSES

    @property
    def weak_tumour_call(self) -> bool:
        """Sent to review because a tumour class leads with too little confidence."""
        return self.has_reason(ReasonKind.LOW_CONFIDENCE_TUMOUR)

    @property
    def heads_disagree(self) -> bool:
        """Sent to review because the mask outlines a region on a no-tumour call."""
        return self.has_reason(ReasonKind.REGION_DISAGREES)


def by_suspicion(findings: Iterable[Finding]) -> list[Finding]:
    """Most suspicious first (``Finding.suspicion``); the one ranking every list uses
    (ties keep the series order)."""
    return sorted(findings, key=lambda f: -f.suspicion)


def strongest_tumour(findings: Iterable[Finding]) -> Finding | None:
    """The image called tumour with the highest p(tumour), the first the ranking lists:
    the image a tumour series is named by."""
    ranked = by_suspicion(f for f in findings if f.verdict is Verdict.TUMOUR)
    return ranked[0] if ranked else None


def class_groups(findings: Iterable[Finding]) -> list[tuple[str, list[Finding]]]:
    """The images called tumour grouped by the class each names, in ranking order: the
    group of the strongest image first, each group most suspicious first."""
    groups: dict[str, list[Finding]] = {}
    for finding in by_suspicion(f for f in findings if f.verdict is Verdict.TUMOUR):
        groups.setdefault(finding.predicted_class, []).append(finding)
    return list(groups.items())


def image_numbers(series: Series | None, findings: Sequence[Finding], most: int = 5) -> str:
    """"image 12" or "images 3, 4, 5 and 2 more": in series order, numbered within their
    volume."""
    def number(finding: Finding) -> int:
        start = series.volume_of(finding.index).start if series is not None else 0
        return finding.index - start + 1

    findings = sorted(findings, key=lambda f: f.index)
    listed = ", ".join(str(number(f)) for f in findings[:most])
    more = f" and {len(findings) - most} more" if len(findings) > most else ""
    return f"{'image' if len(findings) == 1 else 'images'} {listed}{more}"


@dataclass(frozen=True, eq=False)
class SeriesVerdict(_WithReasons):
    """The verdict on one series, with every slice's finding."""

    series: Series
    verdict: Verdict
    predicted_class: str
    confidence: float  # tumour: p(tumour) of the strongest slice; otherwise p(no_tumour)
    review_reasons: tuple[str, ...]
    findings: tuple[Finding, ...]
    plane: str
    plane_source: str
    reason_kinds: tuple[ReasonKind, ...] = ()  # one per review reason, in the same order
    # decided by the whole-series rule (analysis.series_rule): ``carrying`` are the series
    # indices of the run(s) of neighbouring slices that carry the tumour, ``suspicion`` the
    # series' highest windowed mean p(tumour), ``window_mm`` that window
    by_series_rule: bool = False
    carrying: tuple[int, ...] = ()
    suspicion: float = 0.0
    window_mm: float = 0.0

    @property
    def carrying_findings(self) -> list[Finding]:
        wanted = set(self.carrying)
        return [f for f in self.findings if f.index in wanted]

    @property
    def strongest(self) -> Finding | None:
        """The image the series is named by (``strongest_tumour``); None without one."""
        return strongest_tumour(self.findings)

    @property
    def class_probability(self) -> float:
        """p(``predicted_class``) on the strongest tumour image, the image whose p(tumour)
        is the confidence; 0 without a tumour image."""
        if self.carrying and self.predicted_class in CLASSES:
            return float(np.mean([f.probabilities[self.predicted_class]
                                  for f in self.carrying_findings]))
        strongest = self.strongest
        if strongest is None or self.predicted_class not in CLASSES:
            return 0.0
        return strongest.probabilities[self.predicted_class]

    @property
    def headline(self) -> str:
        """The verdict in one line: the banner, the browser, the report and the command line
        all print this.

        A tumour series is named by its strongest image (the first the ranking lists):
        that image's class, its p(class) and its p(tumour). When other images called tumour
        name another class, each class is listed with its images, the strongest first.
        """
        words = VERDICT_WORDS[self.verdict]
        if self.by_series_rule:
            return self._series_rule_headline(words)
        if self.verdict is Verdict.NO_TUMOUR:
            return f"{words}: p(no tumour) {percent(self.confidence)} or more on every image"
        groups = class_groups(self.findings)
        if self.verdict is not Verdict.TUMOUR or not groups:
            return words
        tumour = f"tumour probability {percent(self.confidence)}"
        if len(groups) == 1:
            name, images = groups[0]
            return (f"{words}: most likely {name} ({percent(images[0].probabilities[name])} "
                    f"on {image_numbers(self.series, images[:1])}); {tumour}")
        parts = []
        for name, images in groups:
            best = max(f.probabilities[name] for f in images)
            bound = percent(best) if len(images) == 1 else f"up to {percent(best)}"
            parts.append(f"{name} on {image_numbers(self.series, images)} ({bound})")
        return f"{words}: classes disagree: {', '.join(parts)}; {tumour}"

    def _series_rule_headline(self, words: str) -> str:
        """The whole-series rule's verdict: the run that carries the tumour, or the
        series' highest suspicion over neighbouring slices."""
        if self.verdict is Verdict.TUMOUR and self.carrying:
            images = self.carrying_findings
            volume = self.series.volume_of(images[0].index)
            first, last = (f.index - volume.start + 1 for f in (images[0], images[-1]))
            where = f"images {first} to {last} of {volume.count}" + (
                f", {volume.name}" if self.series.is_multi_volume else "")
            return (f"{words}: most likely {self.predicted_class} "
                    f"({percent(self.class_probability)} on average over {len(images)} "
                    f"neighbouring images, {where}); tumour probability "
                    f"{percent(self.confidence)}")
        if self.verdict is Verdict.NO_TUMOUR:
            return (f"{words}: no tumour suspicion across neighbouring images (at most "
                    f"{percent(self.suspicion, 1)} p(tumour) over {self.window_mm:g} mm)")
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

    def most_suspicious(self, count: int | None = 3) -> list[Finding]:
        """The ``count`` most suspicious images (``by_suspicion``; None: all of them)."""
        return by_suspicion(self.findings)[:count]
