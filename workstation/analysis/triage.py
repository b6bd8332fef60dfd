"""The review policy: calibrated probabilities -> per-slice and per-series verdicts.

A slice is cleared as no_tumour only when p(no_tumour) reaches the review threshold that was
chosen on the validation split so that no tumour slice there was cleared; anything less
confident goes to a human, and so does a confident no-tumour call on which the mask decoder
outlines a suspect region (the heads disagree; a cleared slice never shows an outline).
Symmetrically, a slice is called tumour on its own only when p(tumour) reaches the tumour-call
threshold chosen on the validation whole series; a weaker tumour call goes to review.
DICOM metadata (``header_check``: Modality, Body Part Examined, descriptions), a CT check
and two out-of-distribution scores (on the network's features and on an unchanged ImageNet
network's) decide what cannot be assessed. A whole series is decided by the series rule
(``series_rule``) when the model has one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from workstation.analysis.findings import (
    CLASSES,
    PLANES,
    Finding,
    Reason,
    ReasonKind,
    SeriesVerdict,
    Verdict,
    by_suspicion,
    image_numbers,
    percent,
    strongest_tumour,
)
from workstation.analysis.header_check import metadata_problem
from workstation.analysis.preprocess import INPUT_SIZE
from workstation.analysis.series_rule import (
    MASK_THRESHOLD,
    RuleParameters,
    SeriesReading,
    read_series,
)
from workstation.imaging.series import PlaneSource, Series

MIN_FOREGROUND = 0.03  # below this share of non-background pixels a slice is blank
# a slice whose bright end is this far below the series' is outside the head (empty tile)
EMPTY_LEVEL = 0.12
EMPTY_REASON = "no tissue in this image (outside the head or an empty tile)"
# Slice.display_blank: the file's window shows one flat grey although the values vary
DISPLAY_BLANK_REASON = ("the window leaves nothing visible: the image shows one flat grey "
                        "although the file's values vary")
# why a confident no-tumour call goes to review anyway
REGION_REASON = ("called no tumour, but the suspect-region map outlines an area: the class "
                 "and region heads disagree")
CONFIDENT_SINGLE_TUMOUR_SLICE = 0.8
# one brain slice is near square (matrices 256x256 to 512x288; BraTS' 240x155 is the
# longest in the training data, 1.55:1); a picture longer than this is a montage of several
# slices or a whole-body image (a nuclear-medicine bone scan is 4:1), never one slice
MAX_ASPECT_RATIO = 1.9
# the peak is taken after smoothing the suspect-region map (Gaussian sigma in network input
# pixels, INPUT_SIZE of them across the image), so one sharp pixel does not win over the
# body of the region; chosen on the validation split's pointing game (sigma 0-3 tried)
PEAK_SMOOTHING_PX = 3.0


class Prediction(Protocol):
    """What the policy needs of a slice's analysis (engine.SlicePrediction provides it)."""

    @property
    def probabilities(self) -> npt.NDArray[np.float32]: ...
    @property
    def plane_probabilities(self) -> npt.NDArray[np.float32]: ...
    @property
    def mask(self) -> npt.NDArray[np.float32]: ...
    @property
    def ood_score(self) -> float: ...
    @property
    def foreground_fraction(self) -> float: ...
    @property
    def ct_score(self) -> float: ...
    @property
    def reference_ood_score(self) -> float: ...
    @property
    def picture_score(self) -> float: ...


@dataclass(frozen=True)
class Policy:
    review_threshold: float
    ood_threshold: float
    ct_threshold: float = 1.0  # CT probability above which a slice is CT (1.0: never)
    # picture probability above which a slice is a photograph or texture (1.0: never)
    picture_threshold: float = 1.0
    # novelty on the ImageNet reference features above which a slice is refused (inf: never)
    reference_ood_threshold: float = float("inf")
    # the whole-series rule (analysis.series_rule) for series of MIN_RULE_SLICES or more
    # positioned slices; None: every series by the image rule (a model without one)
    series_rule: RuleParameters | None = None
    # p(tumour) an image needs to be called tumour on its own; below it an image on which a
    # tumour class leads goes to review. A tumour class leading already means p(tumour) >
    # 0.5, so 0.5 is "no threshold" (a model without one)
    tumour_call_threshold: float = 0.5


