"""The study session without Qt: where a series opens, what N goes to, and that a verdict
arriving never moves the reader."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.fakes import make_series, verdict_of
from workstation.imaging.series import Problem, Severity
from workstation.session import StudySession, shown_volume, start_index
from workstation.store.readings import Reading


def session_of(*series_list: object, folder: Path | None = None) -> StudySession:
    session = StudySession(("/study",), folder)
    for series in series_list:
        session.add_series(series)  # type: ignore[arg-type]
    return session


def test_a_series_opens_at_the_first_image_of_the_volume_the_model_reads() -> None:
    multi = make_series((5, 5, 4), assessed=1)
    assert shown_volume(multi).index == 1 and start_index(multi) == 5
    session = session_of(make_series((3,)), multi)
    assert session.select(1) == 5 and session.index == 5
    assert session.select(0) == 0
    with pytest.raises(IndexError):
        session.select(2)


def test_the_position_is_kept_when_the_verdict_or_another_series_arrives() -> None:
    first = make_series((6,))
    session = session_of(first)
    session.select(0)
    session.move_to(4)
    assert session.current_finding is None  # no verdict yet
    assert session.add_verdict(verdict_of(first, {1: 0.99})) == 0
    assert session.index == 4
    assert session.current_finding is not None and session.current_finding.index == 4
    session.add_series(make_series((3,), name="t"))
    assert (session.row, session.index) == (0, 4)


def test_next_suspicious_walks_the_ranking_and_comes_round_again() -> None:
    series = make_series((6,))
    session = session_of(series)
    session.select(0)
    assert session.next_suspicious() is None  # nothing to go to before the verdict
    verdict = verdict_of(series, {2: 0.9, 4: 0.99, 5: 0.95})
    session.add_verdict(verdict)
    order = [f.index for f in verdict.most_suspicious(None)]
    assert order[:3] == [4, 5, 2]
    assert [f.index for f in session.ranking()] == order
    walked = [session.next_suspicious() for _ in range(len(order) + 1)]
    assert walked == [*order, order[0]]
    assert session.index == order[0]
    session.select(0)  # opening the series again starts the walk again
    assert session.next_suspicious() == 4


def test_n_goes_only_to_images_the_model_read() -> None:
    series = make_series((3, 3), assessed=1)
    session = session_of(series)
    session.select(0)
    session.add_verdict(verdict_of(series, {4: 0.99}))
    assert session.next_suspicious() == 4
    assert {session.next_suspicious() for _ in range(3)} == {3, 4, 5}
    session.move_to(0)  # a volume the model did not read
    assert session.current_finding is None


def test_an_analysis_runs_once_at_a_time_and_starts_afresh() -> None:
    series = make_series((3,))
    session = session_of(series)
    assert session.start_analysis() == [series] and session.analysing
    assert session.start_analysis() == []  # already running
    session.add_verdict(verdict_of(series))
    assert session.complete
    session.finish_analysis()
    assert session.start_analysis() == [series]
    assert session.verdicts == {} and not session.complete
    assert StudySession().start_analysis() == []  # nothing loaded


def test_the_triage_result_waits_for_every_verdict() -> None:
    a, b = make_series((2,), name="a", uid="1"), make_series((2,), name="b", uid="2")
    session = session_of(a, b)
    engine = SimpleNamespace(info=SimpleNamespace(name="m", version="1", sha256="f" * 64),
                             device="cpu")
    session.add_verdict(verdict_of(b))
    assert session.triage_result(engine) is None
    session.add_verdict(verdict_of(a))
    assert session.triage_result(None) is None  # no model loaded
    result = session.triage_result(engine)
    assert result is not None
    assert [v.series for v in result.verdicts] == [a, b]  # in the study's order
    assert (result.model.name, result.device) == ("m", "cpu")
    assert result.study.series == (a, b)


def test_readings_are_kept_and_found_again_with_the_study(tmp_path: Path) -> None:
    series = make_series((2,))
    session = session_of(series, folder=tmp_path)
    assert session.current_reading() == ("", None)
    session.select(0)
    key, reading = session.current_reading()
    assert (key, reading) == ("1.2.3", None)
    mine = Reading.now(key, "disagree", "glioma", "look again", "Dr A")
    session.record(mine)
    assert session.current_reading() == (key, mine)
    again = session_of(series, folder=tmp_path)
    again.finish_loading()
    assert again.readings == {key: mine}


def test_unreadable_lists_the_errors_of_the_study_and_of_its_series() -> None:
    from dataclasses import replace

    lost = Problem("b.dcm", "cannot decode", Severity.ERROR)
    series = replace(make_series((2,)), problems=(lost,))
    session = session_of(series)
    session.add_problem(Problem("a.txt", "not an image", Severity.ERROR))
    session.add_problem(Problem("c.dcm", "odd header", Severity.WARNING))
    assert [p.path for p in session.unreadable()] == ["a.txt", "b.dcm"]
    assert len(session.study.problems) == 2
