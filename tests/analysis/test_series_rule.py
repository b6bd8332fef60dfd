"""The whole-series rule on hand-made predictions: persistence, overlap, class, clearing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.analysis.test_triage import POLICY, FakePrediction, prediction
from workstation.analysis.findings import ReasonKind, Verdict
from workstation.analysis.series_rule import RuleParameters, read_series, spacing_of
from workstation.analysis.triage import series_verdict
from workstation.imaging import Plane, PlaneSource, Series, SeriesInfo, Slice, Window
from workstation.imaging.pixels import frozen

RULE = RuleParameters(min_extent_mm=4.0, window_mm=5.0, clear_below=0.05, overlap=True)
RULED = replace(POLICY, series_rule=RULE)


def head(count: int, spacing: float = 1.0, positions: list[float] | None = None) -> Series:
    """A positioned series of ``count`` slices showing tissue."""
    slices = []
    for k in range(count):
        raw = np.full((32, 32), 100.0, np.float32)
        raw[0, 0] = 0
        slices.append(Slice(frozen(raw / 100), frozen(raw), Window(50, 100, "dicom"),
                            f"img{k}.dcm",
                            position=positions[k] if positions else k * spacing))
    return Series(source="s", series_uid="1.2", slices=tuple(slices),
                  info=SeriesInfo(modality="MR", body_part_examined="BRAIN"),
                  plane=Plane.AXIAL, plane_source=PlaneSource.DICOM)


def clear() -> FakePrediction:
    return prediction(glioma=0.001)


def tumour(glioma: float = 0.9, meningioma: float = 0.0, at: tuple[int, int] = (16, 16)
           ) -> FakePrediction:
    return prediction(glioma=glioma, meningioma=meningioma, mask_at=at)


def test_a_tumour_that_persists_over_neighbouring_slices_makes_the_series_tumour() -> None:
    preds = [clear()] * 10 + [tumour()] * 5 + [clear()] * 10
    verdict = series_verdict(head(25), preds, RULED)
    assert verdict.verdict is Verdict.TUMOUR
    assert verdict.by_series_rule
    assert verdict.carrying == (10, 11, 12, 13, 14)
    assert verdict.predicted_class == "glioma"
    assert verdict.confidence == pytest.approx(0.9, abs=1e-6)
    assert "images 11 to 15 of 25" in verdict.headline
    assert "most likely glioma" in verdict.headline


def test_one_slice_called_tumour_does_not_make_a_whole_head_tumour() -> None:
    """An ear or a vertex slice called tumour alone is not persistent: it goes to review
    when its suspicion is high, never to tumour and never silently routine."""
    preds = [clear()] * 12 + [tumour(glioma=0.99)] + [clear()] * 12
    verdict = series_verdict(head(25), preds, RULED)
    assert verdict.verdict is Verdict.REVIEW
    assert verdict.reason_kinds == (ReasonKind.SERIES_SUSPICION,)
    assert "does not persist" in verdict.review_reasons[0]
    # the slice itself still reads tumour: the series rule does not rewrite slice verdicts
    assert verdict.findings[12].verdict is Verdict.TUMOUR


def test_low_suspicion_everywhere_is_routine_even_with_single_review_images() -> None:
    preds = [clear()] * 12 + [prediction(glioma=0.2)] + [clear()] * 12
    verdict = series_verdict(head(25), preds, RULED)
    assert verdict.findings[12].verdict is Verdict.REVIEW  # the image rule: review
    assert verdict.verdict is Verdict.NO_TUMOUR
    assert verdict.suspicion < RULE.clear_below
    assert "no tumour suspicion across neighbouring images" in verdict.headline


def test_a_run_is_counted_in_millimetres_from_the_slice_spacing() -> None:
    """Two tumour slices are 10 mm of brain at 5 mm spacing, 2 mm at 1 mm spacing."""
    preds = [clear()] * 5 + [tumour()] * 2 + [clear()] * 5
    assert series_verdict(head(12, spacing=5.0), preds, RULED).verdict is Verdict.TUMOUR
    assert series_verdict(head(12, spacing=1.0), preds, RULED).verdict is Verdict.REVIEW


def test_regions_that_do_not_overlap_break_the_run_unless_the_rule_ignores_overlap() -> None:
    alternating = [tumour(at=(6, 6)) if k % 2 else tumour(at=(25, 25)) for k in range(6)]
    preds = [clear()] * 5 + alternating + [clear()] * 5
    assert series_verdict(head(16), preds, RULED).verdict is not Verdict.TUMOUR
    loose = replace(POLICY, series_rule=replace(RULE, overlap=False))
    assert series_verdict(head(16), preds, loose).verdict is Verdict.TUMOUR


def test_a_gap_in_positions_breaks_the_run() -> None:
    positions = [0.0, 1.0, 2.0, 10.0, 11.0, 20.0, 21.0, 22.0, 23.0]
    findings = series_verdict(head(9, positions=positions), [tumour()] * 9, POLICY).findings
    reading = read_series(list(findings), positions, RULE)
    assert reading.spacing_mm == pytest.approx(1.0)
    assert reading.carrying == (5, 6, 7, 8)  # only the 4 mm stretch qualifies


def test_the_series_class_comes_from_the_slices_that_carry_the_tumour() -> None:
    """A run of glioma slices names the series glioma, although one separate slice is a
    more confident meningioma."""
    preds = ([clear()] * 3 + [tumour(glioma=0.8)] * 6 + [clear()] * 3
             + [tumour(glioma=0.0, meningioma=0.999, at=(5, 5))] + [clear()] * 3)
    verdict = series_verdict(head(16), preds, RULED)
    assert verdict.verdict is Verdict.TUMOUR
    assert verdict.predicted_class == "glioma"
    assert verdict.class_probability == pytest.approx(0.8, abs=1e-6)


def test_refused_images_at_the_ends_do_not_block_routine_but_between_they_do() -> None:
    refused = prediction(glioma=0.001, ood=10.0)
    edges = [refused] * 3 + [clear()] * 10 + [refused] * 3
    verdict = series_verdict(head(16), edges, RULED)
    assert verdict.findings[0].verdict is Verdict.CANNOT_ASSESS
    assert verdict.verdict is Verdict.NO_TUMOUR
    inner = [clear()] * 6 + [refused] + [clear()] * 6
    verdict = series_verdict(head(13), inner, RULED)
    assert verdict.verdict is Verdict.REVIEW
    assert verdict.reason_kinds == (ReasonKind.SOME_UNASSESSABLE,)
    assert "image 7" in verdict.review_reasons[0]


def test_a_mostly_refused_series_is_still_cannot_assess() -> None:
    refused = prediction(glioma=0.001, ood=10.0)
    verdict = series_verdict(head(10), [refused] * 7 + [clear()] * 3, RULED)
    assert verdict.verdict is Verdict.CANNOT_ASSESS
    # unless an assessed image suggests a tumour: the image rule then decides, and says so
    verdict = series_verdict(head(11), [refused] * 8 + [clear(), tumour(), tumour()], RULED)
    assert verdict.verdict is Verdict.TUMOUR


def test_short_or_unpositioned_series_keep_the_image_rule() -> None:
    verdict = series_verdict(head(2), [tumour()] * 2, RULED)
    assert not verdict.by_series_rule
    unpositioned = replace(head(5), slices=tuple(replace(s, position=None)
                                                 for s in head(5).slices))
    verdict = series_verdict(unpositioned, [clear()] * 5, RULED)
    assert not verdict.by_series_rule


def test_spacing_is_the_median_step_of_distinct_positions() -> None:
    assert spacing_of(np.array([0.0, 5.0, 10.0, 10.0, 15.0])) == pytest.approx(5.0)
    assert spacing_of(np.array([3.0])) == 1.0


def test_weak_tumour_calls_still_make_a_run_but_each_image_alone_goes_to_review() -> None:
    """Persistence is the series rule's evidence: a run of images on which a tumour class
    leads makes a tumour series even when each is below the tumour-call threshold."""
    calling = replace(RULED, tumour_call_threshold=0.95)
    preds = [clear()] * 10 + [tumour(glioma=0.9)] * 5 + [clear()] * 10
    verdict = series_verdict(head(25), preds, calling)
    assert verdict.verdict is Verdict.TUMOUR and verdict.carrying == (10, 11, 12, 13, 14)
    assert all(verdict.findings[k].verdict is Verdict.REVIEW for k in verdict.carrying)
    assert "most likely glioma" in verdict.headline
