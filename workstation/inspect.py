"""The ``inspect`` report of a loaded study, as JSON-ready dicts or as text.

The JSON document's layout is the JSON Schema ``workstation/schemas/inspect.schema.json``
(README, "inspect --json"); ``SCHEMA_VERSION`` is its ``schema`` key.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from workstation import __version__
from workstation.imaging import Problem, Series, Severity, Study, Volume

SCHEMA_VERSION = 3  # 2: the volumes of each series; 3: the protocol name


def problem_document(problem: Problem) -> dict[str, str]:
    return {"path": problem.path, "message": problem.message,
            "severity": problem.severity.value}


def volume_document(volume: Volume) -> dict[str, Any]:
    """One volume of a series: slices ``first_slice`` .. of the series' slice list."""
    return {
        "index": volume.index,
        "label": volume.label,
        "first_slice": volume.start,
        "slice_count": volume.count,
        "anatomical": volume.anatomical,
        "assessed": volume.assessed,
        "not_assessed_reason": volume.not_assessed_reason,
    }


def series_document(series: Series) -> dict[str, Any]:
    rows, cols = series.shape or (0, 0)
    return {
        "source": series.source,
        "kind": series.kind,
        "series_uid": series.series_uid,
        "modality": series.info.modality,
        "description": series.description,
        "series_number": series.info.series_number,
        "plane": series.plane.value,
        "plane_source": series.plane_source.value,
        "obliquity_deg": series.obliquity_deg,
        "slice_count": len(series.slices),
        "volumes": [volume_document(v) for v in series.volumes],
        "rows": rows,
        "columns": cols,
        "transfer_syntaxes": list(series.transfer_syntaxes),
        "info": asdict(series.info),
        "problems": [problem_document(p) for p in series.problems],
    }


def inspect_document(study: Study) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "software_version": __version__,
        "series": [series_document(s) for s in study.series],
        "problems": [problem_document(p) for p in study.problems
                     if not _belongs_to_series(p, study)],
    }


def _belongs_to_series(problem: Problem, study: Study) -> bool:
    return any(problem in s.problems for s in study.series)


def render_text(study: Study, show_skipped: bool = False) -> str:
    lines = [f"{len(study.series)} series found"]
    for index, s in enumerate(study.series, start=1):
        rows, cols = s.shape or (0, 0)
        plane = s.plane.value
        if s.plane_source.value == "dicom":
            plane += f" (from DICOM, {s.obliquity_deg:.0f} deg oblique)" if s.obliquity_deg \
                else " (from DICOM)"
        else:
            plane += " (no orientation in the file)"
        lines.append(
            f"[{index}] {s.description} | {s.info.modality or 'modality n/a'} | {plane} | "
            f"{len(s.slices)} slice(s) {cols}x{rows} | {', '.join(s.transfer_syntaxes)}"
        )
        lines.append(f"    source: {s.source}")
        if s.is_multi_volume:
            lines.extend(f"    {v.name}: {v.count} slice(s)"
                         + ("" if v.assessed else f"; {v.not_assessed_reason}")
                         for v in s.volumes)
        lines.extend(f"    note: {p.message}" for p in s.problems
                     if p.severity is Severity.WARNING)
        lines.extend(f"    problem: {p}" for p in s.problems if p.severity is Severity.ERROR)
    others = [p for p in study.problems if not _belongs_to_series(p, study)]
    errors = [p for p in others if p.severity is Severity.ERROR]
    skipped = [p for p in others if p.severity is Severity.SKIPPED]
    if errors:
        lines.append(f"{len(errors)} file(s) could not be loaded:")
        lines.extend(f"  - {p}" for p in errors)
    if skipped:
        if show_skipped:
            lines.append(f"{len(skipped)} non-image file(s) skipped:")
            lines.extend(f"  - {p}" for p in skipped)
        else:
            lines.append(f"{len(skipped)} non-image file(s) skipped (--all-problems lists them)")
    return "\n".join(lines) + "\n"
