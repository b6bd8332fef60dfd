"""The triage report as a PDF (reportlab platypus), written atomically.

Fonts are the Bitstream Vera TrueType fonts that reportlab ships, embedded in the file.
Every page carries the patient ID and "page N of M". Colour is never the only carrier of
meaning: the verdict is in words and the banner prints as a dark or light band in grey.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import reportlab
from PIL import Image as PILImage
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas
from reportlab.platypus import (
    CondPageBreak,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from workstation.analysis.findings import CLASSES, Finding, Verdict, percent
from workstation.reporting.content import DISCLAIMER, ReportContent, SeriesSection
from workstation.reporting.images import grey_picture, outlined_picture

PAGE_SIZES = {"A4": A4, "Letter": LETTER}
_FONT_DIR = Path(reportlab.__file__).parent / "fonts"
_BANNER = {
    Verdict.TUMOUR: (colors.HexColor("#7a0010"), colors.white),
    Verdict.REVIEW: (colors.HexColor("#f2c200"), colors.black),
    Verdict.CANNOT_ASSESS: (colors.HexColor("#5a5a5a"), colors.white),
    Verdict.NO_TUMOUR: (colors.HexColor("#d9efd9"), colors.black),
}


class ReportExistsError(FileExistsError):
    """The output file exists and overwriting was not asked for."""


def _register_fonts() -> None:
    if "Vera" in pdfmetrics.getRegisteredFontNames():
        return
    for name, file in (("Vera", "Vera.ttf"), ("Vera-Bold", "VeraBd.ttf"),
                       ("Vera-Italic", "VeraIt.ttf"), ("Vera-BoldItalic", "VeraBI.ttf")):
        pdfmetrics.registerFont(TTFont(name, str(_FONT_DIR / file)))
    pdfmetrics.registerFontFamily("Vera", normal="Vera", bold="Vera-Bold",
                                  italic="Vera-Italic", boldItalic="Vera-BoldItalic")


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName="Vera", fontSize=9, leading=12, alignment=TA_LEFT)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7.5, leading=9.5),
        "title": ParagraphStyle("title", parent=base, fontName="Vera-Bold", fontSize=16,
                                leading=20),
        "h2": ParagraphStyle("h2", parent=base, fontName="Vera-Bold", fontSize=11.5,
                             leading=15, spaceBefore=8, spaceAfter=4),
        "banner": ParagraphStyle("banner", parent=base, fontName="Vera-Bold", fontSize=17,
                                 leading=21),
        "banner_sub": ParagraphStyle("banner_sub", parent=base, fontSize=9.5, leading=12.5),
    }


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _NumberedCanvas(canvas.Canvas):
    """Two-pass canvas: knows the page count when drawing each footer."""

    patient_id = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _register_fonts()
        kwargs["initialFontName"] = "Vera"  # else Helvetica, which is not embedded
        super().__init__(*args, **kwargs)
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            self._footer(total)
            super().showPage()
        super().save()

    def _footer(self, total: int) -> None:
        width, _ = self._pagesize
        self.setFont("Vera", 7.5)
        self.setFillColor(colors.black)
        self.drawString(15 * mm, 10 * mm, f"Patient ID: {self.patient_id}")
        self.drawCentredString(width / 2, 10 * mm,
                               "Decision support only - not a diagnosis")
        self.drawRightString(width - 15 * mm, 10 * mm,
                             f"Page {self._pageNumber} of {total}")


def _picture_flowable(picture: PILImage.Image, width: float) -> Image:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    buffer.seek(0)
    ratio = picture.height / picture.width
    return Image(buffer, width=width, height=width * ratio)


def _banner(content: ReportContent, styles: dict[str, ParagraphStyle], width: float) -> Table:
    background, ink = _BANNER[content.overall]
    title = ParagraphStyle("bt", parent=styles["banner"], textColor=ink)
    sub = ParagraphStyle("bs", parent=styles["banner_sub"], textColor=ink)
    rows = [[Paragraph(_escape(content.overall_text), title)]]
    for reason in content.overall_reasons:
        rows.append([Paragraph("- " + _escape(reason), sub)])
    table = Table(rows, colWidths=[width])
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, -1), "Vera"),  # tables default to Helvetica (not embedded)
        ("BACKGROUND", (0, 0), (-1, -1), background),
        ("BOX", (0, 0), (-1, -1), 2, colors.black),
        ("LEFTPADDING", (0, 0), (-1, -1), 8), ("TOPPADDING", (0, 0), (-1, 0), 8),
        ("BOTTOMPADDING", (0, -1), (-1, -1), 8),
    ]))
    return table


def _grid(rows: list[list[Any]], widths: list[float], header: bool = True) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1 if header else 0)
    style = [("FONT", (0, 0), (-1, -1), "Vera", 8.5),
             ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
             ("VALIGN", (0, 0), (-1, -1), "TOP")]
    if header:
        style += [("FONT", (0, 0), (-1, 0), "Vera-Bold", 8.5),
                  ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6e6e6"))]
    table.setStyle(TableStyle(style))
    return table


def _header_table(content: ReportContent, styles: dict[str, ParagraphStyle], width: float
                  ) -> Table:
    h = content.header
    cell = styles["body"]
    pairs = [("Patient", h.patient_name), ("Patient ID", h.patient_id),
             ("Birth date", h.birth_date), ("Sex", h.sex), ("Study date", h.study_date),
             ("Study", h.study_description), ("Accession", h.accession),
             ("Modality", h.modality), ("Institution", h.institution),
             ("Series analysed", str(len(content.sections)))]
    rows = []
    for i in range(0, len(pairs), 2):
        row: list[Any] = []
        for label, value in pairs[i:i + 2]:
            row += [Paragraph(f"<b>{label}</b>", cell), Paragraph(_escape(value), cell)]
        rows.append(row)
    quarter = width / 4
    return _grid(rows, [quarter * 0.7, quarter * 1.3, quarter * 0.7, quarter * 1.3],
                 header=False)


def _series_table(content: ReportContent, styles: dict[str, ParagraphStyle], width: float
                  ) -> Table:
    cell = styles["small"]
    rows: list[list[Any]] = [["#", "Series", "Plane", "Images", "Verdict", "Reasons"]]
    for n, section in enumerate(content.sections, start=1):
        v = section.verdict
        rows.append([str(n), Paragraph(_escape(v.series.description), cell),
                     f"{v.plane} ({v.plane_source})", str(len(v.findings)),
                     Paragraph(_escape(v.headline), cell),
                     Paragraph(_escape("; ".join(v.review_reasons) or "-"), cell)])
    return _grid(rows, [width * f for f in (0.04, 0.2, 0.14, 0.08, 0.27, 0.27)])


def _probabilities(finding: Finding) -> str:
    return ", ".join(f"{c.replace('_', ' ')} {percent(finding.probabilities[c])}"
                     for c in CLASSES)


def _key_images(section: SeriesSection, styles: dict[str, ParagraphStyle], width: float
                ) -> list[Any]:
    verdict = section.verdict
    story: list[Any] = [Paragraph(f"Key images ({section.key_image_rule})", styles["body"]),
                        Spacer(1, 3)]
    picture_width = width * 0.24
    for finding in section.key_images:
        image = verdict.series.slices[finding.index].image
        spacing = verdict.series.info.pixel_spacing  # printed at square pixels, as viewed
        plain = _picture_flowable(grey_picture(image, spacing), picture_width)
        marked = _picture_flowable(outlined_picture(image, finding.mask, spacing),
                                   picture_width)
        words = verdict.series.image_words(finding.index)
        text = (f"<b>{_escape(words[0].upper() + words[1:])}</b><br/>"
                f"Plane: {finding.plane}<br/>Slice verdict: {finding.verdict.value}<br/>"
                f"{_escape(_probabilities(finding))}<br/>"
                f"Suspect region: {finding.mask_area_px} pixels"
                + (" (outlined)" if finding.mask_area_px else " (none drawn)"))
        if finding.review_reasons:
            text += "<br/>" + _escape("; ".join(finding.review_reasons))
        row = Table([[plain, marked, Paragraph(text, styles["small"])]],
                    colWidths=[picture_width + 4, picture_width + 4, width - 2 * picture_width - 8])
        row.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                 ("FONT", (0, 0), (-1, -1), "Vera"),
                                 ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
        story += [KeepTogether([row]), Spacer(1, 4)]
    return story


def _reading(section: SeriesSection, styles: dict[str, ParagraphStyle], width: float
             ) -> list[Any]:
    reading = section.reading
    if reading is None:
        rows = [["Reviewer's reading", ""], ["Agree / disagree", ""], ["Corrected class", ""],
                ["Note", "\n\n"], ["Name, signature, date", "\n"]]
        table = _grid(rows, [width * 0.3, width * 0.7])
        return [Spacer(1, 4), KeepTogether([table])]
    rows = [["Reviewer's reading", ""], ["Reading", reading.agreement],
            ["Corrected class", reading.corrected_class or "-"],
            ["Note", Paragraph(_escape(reading.note or "-"), styles["small"])],
            ["Reader", reading.reader or "not recorded"], ["Recorded", reading.recorded_at]]
    return [Spacer(1, 4), KeepTogether([_grid(rows, [width * 0.3, width * 0.7])])]


def build_story(content: ReportContent, page_width: float) -> list[Any]:
    _register_fonts()
    styles = _styles()
    width = page_width - 30 * mm
    story: list[Any] = [
        Paragraph("Brain MRI triage report", styles["title"]),
        Paragraph(_escape(content.header.institution) + (" - anonymized"
                  if content.header.anonymized else ""), styles["body"]),
        Spacer(1, 6), _header_table(content, styles, width), Spacer(1, 8),
        _banner(content, styles, width), Spacer(1, 6),
    ]
    if len(content.sections) > 1:
        story += [Paragraph("Series", styles["h2"]), _series_table(content, styles, width)]
    for n, section in enumerate(content.sections, start=1):
        v = section.verdict
        story += [CondPageBreak(60 * mm),
                  Paragraph(f"Series {n}: {_escape(v.series.description)}", styles["h2"]),
                  Paragraph(f"{_escape(v.headline)}. Plane {v.plane} (from {v.plane_source}), "
                            f"{len(v.findings)} images assessed.", styles["body"])]
        if v.assessed_on is not None:
            story.append(Paragraph(_escape(f"Volumes: {v.assessed_on}."), styles["body"]))
        for reason in v.reasons:
            story.append(Paragraph("- " + _escape(reason.text), styles["body"]))
        story += [Spacer(1, 4), *_key_images(section, styles, width),
                  *_reading(section, styles, width)]
    if content.errors:
        story += [Paragraph("Files that could not be read", styles["h2"])]
        story += [Paragraph(_escape(e), styles["small"]) for e in content.errors]
    story += [CondPageBreak(70 * mm), Paragraph("Provenance", styles["h2"])]
    story.append(_grid([[k, Paragraph(_escape(v), styles["small"])]
                        for k, v in content.provenance.items()],
                       [width * 0.3, width * 0.7], header=False))
    if content.model_card_rows:
        story += [Spacer(1, 6), Paragraph("Model card headline figures (test split, from "
                                          "models/MODEL_CARD.md)", styles["body"]),
                  _grid([["Measure", "Value"], *[[Paragraph(_escape(a), styles["small"]),
                                                   Paragraph(_escape(b), styles["small"])]
                                                  for a, b in content.model_card_rows]],
                        [width * 0.6, width * 0.4])]
    story += [Spacer(1, 8), Paragraph("<b>Disclaimer.</b> " + _escape(DISCLAIMER),
                                      styles["body"])]
    return story


class ReportWriteError(OSError):
    """The report could not be written; the message names the file."""

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))
        self.path = path
        self.cause = cause

    def __str__(self) -> str:
        if self.errno == errno.ENOSPC:
            why = "the disk is full (no space left on the device)"
        elif self.errno == errno.EDQUOT:
            why = "the disk quota is used up"
        else:
            why = self.strerror or str(self.cause)
        return f"{self.path} could not be written: {why}"


def _remove_leftovers(path: Path) -> None:
    """Remove the temporary files an earlier write of ``path`` left when it was killed
    (``write_report`` removes its own on any exception, but not after a SIGKILL)."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def write_report(content: ReportContent, path: Path, page_size: str = "A4",
                 force: bool = False) -> Path:
    """Write the PDF atomically: to a temporary file beside ``path``, then rename.

    The temporary file is removed on any failure, and leftovers of an earlier, killed write
    of the same report are removed first. An OSError (a full disk...) is raised as a
    ReportWriteError that names ``path``.
    """
    path = Path(path)
    if path.exists() and not force:
        raise ReportExistsError(f"{path} already exists (use --force to overwrite it)")
    size = PAGE_SIZES.get(page_size)
    if size is None:
        raise ValueError(f"page size must be one of {', '.join(PAGE_SIZES)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(path)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part",
                                             dir=path.parent)
        os.close(handle)
    except OSError as exc:
        raise ReportWriteError(path, exc) from exc
    try:
        document = SimpleDocTemplate(
            temporary, pagesize=size, leftMargin=15 * mm, rightMargin=15 * mm,
            topMargin=15 * mm, bottomMargin=18 * mm, title="Brain MRI triage report",
            author="brain MRI triage workstation",
            subject="Decision support triage report (not a diagnosis)")

        class Canvas(_NumberedCanvas):
            patient_id = content.header.patient_id

        document.build(build_story(content, size[0]), canvasmaker=Canvas)
        os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, ReportWriteError):
            raise ReportWriteError(path, exc) from exc
        raise
    return path