# fewer slices than this (a single picture, a few key images) keep the image rule
MIN_RULE_SLICES = 3


def empty_slices(series: Series) -> list[bool]:
    """Assessed slices whose 99th-percentile signal is a small fraction of the typical one."""
    levels = np.array([float(np.percentile(np.asarray(s.raw), 99))
                       for s in series.assessed_slices])
    if levels.size < 3:
        return [False] * levels.size
    reference = float(np.percentile(levels, 75))
    if reference <= 0:
        return [True] * levels.size
    return (levels < EMPTY_LEVEL * reference).tolist()


def _aspect_ratio(shape: tuple[int, ...]) -> float:
    """Long side over short side of an image grid (1.0 when it has no pixels)."""
    if len(shape) < 2 or min(shape[:2]) == 0:
        return 1.0
    return max(shape[:2]) / min(shape[:2])


def distinct_decimals(value: float, threshold: float) -> tuple[str, str]:
    """Both numbers with 3 decimals, or as many more as it takes for them to print
    differently: "p = 0.995, below the 0.995 needed" would read as a contradiction."""
    for places in range(3, 7):
        shown, needed = f"{value:.{places}f}", f"{threshold:.{places}f}"
        # a threshold below 1 must not read as "1.000 needed" (certainty)
        if shown != needed and (threshold >= 1.0 or float(needed) < 1.0):
            break
    return shown, needed


def slice_finding(index: int, file: str, prediction: Prediction, policy: Policy,
                  dicom_plane: str | None, empty: bool = False,
                  display_blank: bool = False) -> Finding:
    probabilities = {c: float(p) for c, p in zip(CLASSES, prediction.probabilities,
                                                 strict=True)}
    plane_probabilities = {p: float(v) for p, v in zip(PLANES, prediction.plane_probabilities,
                                                       strict=True)}
    predicted = max(probabilities, key=probabilities.__getitem__)
    mask = np.asarray(prediction.mask, dtype=np.float32)
    region = mask >= MASK_THRESHOLD
    reason = _refusal(prediction, policy, empty, display_blank)
    if reason is not None:
        verdict = Verdict.CANNOT_ASSESS
    elif predicted != "no_tumour":
        verdict = Verdict.TUMOUR
        tumour = 1.0 - probabilities["no_tumour"]
        if tumour < policy.tumour_call_threshold:
            verdict = Verdict.REVIEW
            shown, needed = distinct_decimals(tumour, policy.tumour_call_threshold)
            reason = Reason(ReasonKind.LOW_CONFIDENCE_TUMOUR, (
                f"possible tumour ({predicted}), low confidence (p(tumour) = {shown}, below "
                f"the {needed} needed to call it)"))
    elif probabilities["no_tumour"] < policy.review_threshold:
        verdict = Verdict.REVIEW
        shown, needed = distinct_decimals(probabilities["no_tumour"], policy.review_threshold)
        reason = Reason(ReasonKind.LOW_CONFIDENCE, f"low-confidence no-tumour call (p = {shown}, "
                        f"below the {needed} needed to clear it)")
    elif region.any():
        # the two heads disagree: a slice with a suspect region outlined is never cleared
        verdict = Verdict.REVIEW
        reason = Reason(ReasonKind.REGION_DISAGREES, REGION_REASON)
    else:
        verdict = Verdict.NO_TUMOUR
    reasons = [reason] if reason is not None else []
    peak = None
    if verdict is not Verdict.CANNOT_ASSESS and mask.size:
        peak = peak_of(mask)
    return Finding(
        index=index, file=file, probabilities=probabilities, predicted_class=predicted,
        verdict=verdict,
        plane=dicom_plane or max(plane_probabilities, key=plane_probabilities.__getitem__),
        plane_probabilities=plane_probabilities, review_reasons=tuple(r.text for r in reasons),
        reason_kinds=tuple(r.kind for r in reasons), ood_score=float(prediction.ood_score),
        reference_ood_score=float(prediction.reference_ood_score), mask=mask,
        mask_area_px=int(region.sum()) if verdict is not Verdict.CANNOT_ASSESS else 0,
        peak=peak,
    )


