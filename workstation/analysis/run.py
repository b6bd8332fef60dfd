"""Triage a loaded study end to end, and write its JSON document and mask images."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from workstation import __version__
from workstation.analysis.findings import AnalysisCancelled, Finding, SeriesVerdict
from workstation.analysis.triage import series_verdict
from workstation.imaging.series import Problem, Series, Severity, Study
from workstation.inspect import volume_document


@dataclass(frozen=True)
class ModelSummary:
    name: str
    version: str
    sha256: str

    @classmethod
    def of(cls, engine: Any) -> ModelSummary:
        """The model an ``analysis.engine.Engine`` runs."""
        return cls(engine.info.name, engine.info.version, engine.info.sha256)


@dataclass(frozen=True)
class StudyTriage:
    study: Study
    verdicts: tuple[SeriesVerdict, ...]
    model: ModelSummary
    device: str
    seconds: float
    backend: str = "torch"  # what ran the network: onnxruntime or torch


def analyse_series(series: Series, engine: Any, policy: Any,
                   progress: Callable[[int, int], None] | None = None,
                   cancelled: Callable[[], bool] | None = None) -> SeriesVerdict:
    """Run ``engine`` on the slices the model assesses (one volume of a multi-volume
    series) and decide the series' verdict."""
    predictions = engine.analyse(series.assessed_slices, progress=progress,
                                 cancelled=cancelled)
    return series_verdict(series, predictions, policy)


def iter_analysis(series_list: Sequence[Series], engine: Any,
                  progress: Callable[[int, int, Series], None] | None = None,
                  cancelled: Callable[[], bool] | None = None) -> Iterator[SeriesVerdict]:
    """Each series' verdict in turn: the one analysis loop of the command line and the
    window.

    Parameters
    ----------
    series_list
        The series to analyse, in order.
    engine
        An ``analysis.engine.Engine`` (or anything with its ``calibration.policy()`` and
        ``analyse(slices, progress=, cancelled=)``).
    progress
        Called as ``progress(images done, images in all, series being read)``, counting the
        images the model assesses over the whole list.
    cancelled
        Polled before each series and by the engine between batches.

    Raises
    ------
    AnalysisCancelled
        When ``cancelled()`` turns true; the verdicts yielded before stand.
    """
    policy = engine.calibration.policy()
    total = sum(len(s.assessed_indices) for s in series_list)
    done = 0
    for series in series_list:
        if cancelled is not None and cancelled():
            raise AnalysisCancelled()

        def step(n: int, _: int, base: int = done, series: Series = series) -> None:
            if progress is not None:
                progress(base + n, total, series)
        yield analyse_series(series, engine, policy, step, cancelled)
        done += len(series.assessed_indices)


def triage_study(study: Study, engine: Any,
                 progress: Callable[[int, int], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> StudyTriage:
    """Run ``engine`` (an analysis.engine.Engine) on every series of ``study``
    (``iter_analysis``); ``seconds`` is the time the analysis took."""
    def step(done: int, total: int, _: Series) -> None:
        if progress is not None:
            progress(done, total)

    started = time.perf_counter()
    verdicts = tuple(iter_analysis(study.series, engine, step, cancelled))
    return StudyTriage(study, verdicts, ModelSummary.of(engine), engine.device,
                       time.perf_counter() - started, getattr(engine, "backend", "torch"))


# the ``schema`` key of the triage document (workstation/schemas/triage.schema.json); 2: the
# key itself, assessed_on and the volumes of each series, the volume of each image
# 3: decided_by, tumour_images, series_suspicion; 4: backend
TRIAGE_SCHEMA_VERSION = 4


def _round(value: float) -> float:
    return round(float(value), 4)


def finding_document(finding: Finding, series: Series | None = None) -> dict[str, Any]:
    return {
        "index": finding.index,
        "volume": series.volume_of(finding.index).index if series is not None else 0,
        "file": finding.file,
        "probabilities": {k: _round(v) for k, v in finding.probabilities.items()},
        "predicted_class": finding.predicted_class,
        "verdict": finding.verdict.value,
        "plane": finding.plane,
        "plane_probabilities": {k: _round(v) for k, v in finding.plane_probabilities.items()},
        "review_reasons": list(finding.review_reasons),
        "ood_score": _round(finding.ood_score),
        "reference_ood_score": _round(finding.reference_ood_score),
        "mask_area_px": finding.mask_area_px,
        "peak": list(finding.peak) if finding.peak is not None else None,
    }


def verdict_document(verdict: SeriesVerdict) -> dict[str, Any]:
    series = verdict.series
    return {
        "source": series.source,
        "series_uid": series.series_uid,
        "description": series.description,
        "modality": series.info.modality,
        "plane": verdict.plane,
        "plane_source": verdict.plane_source,
        "verdict": verdict.verdict.value,
        "predicted_class": verdict.predicted_class,
        "confidence": _round(verdict.confidence),
        "review_reasons": list(verdict.review_reasons),
        "assessed_on": verdict.assessed_on,
        "decided_by": "series rule" if verdict.by_series_rule else "image rule",
        "tumour_images": [f.index for f in verdict.carrying_findings],
        "series_suspicion": _round(verdict.suspicion) if verdict.by_series_rule else None,
        "volumes": [volume_document(v) for v in series.volumes],
        "slices": [finding_document(f, series) for f in verdict.findings],
    }


def triage_document(result: StudyTriage) -> dict[str, Any]:
    """The ``workstation triage --json`` document, as workstation/schemas/triage.schema.json
    lays it out (README)."""
    errors = [p for p in result.study.problems if p.severity is Severity.ERROR]
    return {
        "schema": TRIAGE_SCHEMA_VERSION,
        "software_version": __version__,
        "model": {"name": result.model.name, "version": result.model.version,
                  "sha256": result.model.sha256},
        "device": result.device,
        "backend": result.backend,
        "series": [verdict_document(v) for v in result.verdicts],
        "errors": [{"path": p.path, "message": p.message} for p in errors],
    }


def mask_file_name(verdict: SeriesVerdict, finding: Finding) -> str:
    if verdict.series.kind == "raster":
        stem = Path(finding.file).stem
        frame = verdict.series.slices[finding.index].frame
        return f"{stem}_{frame}.png" if frame else f"{stem}.png"
    number = verdict.series.info.series_number
    label = str(number) if number is not None else re.sub(r"\W+", "_", verdict.series.description)
    return f"{label}_{finding.index}.png"


def write_masks(result: StudyTriage, folder: Path) -> list[Problem]:
    """Each slice's suspect-region mask as a 0/255 PNG at the input image size."""
    folder.mkdir(parents=True, exist_ok=True)
    problems = []
    for verdict in result.verdicts:
        for finding in verdict.findings:
            path = folder / mask_file_name(verdict, finding)
            try:
                Image.fromarray(((finding.mask >= 0.5) * 255).astype(np.uint8)).save(path)
            except OSError as exc:
                problems.append(Problem(str(path), f"could not write the mask ({exc})"))
    return problems
