"""Choosing the series rule on validation series: no tumour series cleared, then specificity."""

from __future__ import annotations

from tests.analysis.test_series_rule import RULED, clear, head, tumour
from workstation.analysis.findings import Verdict
from workstation.analysis.triage import series_verdict
from workstation.training.series_rule_choice import (
    CLEAR_MARGIN,
    ValidationSeries,
    choose,
    per_series,
)


def item(name: str, truth: str, preds: list) -> ValidationSeries:  # type: ignore[type-arg]
    series = head(len(preds))
    return ValidationSeries(name, truth, series, series_verdict(series, preds, RULED).findings)


def test_the_chosen_rule_clears_no_validation_tumour_and_calls_no_healthy_head_tumour() -> None:
    items = [
        # a healthy head with a two-slice blip (ear): only a run of 3 mm or more calls it
        item("healthy-blip", "no_tumour", [clear()] * 10 + [tumour()] * 2 + [clear()] * 10),
        item("healthy-clean", "no_tumour", [clear()] * 22),
        item("tumour-long", "glioma", [clear()] * 5 + [tumour()] * 12 + [clear()] * 5),
        item("tumour-short", "glioma", [clear()] * 8 + [tumour()] * 4 + [clear()] * 10),
    ]
    rule, table = choose(items)
    best = table[0]
    assert best["tumour_cleared"] == 0 and best["healthy_tumour"] == 0
    assert best["tumour_called_tumour"] == 2  # both tumours called: a 3 mm run
    assert rule.min_extent_mm == 3.0
    rows = {r["series"]: r for r in per_series(items, rule)}
    assert rows["healthy-clean"]["verdict"] == Verdict.NO_TUMOUR.value
    assert rows["healthy-blip"]["verdict"] == Verdict.REVIEW.value
    lowest = min(rows[n]["suspicion"] for n in ("tumour-long", "tumour-short"))
    assert rule.clear_below == round(CLEAR_MARGIN * lowest, 6)
    assert all(r["tumour_cleared"] == 0 for r in table)  # by construction, every candidate


def test_the_tumour_call_threshold_is_the_lowest_that_keeps_healthy_calls_under_half_a_percent(
) -> None:
    """Healthy images with a tumour class leading at p(tumour) 0.6 to 0.9; the threshold is
    the lowest candidate that leaves at most 0.5% of the healthy images called tumour, and
    the table counts the validation tumour images still called tumour at each."""
    from workstation.training.series_rule_choice import (
        CALL_MARGIN,
        CALL_TARGET,
        choose_tumour_call_threshold,
    )

    healthy = ([clear()] * 400 + [tumour(glioma=0.6)] * 4 + [tumour(glioma=0.675)] * 3
               + [tumour(glioma=0.9)] * 2)
    glioma = [clear()] * 10 + [tumour(glioma=0.75)] * 3 + [tumour(glioma=0.99)] * 7
    tumour_item = item("tumour", "glioma", glioma)
    areas = tuple(0.0 if k < 10 else 500.0 for k in range(len(glioma)))
    items = [item("healthy", "no_tumour", healthy),
             ValidationSeries("tumour", "glioma", tumour_item.series, tumour_item.findings,
                              areas)]
    threshold, table = choose_tumour_call_threshold(items)
    rows = {r["threshold"]: r for r in table}
    assert rows[0.5]["healthy_called_tumour"] == 9 and rows[0.5]["tumour_called_tumour"] == 10
    # 0.61-0.67 still call 5 of 409 (1.2%); 0.68 leaves the two at 0.9 (0.49%)
    assert rows[0.67]["healthy_called_tumour"] == 5
    assert threshold == 0.68
    assert rows[0.68]["healthy_share"] <= CALL_TARGET * CALL_MARGIN
    assert rows[0.8]["tumour_called_tumour"] == 7  # the three at 0.75 go to review there
