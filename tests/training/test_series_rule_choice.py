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
