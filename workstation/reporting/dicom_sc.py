"""Key images as DICOM Secondary Capture, for viewers that show only images.

Each key image of the report (``content.key_images``) as the viewer shows it, with the
suspect region outlined (white line, black rim) and a black band above it that says
"DECISION SUPPORT - NOT A DIAGNOSIS" and the verdict of the image. The words and the
outline are burnt into the pixels (Burned In Annotation YES): a viewer that ignores SR and
SEG still shows them, and nobody mistakes the picture for the acquired image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import reportlab
from highdicom import UID
from highdicom.sc import SCImage
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset

from workstation.analysis.findings import VERDICT_WORDS, Finding, SeriesVerdict, percent
from workstation.reporting.dicom_source import (
    DECISION_SUPPORT,
    MANUFACTURER,
    MODEL_NAME,
    SERIES_NUMBERS,
    SOFTWARE_VERSION,
    SourceImage,
    patient_orientation,
    quiet_names,
)
from workstation.reporting.images import outlined_picture

LABEL = "DECISION SUPPORT - NOT A DIAGNOSIS"
_FONT = Path(reportlab.__file__).parent / "fonts" / "VeraBd.ttf"
MIN_WIDTH = 384  # pixels: the label stays legible on a 64x64 source


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(str(_FONT), size)
    except OSError:
        return ImageFont.load_default()


def label_lines(verdict: SeriesVerdict, finding: Finding) -> tuple[str, ...]:
    """The lines burnt above a key image."""
    words = verdict.series.image_words(finding.index)
    return (LABEL, f"AI triage: {VERDICT_WORDS[finding.verdict]}",
            f"{words}, p(tumour) {percent(finding.tumour_probability)}")


def key_image_picture(verdict: SeriesVerdict, finding: Finding) -> Image.Image:
    """The RGB picture of one key image: outline burnt in, label band on top."""
    series = verdict.series
    image = series.slices[finding.index].image
    picture = outlined_picture(image, finding.mask, series.info.pixel_spacing)
    if picture.width < MIN_WIDTH:
        scale = MIN_WIDTH / picture.width
        picture = picture.resize((MIN_WIDTH, max(1, round(picture.height * scale))),
                                 Image.Resampling.NEAREST)
    lines = label_lines(verdict, finding)
    size = max(12, picture.width // 30)
    gap = max(3, size // 3)
    fonts = [_font(size + 2)] + [_font(size)] * (len(lines) - 1)
    heights = [size + 2] + [size] * (len(lines) - 1)
    band = sum(heights) + gap * (len(lines) + 1)
    canvas = Image.new("RGB", (picture.width, picture.height + band), (0, 0, 0))
    canvas.paste(picture, (0, band))
    draw = ImageDraw.Draw(canvas)
    top = gap
    for text, font, height in zip(lines, fonts, heights, strict=True):
        while draw.textlength(text, font=font) > picture.width - 2 * gap and len(text) > 8:
            text = text[:-4].rstrip() + "..."
        draw.text((gap, top), text, fill=(255, 255, 255), font=font)
        top += height + gap
    return canvas


def build_key_image(verdict: SeriesVerdict, source: SourceImage, series_uid: str,
                    instance_number: int) -> SCImage:
    """One key image as a Secondary Capture Image of the source's patient and study."""
    picture = key_image_picture(verdict, source.finding)
    pixels = np.asarray(picture, dtype=np.uint8)
    with quiet_names():
        sc = SCImage.from_ref_dataset(
            ref_dataset=source.dataset,
            pixel_array=pixels,
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            series_instance_uid=series_uid,
            series_number=SERIES_NUMBERS["SC"],
            sop_instance_uid=UID(),
            instance_number=instance_number,
            manufacturer=MANUFACTURER,
            patient_orientation=patient_orientation(source.dataset, source.frame),
            series_description=f"AI key images ({DECISION_SUPPORT})",
            manufacturer_model_name=MODEL_NAME,
            software_versions=SOFTWARE_VERSION,
        )
    sc.BurnedInAnnotation = "YES"
    # Laterality (type 2C) is for paired structures: naming the body part says it is not
    sc.BodyPartExamined = source.dataset.get("BodyPartExamined") or "BRAIN"
    sc.ImageComments = " ".join(label_lines(verdict, source.finding))[:10240]
    sc.DerivationDescription = ("source image at its display window, suspect region "
                                "outlined, decision-support label burnt in")
    _reference_source(sc, source)
    return sc


def _reference_source(sc: Dataset, source: SourceImage) -> None:
    item = Dataset()
    item.ReferencedSOPClassUID = source.dataset.SOPClassUID
    item.ReferencedSOPInstanceUID = source.dataset.SOPInstanceUID
    if source.frame is not None:
        item.ReferencedFrameNumber = source.frame + 1
    sc.SourceImageSequence = [item]