def _refusal(prediction: Prediction, policy: Policy, empty: bool,
             display_blank: bool = False) -> Reason | None:
    """Why the model cannot assess this image, or None."""
    if display_blank:
        return Reason(ReasonKind.BLANK, DISPLAY_BLANK_REASON)
    if empty:
        return Reason(ReasonKind.EMPTY, EMPTY_REASON)
    if prediction.foreground_fraction < MIN_FOREGROUND:
        return Reason(ReasonKind.BLANK, "the image is blank or almost empty")
    if _aspect_ratio(prediction.mask.shape) > MAX_ASPECT_RATIO:
        rows, cols = prediction.mask.shape[:2]
        return Reason(ReasonKind.TOO_LONG, f"the picture is {cols} x {rows} pixels, too long "
                      "and narrow for one brain slice (a montage of slices or a whole-body "
                      "image)")
    if prediction.ct_score > policy.ct_threshold:
        return Reason(ReasonKind.CT, "looks like a CT image, not MRI")
    if (prediction.ood_score > policy.ood_threshold
            or prediction.reference_ood_score > policy.reference_ood_threshold
            or prediction.picture_score > policy.picture_threshold):
        return Reason(ReasonKind.NOT_BRAIN,
                      "does not look like the brain MRI the model was trained on")
    return None


