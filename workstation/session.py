"""The open study as a reader works through it, without Qt: what the window shows and
remembers, so it runs and is tested headless (napari's model/widget split).

A ``StudySession`` holds the series as they load, their verdicts as they arrive, the
reader's readings, and where the reader is: the current series and the shown image (its
index in ``series.slices``, whichever volume holds it). It never moves the reader on its
own: a series opens on the first image of the volume the model reads, and only the
reader's request (``next_suspicious``, or a click in the ranking: ``move_to``) goes to a
suspicious image; a series or a verdict arriving leaves the position as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workstation.analysis.findings import Finding, SeriesVerdict
from workstation.imaging.series import Problem, Series, Severity, Study, Volume
from workstation.store.readings import Reading, load_readings, save_reading, series_key

if TYPE_CHECKING:  # analysis.run brings scipy: imported at the first export, not at start-up
    from workstation.analysis.run import StudyTriage


def shown_volume(series: Series) -> Volume:
    """The volume a series opens on and is represented by: the first the model reads,
    else the first."""
    return (series.assessed_volumes or series.volumes)[0]


def start_index(series: Series) -> int:
    """Where a series opens: the first image of ``shown_volume``."""
    return shown_volume(series).start


@dataclass
class StudySession:
    """One open study. Rows are positions in ``series`` (the browser's rows)."""

    paths: tuple[str, ...] = ()
    readings_dir: Path | None = None  # None: the user's data folder
    series: list[Series] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    verdicts: dict[int, SeriesVerdict] = field(default_factory=dict)
    readings: dict[str, Reading] = field(default_factory=dict)
    row: int = -1  # the current series; -1 before one is shown
    index: int = 0  # the shown image of the current series
    analysing: bool = False
    # place in the suspicion order of the image N last went to (-1: none yet)
    _cursor: int = field(default=-1, init=False, repr=False)

    # -------------------------------------------------------------------- loading
    def add_series(self, series: Series) -> int:
        """A loaded series joins the study; its row."""
        self.series.append(series)
        return len(self.series) - 1

    def add_problem(self, problem: Problem) -> None:
        self.problems.append(problem)

    def finish_loading(self) -> None:
        """Every file is read: the readings saved for this study are loaded."""
        self.readings = load_readings(self.study, self.readings_dir)

    @property
    def study(self) -> Study:
        return Study(series=tuple(self.series), problems=tuple(self.problems))

    def unreadable(self) -> list[Problem]:
        """The errors to list for the reader: files not read, and images a series lost."""
        found = [*self.problems, *(p for s in self.series for p in s.problems)]
        return [p for p in found if p.severity is Severity.ERROR]

    # ------------------------------------------------------------------- analysis
    def start_analysis(self) -> list[Series]:
        """The series to analyse (none while an analysis runs); earlier verdicts go."""
        if self.analysing or not self.series:
            return []
        self.analysing = True
        self.verdicts = {}
        self._cursor = -1
        return list(self.series)

    def finish_analysis(self) -> None:
        """The analysis ended, complete or cancelled (the verdicts given stand)."""
        self.analysing = False

    def add_verdict(self, verdict: SeriesVerdict) -> int:
        """A series' verdict arrives; its row. The position is kept."""
        rows = [i for i, s in enumerate(self.series) if s is verdict.series]
        if not rows:
            raise ValueError(f"the verdict is on a series not in this study: "
                             f"{verdict.series.source}")
        row = rows[0]
        self.verdicts[row] = verdict
        if row == self.row:
            self._cursor = -1
        return row

    @property
    def complete(self) -> bool:
        """Every series has its verdict."""
        return bool(self.series) and len(self.verdicts) == len(self.series)

    def triage_result(self, engine: Any) -> StudyTriage | None:
        """The study's triage by ``engine`` (an ``analysis.engine.Engine``), for the report
        and the masks; None until every series has its verdict."""
        from workstation.analysis.run import ModelSummary, StudyTriage

        if engine is None or not self.complete:
            return None
        verdicts = tuple(self.verdicts[i] for i in range(len(self.series)))
        return StudyTriage(self.study, verdicts, ModelSummary.of(engine), engine.device, 0.0,
                           getattr(engine, "backend", "torch"))

    # ------------------------------------------------------------------- position
    def select(self, row: int) -> int:
        """Show series ``row``, at its start (``start_index``); the image index."""
        if not 0 <= row < len(self.series):
            raise IndexError(f"no series {row} (the study holds {len(self.series)})")
        self.row = row
        self._cursor = -1
        self.index = start_index(self.series[row]) if self.series[row].slices else 0
        return self.index

    def move_to(self, index: int) -> None:
        """The reader moved to image ``index`` of the current series."""
        self.index = index

    @property
    def current_series(self) -> Series | None:
        return self.series[self.row] if 0 <= self.row < len(self.series) else None

    @property
    def current_verdict(self) -> SeriesVerdict | None:
        return self.verdicts.get(self.row)

    @property
    def current_finding(self) -> Finding | None:
        """The model's reading of the shown image; None before the verdict, or where the
        model did not read it."""
        verdict = self.current_verdict
        return verdict.finding_at(self.index) if verdict is not None else None

    def ranking(self) -> list[Finding]:
        """The current series' images, most suspicious first (empty before its verdict)."""
        verdict = self.current_verdict
        return verdict.most_suspicious(None) if verdict is not None else []

    def next_suspicious(self) -> int | None:
        """Go to the most suspicious image, then on each call the next one down (round
        again after the last); the image index, or None with nothing to go to."""
        ranked = self.ranking()
        if not ranked:
            return None
        self._cursor = (self._cursor + 1) % len(ranked)
        self.index = ranked[self._cursor].index
        return self.index

    # ------------------------------------------------------------------- readings
    def current_reading(self) -> tuple[str, Reading | None]:
        """The current series' key and the reading recorded for it ("" before a series)."""
        series = self.current_series
        if series is None:
            return "", None
        key = series_key(series)
        return key, self.readings.get(key)

    def record(self, reading: Reading) -> None:
        """Keep the reader's reading and save it with the study.

        Raises
        ------
        OSError
            When it cannot be saved (it is kept for this session all the same).
        """
        self.readings[reading.series_key] = reading
        save_reading(self.study, reading, self.readings_dir)
