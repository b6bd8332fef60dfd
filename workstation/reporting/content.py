"""What goes into the triage report, gathered as plain values (no reportlab here)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from workstation import __version__
from workstation.analysis.findings import (
    VERDICT_WORDS,
    Finding,
    SeriesVerdict,
    Verdict,
    by_suspicion,
)
from workstation.analysis.run import StudyTriage
from workstation.imaging.series import SeriesInfo
from workstation.store.readings import Reading, series_key

NOT_AVAILABLE = "not available"
DISCLAIMER = (
    "Decision support only, not a diagnosis. This report was produced by software that "
    "reads each MRI image and decides a whole series from its neighbouring images; it can "
    "miss tumours and it can flag normal images. Every finding must be confirmed by a "
    "qualified radiologist reading the full examination."
)
KEY_IMAGES_PER_SERIES = 3
MODEL_CARD_ROWS = ("macro-F1", "tumour slices cleared as no_tumour", "review rate",
                   "ECE before / after", "specificity, worst plane",
                   "out-of-distribution probes rejected")


@dataclass(frozen=True)
class PatientHeader:
    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    study_date: str
    study_description: str
    accession: str
    modality: str
    institution: str
    anonymized: bool


@dataclass(frozen=True, eq=False)
class SeriesSection:
    verdict: SeriesVerdict
    key_images: tuple[Finding, ...]
    key_image_rule: str
    reading: Reading | None


@dataclass(frozen=True, eq=False)
class ReportContent:
    header: PatientHeader
    overall: Verdict
    overall_text: str
    overall_reasons: tuple[str, ...]
    sections: tuple[SeriesSection, ...]
    provenance: dict[str, str]
    model_card_rows: tuple[tuple[str, str], ...]
    errors: tuple[str, ...] = field(default_factory=tuple)


def _text(value: object) -> str:
    return NOT_AVAILABLE if value in (None, "") else str(value)


def _date(value: str | None) -> str:
    if value and re.fullmatch(r"\d{8}", value):
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return _text(value)


def pseudonym(info: SeriesInfo) -> str:
    basis = f"{info.patient_id or ''}|{info.patient_name or ''}"
    return "ANON-" + hashlib.sha256(basis.encode()).hexdigest()[:8].upper()


def patient_header(info: SeriesInfo, modality: str, institution: str, anonymize: bool
                   ) -> PatientHeader:
    if anonymize:
        alias = pseudonym(info)
        return PatientHeader(alias, alias, "removed", _text(info.patient_sex),
                             _date(info.study_date), _text(info.study_description), "removed",
                             modality, institution or NOT_AVAILABLE, True)
    name = (info.patient_name or "").replace("^", " ").strip()
    return PatientHeader(_text(name), _text(info.patient_id), _date(info.patient_birth_date),
                         _text(info.patient_sex), _date(info.study_date),
                         _text(info.study_description), _text(info.accession_number),
                         modality, institution or _text(info.institution_name), False)


def key_images(verdict: SeriesVerdict) -> tuple[tuple[Finding, ...], str]:
    assessable = [f for f in verdict.findings if f.verdict is not Verdict.CANNOT_ASSESS]
    if not assessable:
        return tuple(verdict.findings[:1]), "first image (none could be assessed)"
    if verdict.verdict is Verdict.NO_TUMOUR:
        closest = sorted(assessable, key=lambda f: f.probabilities["no_tumour"])
        return tuple(closest[:KEY_IMAGES_PER_SERIES]), "images closest to the review threshold"
    ranked = by_suspicion(assessable)
    chosen = ranked[:KEY_IMAGES_PER_SERIES]
    disagree = [f for f in ranked if f.heads_disagree]
    if disagree and not any(f.heads_disagree for f in chosen):
        # a reason names it: the reader must see the outline the no-tumour call contradicts
        chosen = [*chosen[:KEY_IMAGES_PER_SERIES - 1], disagree[0]]
        return tuple(chosen), ("most suspicious images, and one called no tumour with an "
                               "outlined suspect region")
    return tuple(chosen), "most suspicious images"


_SEVERITY = {Verdict.TUMOUR: 3, Verdict.REVIEW: 2, Verdict.CANNOT_ASSESS: 1,
             Verdict.NO_TUMOUR: 0}


def overall(verdicts: tuple[SeriesVerdict, ...]) -> tuple[Verdict, str, tuple[str, ...]]:
    if not verdicts:
        return Verdict.CANNOT_ASSESS, VERDICT_WORDS[Verdict.CANNOT_ASSESS], (
            "no image in the input could be read",)
    worst = max(verdicts, key=lambda v: _SEVERITY[v.verdict])
    reasons = tuple(f"{v.series.description}: {r.text}" for v in verdicts for r in v.reasons)
    return worst.verdict, worst.headline, reasons


def inputs_digest(paths: list[str]) -> tuple[int, str]:
    """Number of input files and a sha256 over their names and bytes (in sorted order)."""
    digest = hashlib.sha256()
    files = sorted(set(paths))
    for name in files:
        digest.update(Path(name).name.encode())
        try:
            with open(name, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError:
            digest.update(b"<unreadable>")
    return len(files), digest.hexdigest()


def model_card_rows(card: Path) -> tuple[tuple[str, str], ...]:
    """Headline rows of models/MODEL_CARD.md's results table, read, not retyped."""
    try:
        text = card.read_text()
    except OSError:
        return (("model card", "not found"),)
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and any(cells[0].startswith(key) for key in MODEL_CARD_ROWS):
            rows.append((cells[0], cells[1]))
    return tuple(rows)


def build_content(result: StudyTriage, readings: dict[str, Reading], institution: str = "",
                  anonymize: bool = False, model_card: Path | None = None) -> ReportContent:
    first_info = result.verdicts[0].series.info if result.verdicts else SeriesInfo()
    modalities = sorted({v.series.info.modality or "" for v in result.verdicts} - {""})
    header = patient_header(first_info, ", ".join(modalities) or NOT_AVAILABLE, institution,
                            anonymize)
    sections = []
    for verdict in result.verdicts:
        images, rule = key_images(verdict)
        sections.append(SeriesSection(verdict, images, rule,
                                      readings.get(series_key(verdict.series))))
    files = [s.source for v in result.verdicts for s in v.series.slices]
    count, digest = inputs_digest(files)
    worst, text, reasons = overall(result.verdicts)
    patients = {(v.series.info.patient_id or "", v.series.info.patient_name or "")
                for v in result.verdicts}
    if len(patients) > 1:
        reasons = (f"the input holds images of {len(patients)} different patients or sources: "
                   "check that this report belongs to one patient before filing it", *reasons)
    provenance = {
        "Model": f"{result.model.name} {result.model.version}",
        "Model sha256": result.model.sha256,
        "Device": f"{result.device} ({result.backend})",
        "Software": f"brain MRI triage workstation {__version__}",
        "Report created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "Input files": str(count),
        "Input digest (sha256)": digest,
    }
    card = model_card or Path(__file__).resolve().parents[2] / "models" / "MODEL_CARD.md"
    errors = tuple(f"{Path(p.path).name if anonymize else p.path}: {p.message}"
                   for p in result.study.errors)
    return ReportContent(header, worst, text, reasons, tuple(sections), provenance,
                         model_card_rows(card), errors)
