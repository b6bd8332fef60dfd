"""The review policy on hand-made predictions (no network involved)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest

from workstation.analysis.findings import ReasonKind, Verdict, percent
from workstation.analysis.triage import Policy, peak_of, series_verdict, slice_finding
from workstation.imaging import Plane, PlaneSource, Series, SeriesInfo, Slice, Window
from workstation.imaging.pixels import frozen

POLICY = Policy(review_threshold=0.9, ood_threshold=3.0, ct_threshold=0.8)


@dataclass
class FakePrediction:
    probabilities: np.ndarray
    plane_probabilities: np.ndarray
    mask: np.ndarray
    ood_score: float = 1.0
    foreground_fraction: float = 0.4
    ct_score: float = 0.0
    reference_ood_score: float = 0.0
    picture_score: float = 0.0


def prediction(glioma: float = 0.0, meningioma: float = 0.0, pituitary: float = 0.0,
               ood: float = 1.0, plane: int = 0, mask_at: tuple[int, int] | None = None
               ) -> FakePrediction:
    no = 1.0 - glioma - meningioma - pituitary
    mask = np.zeros((32, 32), np.float32)
    if mask_at is not None:
        mask[mask_at[0] - 2:mask_at[0] + 3, mask_at[1] - 2:mask_at[1] + 3] = 0.9
        mask[mask_at] = 0.99
    planes = np.full(3, 0.05, np.float32)
    planes[plane] = 0.9
    return FakePrediction(np.array([glioma, meningioma, pituitary, no], np.float32), planes,
                          mask, ood)


def series(count: int, modality: str | None = "MR", body_part: str | None = "BRAIN",
           dicom_plane: bool = True, levels: list[float] | None = None) -> Series:
    slices = []
    for k in range(count):
        level = levels[k] if levels else 100.0
        raw = np.full((32, 32), level, np.float32)
        raw[0, 0] = 0
        slices.append(Slice(frozen(raw / max(level, 1)), frozen(raw), Window(50, 100, "dicom"),
                            f"img{k}.dcm"))
    return Series(source="s", series_uid="1.2", slices=tuple(slices),
                  info=SeriesInfo(modality=modality, body_part_examined=body_part),
                  plane=Plane.AXIAL if dicom_plane else Plane.UNKNOWN,
                  plane_source=PlaneSource.DICOM if dicom_plane else PlaneSource.NONE)


def test_confident_normal_series_is_cleared() -> None:
    verdict = series_verdict(series(3), [prediction(glioma=0.02)] * 3, POLICY)
    assert verdict.verdict is Verdict.NO_TUMOUR
    assert verdict.review_reasons == ()
    assert verdict.confidence == pytest.approx(0.98)


def test_low_confidence_normal_goes_to_review_with_a_reason() -> None:
    preds = [prediction(glioma=0.02), prediction(meningioma=0.2), prediction(glioma=0.01)]
    verdict = series_verdict(series(3), preds, POLICY)
    assert verdict.verdict is Verdict.REVIEW
    assert "low-confidence no-tumour" in verdict.review_reasons[0]
    assert "image 2" in verdict.review_reasons[0]
    assert verdict.findings[1].verdict is Verdict.REVIEW


def test_a_low_confidence_call_never_prints_the_same_number_as_its_threshold() -> None:
    """p 0.9946 against a threshold of 0.9948 must not read "p = 0.995, below the 0.995"."""
    close = replace(POLICY, review_threshold=0.9948)
    finding = series_verdict(series(1), [prediction(glioma=0.0054)], close).findings[0]
    assert finding.verdict is Verdict.REVIEW
    assert "(p = 0.9946, below the 0.9948 needed to clear it)" in finding.review_reasons[0]
    far = series_verdict(series(1), [prediction(glioma=0.02)], close).findings[0]
    assert "(p = 0.980, below the 0.995 needed to clear it)" in far.review_reasons[0]


def test_confident_normal_with_an_outlined_region_goes_to_review() -> None:
    """The class head clears it but the mask decoder outlines a region: the heads disagree,
    so a slice cleared as no tumour never carries an outline."""
    preds = [prediction(glioma=0.02), prediction(glioma=0.01, mask_at=(10, 12)),
             prediction(glioma=0.01), prediction(pituitary=0.01, mask_at=(20, 20))]
    verdict = series_verdict(series(4), preds, POLICY)
    assert [f.verdict for f in verdict.findings] == [
        Verdict.NO_TUMOUR, Verdict.REVIEW, Verdict.NO_TUMOUR, Verdict.REVIEW]
    assert verdict.findings[1].mask_area_px > 0
    assert "suspect-region map outlines an area" in verdict.findings[1].review_reasons[0]
    assert verdict.verdict is Verdict.REVIEW
    assert verdict.review_reasons == (
        "2 of 4 images are called no tumour but show an outlined suspect region "
        "(images 2, 4)",)
    one = series_verdict(series(4), [*preds[:3], prediction(glioma=0.01)], POLICY)
    assert one.review_reasons == (
        "1 of 4 images is called no tumour but shows an outlined suspect region (image 2)",)
    assert all(f.mask_area_px == 0 for f in verdict.findings if f.verdict is Verdict.NO_TUMOUR)


def test_two_tumour_slices_make_a_tumour_series_with_the_majority_class() -> None:
    preds = [prediction(), prediction(meningioma=0.7, glioma=0.1, mask_at=(10, 12)),
             prediction(meningioma=0.6, pituitary=0.2)]
    verdict = series_verdict(series(3), preds, POLICY)
    assert verdict.verdict is Verdict.TUMOUR
    assert verdict.predicted_class == "meningioma"
    assert verdict.confidence == pytest.approx(0.8)
    assert verdict.findings[1].peak == (10, 12)
    assert verdict.findings[1].mask_area_px == 25
    assert "meningioma" in verdict.headline


def test_single_weak_tumour_slice_is_review_not_tumour() -> None:
    preds = [prediction(), prediction(glioma=0.6), prediction()]
    verdict = series_verdict(series(3), preds, POLICY)
    assert verdict.verdict is Verdict.REVIEW
    assert any("one image suggests a tumour" in r for r in verdict.review_reasons)


def test_single_confident_tumour_slice_is_a_tumour() -> None:
    verdict = series_verdict(series(1), [prediction(pituitary=0.95)], POLICY)
    assert verdict.verdict is Verdict.TUMOUR and verdict.predicted_class == "pituitary"


@pytest.mark.parametrize(("modality", "body_part", "words"), [
    ("CT", "HEAD", "modality CT"), ("MR", "ABDOMEN", "ABDOMEN"), ("US", None, "modality US")])
def test_header_says_not_brain_mri(modality: str, body_part: str | None, words: str) -> None:
    verdict = series_verdict(series(2, modality, body_part), [prediction()] * 2, POLICY)
    assert verdict.verdict is Verdict.CANNOT_ASSESS
    assert words in verdict.review_reasons[0]


def test_out_of_distribution_images_cannot_be_assessed() -> None:
    verdict = series_verdict(series(3, None, None), [prediction(ood=9.0)] * 3, POLICY)
    assert verdict.verdict is Verdict.CANNOT_ASSESS
    assert "does not look like" in verdict.review_reasons[0]


def test_either_novelty_score_refuses_an_image_and_a_model_without_the_second_never_does(
) -> None:
    """The reference score (ImageNet features) refuses a slice the triage network's own
    score passes, even one called normal with confidence; without a reference threshold
    (a model exported before it existed) the score is never read."""
    with_reference = replace(POLICY, reference_ood_threshold=0.5)
    odd = replace(prediction(), reference_ood_score=0.6)
    verdict = series_verdict(series(3, None, None), [odd] * 3, with_reference)
    assert verdict.verdict is Verdict.CANNOT_ASSESS
    assert "does not look like" in verdict.review_reasons[0]
    usual = replace(prediction(), reference_ood_score=0.4)
    assert series_verdict(series(3, None, None), [usual] * 3,
                          with_reference).verdict is Verdict.NO_TUMOUR
    assert series_verdict(series(3, None, None), [odd] * 3, POLICY).verdict is Verdict.NO_TUMOUR


def test_images_that_look_like_ct_cannot_be_assessed_even_when_called_tumour() -> None:
    ct = replace(prediction(glioma=0.9), ct_score=0.95)
    verdict = series_verdict(series(3, None, None), [ct] * 3, POLICY)
    assert verdict.verdict is Verdict.CANNOT_ASSESS
    assert "looks like a CT image, not MRI" in verdict.review_reasons[0]
    below = replace(prediction(glioma=0.9), ct_score=0.5)
    assert series_verdict(series(3, None, None), [below] * 3, POLICY).verdict is Verdict.TUMOUR


def test_images_the_picture_check_rejects_cannot_be_assessed_even_when_called_tumour(
        ) -> None:
    policy = replace(POLICY, picture_threshold=0.7)
    picture = replace(prediction(glioma=0.9), picture_score=0.75)
    verdict = series_verdict(series(3, None, None), [picture] * 3, policy)
    assert verdict.verdict is Verdict.CANNOT_ASSESS
    assert "does not look like the brain MRI" in verdict.review_reasons[0]
    at = replace(prediction(glioma=0.9), picture_score=0.7)  # at the threshold: assessed
    assert series_verdict(series(3, None, None), [at] * 3, policy).verdict is Verdict.TUMOUR
    # a model without a picture check (threshold 1.0) refuses nothing on it
    assert series_verdict(series(3, None, None), [picture] * 3,
                          POLICY).verdict is Verdict.TUMOUR


def test_a_tumour_among_mostly_unassessable_images_is_not_hidden_behind_cannot_assess(
        ) -> None:
    refused = prediction(ood=9.0)
    verdict = series_verdict(series(3, None, None), [refused, refused, prediction()], POLICY)
    assert verdict.verdict is Verdict.CANNOT_ASSESS  # nothing suggests a tumour
    confident = series_verdict(series(3, None, None),
                               [refused, refused, prediction(glioma=0.999)], POLICY)
    assert confident.verdict is Verdict.TUMOUR and confident.predicted_class == "glioma"
    weak_policy = replace(POLICY, tumour_call_threshold=0.95)
    weak = series_verdict(series(3, None, None),
                          [refused, refused, prediction(meningioma=0.8)], weak_policy)
    assert weak.verdict is Verdict.REVIEW and weak.predicted_class == "meningioma"
    assert ReasonKind.LOW_CONFIDENCE_TUMOUR in weak.reason_kinds
    assert ReasonKind.SOME_UNASSESSABLE in weak.reason_kinds


def test_some_unassessable_images_send_the_series_to_review() -> None:
    preds = [prediction(), prediction(), prediction(ood=9.0)]
    verdict = series_verdict(series(3), preds, POLICY)
    assert verdict.verdict is Verdict.REVIEW
    assert any("could not be assessed" in r for r in verdict.review_reasons)


def test_empty_tiles_are_set_aside_not_reviewed() -> None:
    levels = [100.0, 100.0, 100.0, 2.0]
    preds = [prediction(), prediction(), prediction(), prediction(meningioma=0.4)]
    verdict = series_verdict(series(4, levels=levels), preds, POLICY)
    assert verdict.verdict is Verdict.NO_TUMOUR
    assert verdict.findings[3].verdict is Verdict.CANNOT_ASSESS


def test_plane_from_the_model_when_the_file_has_none() -> None:
    preds = [prediction(plane=2), prediction(plane=2), prediction(plane=1)]
    verdict = series_verdict(series(3, None, None, dicom_plane=False), preds, POLICY)
    assert (verdict.plane, verdict.plane_source) == ("sagittal", "model")
    dicom = series_verdict(series(3), preds, POLICY)
    assert (dicom.plane, dicom.plane_source) == ("axial", "dicom")
    assert dicom.findings[0].plane == "axial"


def test_blank_image_cannot_be_assessed() -> None:
    blank = replace(prediction(), foreground_fraction=0.0)
    verdict = series_verdict(series(1, None, None), [blank], POLICY)
    assert verdict.verdict is Verdict.CANNOT_ASSESS


def test_peak_prefers_the_body_of_a_region_over_one_sharp_pixel() -> None:
    mask = np.zeros((320, 320), np.float32)
    mask[200:240, 100:140] = 0.9  # the region
    mask[20, 300] = 0.95  # a lone speck, brighter than the region
    row, col = peak_of(mask)
    assert 200 <= row < 240 and 100 <= col < 140
    assert peak_of(mask, smoothing=0) == (20, 300)


@pytest.mark.parametrize("shape", [(512, 512), (517, 301), (100, 90)])
def test_peak_on_any_grid_is_the_highest_pixel_of_the_region_body(
        shape: tuple[int, int]) -> None:
    mask = np.zeros(shape, np.float32)
    top, left = shape[0] // 2, shape[1] // 3
    mask[top:top + 30, left:left + 30] = 0.8
    mask[top + 14, left + 15] = 0.9  # the hottest pixel inside the region
    mask[3, shape[1] - 4] = 0.99  # a lone speck near the edge
    assert peak_of(mask) == (top + 14, left + 15)


@pytest.mark.parametrize(("shape", "assessed"), [
    ((240, 155), True),  # BraTS coronal/sagittal: the longest slice the model has seen
    ((512, 288), True),  # a rectangular field of view
    ((1024, 256), False),  # a whole-body bone scan
    ((256, 512), False),  # two slices side by side
])
def test_a_picture_too_long_for_one_brain_slice_cannot_be_assessed(
        shape: tuple[int, int], assessed: bool) -> None:
    fake = replace(prediction(glioma=0.01), mask=np.zeros(shape, np.float32))
    finding = slice_finding(0, "x.png", fake, POLICY, None)
    assert (finding.verdict is not Verdict.CANNOT_ASSESS) is assessed
    if not assessed:
        assert "too long and narrow for one brain slice" in finding.review_reasons[0]
        assert f"{shape[1]} x {shape[0]} pixels" in finding.review_reasons[0]


@pytest.mark.parametrize(("p", "decimals", "text"), [
    (0.996, 0, ">99%"), (0.994, 0, "99%"), (0.5, 0, "50%"), (0.006, 0, "1%"),
    (0.005, 0, "<1%"), (0.0, 0, "<1%"), (1.0, 0, ">99%"),
    (0.9996, 1, ">99.9%"), (0.9994, 1, "99.9%"), (0.989, 1, "98.9%"), (0.0006, 1, "0.1%"),
    (0.0004, 1, "<0.1%")])
def test_percent_never_claims_certainty(p: float, decimals: int, text: str) -> None:
    """Whatever would print as 100% or 0% is shown as a bound (0.005 printed "0%")."""
    assert percent(p, decimals) == text


def volumes_series(phase_only: bool = False) -> Series:
    """Six slices: two volumes of three (time point 1 assessed, 2 a repeat), or two phase
    volumes that are not anatomical images."""
    from workstation.imaging import Volume
    from workstation.imaging.dicom import choose_assessed

    base = series(6)
    if phase_only:
        volumes = [Volume(0, "phase, echo 1", 0, 3, anatomical=False, assessed=False,
                          not_assessed_reason="not assessed: not an anatomical image (phase)"),
                   Volume(1, "phase, echo 2", 3, 3, anatomical=False, assessed=False,
                          not_assessed_reason="not assessed: not an anatomical image (phase)")]
    else:
        volumes = [Volume(0, "time point 1", 0, 3, assessed=False),
                   Volume(1, "time point 2", 3, 3, assessed=False)]
    return replace(base, volumes=tuple(choose_assessed(volumes)))


def test_a_multi_volume_series_is_decided_on_its_assessed_volume() -> None:
    s = volumes_series()
    assert s.assessed_indices == (0, 1, 2)
    assert s.volumes[1].not_assessed_reason == (
        "not assessed: the model reads one volume of the series (volume 1 (time point 1))")
    verdict = series_verdict(s, [prediction(glioma=0.02)] * 3, POLICY)
    assert verdict.verdict is Verdict.NO_TUMOUR
    assert [f.index for f in verdict.findings] == [0, 1, 2]
    assert verdict.finding_at(1) is verdict.findings[1] and verdict.finding_at(4) is None
    assert verdict.assessed_on == ("decided on volume 1 (time point 1) of 2 volumes; the other "
                                   "1 volume was not assessed")
    with pytest.raises(ValueError):  # predictions for every slice are not what it takes
        series_verdict(s, [prediction(glioma=0.02)] * 6, POLICY)


def test_a_multi_volume_review_reason_names_the_image_within_its_volume() -> None:
    preds = [prediction(glioma=0.02), prediction(glioma=0.3), prediction(glioma=0.02)]
    verdict = series_verdict(volumes_series(), preds, POLICY)
    assert verdict.verdict is Verdict.REVIEW
    assert "image 2 of 3, volume 1 (time point 1)" in verdict.review_reasons[0]


def test_a_series_of_phase_images_only_cannot_be_assessed() -> None:
    verdict = series_verdict(volumes_series(phase_only=True), [], POLICY)
    assert verdict.verdict is Verdict.CANNOT_ASSESS
    assert verdict.review_reasons == (
        "not assessed: no anatomical image in this series (its 2 volumes are phase, "
        "field-map or other derived images)",)
    assert verdict.assessed_on == "none of the 2 volumes is an anatomical image"


def test_a_threshold_below_one_never_reads_as_one() -> None:
    """p 0.9991 against 0.9996 must not read "below the 1.000 needed" (certainty)."""
    close = replace(POLICY, review_threshold=0.9996)
    finding = series_verdict(series(1), [prediction(glioma=0.0009)], close).findings[0]
    assert "(p = 0.9991, below the 0.9996 needed to clear it)" in finding.review_reasons[0]


CALLING = replace(POLICY, tumour_call_threshold=0.8)


def test_a_weak_tumour_call_goes_to_review_and_a_confident_one_stays_tumour() -> None:
    """Below the tumour-call threshold an image on which a tumour class leads is sent to
    review with its p(tumour) and class; at or above it, it is called tumour."""
    weak, strong = (slice_finding(0, "a", prediction(glioma=p), CALLING, None)
                    for p in (0.7, 0.85))
    assert weak.verdict is Verdict.REVIEW and weak.weak_tumour_call
    assert weak.class_says_tumour and weak.predicted_class == "glioma"
    assert weak.review_reasons == ("possible tumour (glioma), low confidence (p(tumour) = "
                                   "0.700, below the 0.800 needed to call it)",)
    assert strong.verdict is Verdict.TUMOUR and not strong.weak_tumour_call
    # a model without a threshold (0.5) calls every leading tumour class tumour
    assert slice_finding(0, "a", prediction(glioma=0.55), POLICY, None).verdict is Verdict.TUMOUR


def test_weak_tumour_calls_send_an_image_rule_series_to_review_never_to_clear() -> None:
    preds = [prediction(), prediction(meningioma=0.6, mask_at=(10, 12)),
             prediction(meningioma=0.65), prediction()]
    verdict = series_verdict(series(4), preds, CALLING)
    assert verdict.verdict is Verdict.REVIEW
    assert verdict.predicted_class == "meningioma"
    assert any(r.startswith("2 of 4 images suggest a tumour with low confidence (highest "
                            "p(tumour) = 0.650, meningioma, image 3 of 4)")
               for r in verdict.review_reasons)
    # without the threshold the same images make a tumour series (two tumour images)
    assert series_verdict(series(4), preds, POLICY).verdict is Verdict.TUMOUR
