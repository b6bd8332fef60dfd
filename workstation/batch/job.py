"""Triage one study: what each worker runs (in this process, a local process or a Dask
worker). The engine is loaded once per worker process and kept."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workstation.batch.discover import StudyUnit

_ENGINES: dict[tuple[str, str, int], Any] = {}


@dataclass(frozen=True)
class StudyOutcome:
    key: str
    label: str
    study_uid: str
    verdict: str  # tumour | review | cannot_assess | no_tumour; "" when it failed
    headline: str
    predicted_class: str
    series_count: int
    images: int
    seconds: float
    error: str  # "" when it was triaged; else what went wrong, in words
    document: dict[str, Any] | None  # the triage JSON document (workstation triage --json)
    model_sha256: str
    backend: str
    worker: str  # host:pid


def worker_started() -> None:
    """Run first in each local worker process: its compressed-file decoders (child
    processes of its own, ``imaging.isolated``) are stopped before the process joins its
    children at exit, where they would wait for work for ever."""
    from multiprocessing.util import Finalize

    from workstation.imaging import isolated

    Finalize(None, isolated.shutdown, kwargs={"kill": True}, exitpriority=10)


def _engine(model: str, device: str, threads: int) -> Any:
    from workstation.analysis.engine import Engine

    key = (model, device, threads)
    if key not in _ENGINES:
        _ENGINES[key] = Engine(Path(model) if model else None, device=device,
                               threads=threads or None)
    return _ENGINES[key]


def triage_unit(unit: StudyUnit, model: str = "", device: str = "cpu",
                threads: int = 0) -> StudyOutcome:
    """The study's outcome; never raises for a bad study (the error is in the outcome)."""
    from workstation.analysis.run import triage_document, triage_study
    from workstation.imaging import load_study
    from workstation.reporting.content import overall

    started = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    uid = unit.key.removeprefix("dicom:") if unit.key.startswith("dicom:") else ""
    try:
        engine = _engine(model, device, threads)
    except Exception as exc:  # a model that cannot load fails every study alike
        return StudyOutcome(unit.key, unit.label, uid, "", "", "", 0, 0,
                            time.perf_counter() - started,
                            f"the triage model cannot be used: {exc}", None, "", "", worker)
    try:
        result = triage_study(load_study(list(unit.files)), engine)
        verdict, headline, _ = overall(result.verdicts)
        worst = next((v for v in result.verdicts if v.verdict == verdict), None)
        uid = uid or next((v.series.info.study_instance_uid for v in result.verdicts
                           if v.series.info.study_instance_uid), "")
        return StudyOutcome(
            unit.key, unit.label, uid, verdict.value, headline,
            worst.predicted_class if worst is not None else "",
            len(result.verdicts), sum(len(v.findings) for v in result.verdicts),
            time.perf_counter() - started, "", triage_document(result), engine.info.sha256,
            engine.backend, worker)
    except Exception as exc:  # never stop the archive on one study
        return StudyOutcome(unit.key, unit.label, uid, "", "", "", 0, 0,
                            time.perf_counter() - started,
                            f"the study could not be triaged ({type(exc).__name__}: {exc})",
                            None, engine.info.sha256, engine.backend, worker)
