"""The one analysis loop (``iter_analysis``) with a stand-in engine: order, progress, what
is read, and cancellation as a typed outcome."""

from __future__ import annotations

import pytest

from tests.fakes import FakeEngine, make_series
from workstation.analysis.findings import AnalysisCancelled, SeriesVerdict, Verdict
from workstation.analysis.run import iter_analysis, triage_study
from workstation.imaging.series import Series, Study


def test_one_verdict_per_series_in_order_with_progress_over_the_study() -> None:
    study = [make_series((4,), name="a"), make_series((3, 3), assessed=1, name="b")]
    engine = FakeEngine()
    seen: list[tuple[int, int, str]] = []

    def progress(done: int, total: int, series: Series) -> None:
        seen.append((done, total, series.description))

    verdicts = list(iter_analysis(study, engine, progress))
    assert [v.series for v in verdicts] == study
    assert all(isinstance(v, SeriesVerdict) for v in verdicts)
    assert engine.read == [4, 3]  # the assessed volume only of the second series
    assert seen == [(4, 7, "a"), (7, 7, "b")]
    assert [f.index for f in verdicts[1].findings] == [3, 4, 5]


def test_cancelling_between_series_keeps_the_verdicts_given() -> None:
    study = [make_series((2,), name=n) for n in "abc"]
    given: list[SeriesVerdict] = []
    with pytest.raises(AnalysisCancelled):
        for verdict in iter_analysis(study, FakeEngine(), cancelled=lambda: len(given) == 2):
            given.append(verdict)
    assert [v.series.description for v in given] == ["a", "b"]


def test_the_engine_cancelling_inside_a_series_is_the_same_outcome() -> None:
    study = [make_series((2,), name=n) for n in "ab"]
    analysis = iter_analysis(study, FakeEngine(cancel_at=1))
    assert next(analysis).series is study[0]
    with pytest.raises(AnalysisCancelled):
        next(analysis)


def test_the_command_line_triage_uses_the_same_loop() -> None:
    def glioma_on_the_third(image: object) -> tuple[float, ...]:
        third = image is study.series[0].slices[2]
        return (0.95, 0.01, 0.01, 0.03) if third else (0.01, 0.01, 0.01, 0.97)

    study = Study(series=(make_series((5,), name="a"), make_series((2,), name="b")))
    result = triage_study(study, FakeEngine(glioma_on_the_third))
    assert [v.verdict for v in result.verdicts] == [Verdict.TUMOUR, Verdict.NO_TUMOUR]
    assert result.verdicts[0].strongest is result.verdicts[0].findings[2]
    assert (result.model.name, result.device) == ("fake", "cpu")
    assert result.seconds >= 0
    with pytest.raises(AnalysisCancelled):
        triage_study(study, FakeEngine(), cancelled=lambda: True)