def peak_of(mask: npt.NDArray[np.float32], smoothing: float = PEAK_SMOOTHING_PX
            ) -> tuple[int, int]:
    """The most suspicious pixel (row, col) of a suspect-region map on the image grid.

    The map is smoothed at about the network's resolution (a large image is first reduced by
    block means, so a 512 px map costs what a 160 px one does); the peak is then the map's
    highest pixel inside the winning block."""
    if smoothing <= 0:
        row, col = np.unravel_index(int(np.argmax(mask)), mask.shape)
        return int(row), int(col)
    from scipy.ndimage import gaussian_filter

    factor = max(1, int(max(mask.shape) // INPUT_SIZE))
    rows, cols = -(-mask.shape[0] // factor), -(-mask.shape[1] // factor)
    padded = np.zeros((rows * factor, cols * factor), np.float32)
    padded[:mask.shape[0], :mask.shape[1]] = mask
    reduced = padded.reshape(rows, factor, cols, factor).mean(axis=(1, 3))
    sigma = smoothing * max(1.0, max(mask.shape) / INPUT_SIZE) / factor
    smoothed = gaussian_filter(reduced, sigma=sigma, mode="constant")
    block_row, block_col = np.unravel_index(int(np.argmax(smoothed)), smoothed.shape)
    top, left = int(block_row) * factor, int(block_col) * factor
    block = mask[top:top + factor, left:left + factor]
    row, col = np.unravel_index(int(np.argmax(block)), block.shape)
    return top + int(row), left + int(col)


def series_verdict(series: Series, predictions: Sequence[Prediction], policy: Policy
                   ) -> SeriesVerdict:
    """The verdict on ``series`` from the predictions for its assessed slices
    (``series.assessed_slices``, in that order: one volume of a multi-volume series)."""
    dicom_plane = series.plane.value if series.plane_source is PlaneSource.DICOM else None
    empties = empty_slices(series)
    indices = series.assessed_indices
    findings = tuple(
        slice_finding(i, series.slices[i].source, p, policy, dicom_plane, empties[n],
                      series.slices[i].display_blank)
        for n, (i, p) in enumerate(zip(indices, predictions, strict=True)))
    plane, plane_source = _series_plane(series, findings)

    def verdict_of(verdict: Verdict, predicted: str, confidence: float,
                   reasons: Sequence[Reason]) -> SeriesVerdict:
        return SeriesVerdict(series, verdict, predicted, confidence,
                             tuple(r.text for r in reasons), findings, plane, plane_source,
                             tuple(r.kind for r in reasons))

    header_problem = metadata_problem(series)
    if header_problem is not None:
        return verdict_of(Verdict.CANNOT_ASSESS, "", 0.0, [header_problem])
    if not series.assessed_volumes:
        count = len(series.volumes)
        return verdict_of(Verdict.CANNOT_ASSESS, "", 0.0, [Reason(
            ReasonKind.NO_ANATOMICAL, "not assessed: no anatomical image in this series (its "
            f"{'volume is' if count == 1 else f'{count} volumes are'} phase, field-map or "
            "other derived images)")])
    if policy.series_rule is not None:
        ruled = decide_by_series_rule(findings, series, policy.series_rule)
        if ruled is not None:
            verdict, predicted, confidence, reasons, reading = ruled
            return SeriesVerdict(series, verdict, predicted, confidence,
                                 tuple(r.text for r in reasons), findings, plane,
                                 plane_source, tuple(r.kind for r in reasons),
                                 by_series_rule=True, carrying=reading.carrying,
                                 suspicion=reading.suspicion,
                                 window_mm=policy.series_rule.window_mm)
    return verdict_of(*decide(findings, series))


def decide_by_series_rule(findings: Sequence[Finding], series: Series, rule: RuleParameters
                          ) -> tuple[Verdict, str, float, list[Reason], SeriesReading] | None:
    """The whole-series rule on a series of MIN_RULE_SLICES or more positioned slices (None:
    the image rule decides). Images outside the head are left out; a series mostly refused
    goes to the image rule (cannot assess, unless an assessed image suggests a tumour);
    refused images between assessed ones send a series that would be routine to review
    (refused images at the ends, past the brain, do not)."""
    shown = [f for f in findings if not f.has_reason(ReasonKind.EMPTY)]
    positions = [series.slices[f.index].position for f in shown]
    if len(shown) < MIN_RULE_SLICES or any(p is None for p in positions):
        return None
    refused = [f.verdict is Verdict.CANNOT_ASSESS for f in shown]
    if sum(refused) * 2 > len(shown):
        return None  # the image rule says why it cannot be assessed
    order = sorted(range(len(shown)), key=lambda k: positions[k])  # type: ignore[arg-type,return-value]
    assessed = [k for k in order if not refused[k]]
    reading = read_series([shown[k] for k in assessed],
                          [float(positions[k]) for k in assessed],  # type: ignore[arg-type]
                          rule)
    if reading.verdict is Verdict.TUMOUR:
        return Verdict.TUMOUR, reading.predicted_class, reading.confidence, [], reading
    reasons = []
    if reading.verdict is Verdict.REVIEW:
        reasons.append(Reason(ReasonKind.SERIES_SUSPICION, (
            f"tumour suspicion that does not persist across neighbouring images, but is too "
            f"high to clear the series (up to {percent(reading.suspicion, 1)} p(tumour) "
            f"over {rule.window_mm:g} mm)")))
    inner = [shown[k] for k in order[order.index(assessed[0]):order.index(assessed[-1]) + 1]
             if refused[k]]
    if inner:
        reasons.append(Reason(ReasonKind.SOME_UNASSESSABLE, (
            f"{len(inner)} of {len(shown)} images between assessed ones could not be "
            f"assessed ({image_numbers(series, inner)})")))
    if reasons:
        return Verdict.REVIEW, reading.predicted_class if reading.verdict is Verdict.REVIEW \
            else "no_tumour", reading.confidence, reasons, reading
    return Verdict.NO_TUMOUR, "no_tumour", reading.confidence, [], reading


def decide(findings: Sequence[Finding], series: Series | None = None
           ) -> tuple[Verdict, str, float, list[Reason]]:
    """Series verdict from slice findings: (verdict, class, confidence, reasons).

    A tumour is named by its strongest image (``strongest_tumour``): its class, and its
    p(tumour) as the confidence, so the headline quotes one image's numbers.
    With ``series``, images are named as the user finds them (image of its volume)."""
    def image(finding: Finding) -> str:
        if series is None:
            return f"image {finding.index + 1}"
        return series.image_words(finding.index)

    def cannot(kind: ReasonKind, text: str) -> tuple[Verdict, str, float, list[Reason]]:
        return Verdict.CANNOT_ASSESS, "", 0.0, [Reason(kind, text)]

    if not findings:
        return cannot(ReasonKind.NO_IMAGES, "the series holds no images")
    findings = [f for f in findings if not f.has_reason(ReasonKind.EMPTY)]
    if not findings:
        return cannot(ReasonKind.NO_TISSUE, "no image shows tissue")
    by_verdict: dict[Verdict, list[Finding]] = {v: [] for v in Verdict}
    for finding in findings:
        by_verdict[finding.verdict].append(finding)
    unassessable = by_verdict[Verdict.CANNOT_ASSESS]
    # a tumour that an assessed image suggests is never hidden behind "cannot assess": a
    # series mostly refused but with such an image is decided on its assessed images
    suggests_tumour = any(f.verdict is Verdict.TUMOUR or f.weak_tumour_call for f in findings)
    if len(unassessable) * 2 > len(findings) and not suggests_tumour:
        causes = sorted({r.text for f in unassessable for r in f.reasons})
        return cannot(ReasonKind.MOSTLY_UNASSESSABLE,
                      f"{len(unassessable)} of {len(findings)} images: {', '.join(causes)}")
    tumour = by_verdict[Verdict.TUMOUR]
    reasons: list[Reason] = []
    predicted = "no_tumour"
    strongest = strongest_tumour(tumour)
    if strongest is not None:
        predicted = strongest.predicted_class
        confidence = strongest.tumour_probability
        if len(tumour) >= 2 or confidence >= CONFIDENT_SINGLE_TUMOUR_SLICE:
            return Verdict.TUMOUR, predicted, confidence, reasons
        reasons.append(Reason(ReasonKind.SINGLE_TUMOUR_IMAGE, (
            f"one image suggests a tumour ({predicted}, {image(strongest)}, "
            f"{percent(confidence)}) and the others do not")))
    weak = by_suspicion(f for f in by_verdict[Verdict.REVIEW] if f.weak_tumour_call)
    if weak:
        if strongest is None:
            predicted = weak[0].predicted_class
        calls = "suggests a tumour" if len(weak) == 1 else "suggest a tumour"
        reasons.append(Reason(ReasonKind.LOW_CONFIDENCE_TUMOUR, (
            f"{len(weak)} of {len(findings)} images {calls} with low confidence (highest "
            f"p(tumour) = {weak[0].tumour_probability:.3f}, {weak[0].predicted_class}, "
            f"{image(weak[0])})")))
    disagree = [f for f in by_verdict[Verdict.REVIEW] if f.heads_disagree]
    low = [f for f in by_verdict[Verdict.REVIEW]
           if not f.heads_disagree and not f.weak_tumour_call]
    if low:
        weakest = min(low, key=lambda f: f.probabilities["no_tumour"])
        calls = ("is a low-confidence no-tumour call" if len(low) == 1
                 else "are low-confidence no-tumour calls")
        reasons.append(Reason(ReasonKind.LOW_CONFIDENCE, (
            f"{len(low)} of {len(findings)} images {calls} (lowest p = "
            f"{weakest.probabilities['no_tumour']:.3f}, {image(weakest)})")))
    if disagree:
        called = ("is called no tumour but shows an outlined suspect region"
                  if len(disagree) == 1
                  else "are called no tumour but show an outlined suspect region")
        reasons.append(Reason(ReasonKind.REGION_DISAGREES, (
            f"{len(disagree)} of {len(findings)} images {called} "
            f"({image_numbers(series, disagree)})")))
    if unassessable:
        reasons.append(Reason(ReasonKind.SOME_UNASSESSABLE,
                              f"{len(unassessable)} of {len(findings)} images could not be "
                              "assessed"))
    if reasons:
        cleared = [f.probabilities["no_tumour"] for f in findings
                   if f.verdict is not Verdict.CANNOT_ASSESS]
        return Verdict.REVIEW, predicted, float(min(cleared)) if cleared else 0.0, reasons
    confidence = float(min(f.probabilities["no_tumour"] for f in findings))
    return Verdict.NO_TUMOUR, "no_tumour", confidence, reasons


def _series_plane(series: Series, findings: Sequence[Finding]) -> tuple[str, str]:
    if series.plane_source is PlaneSource.DICOM:
        return series.plane.value, PlaneSource.DICOM.value
    votes = Counter(f.plane for f in findings if f.verdict is not Verdict.CANNOT_ASSESS)
    if not votes:
        return "unknown", PlaneSource.NONE.value
    return votes.most_common(1)[0][0], PlaneSource.MODEL.value
