"""The suspect-region masks of a series as a binary DICOM Segmentation (highdicom).

One segment, "Suspect region", on the frames of the source images that hold a region (a
mask value of at least 0.5, the outline the report draws). A series without any region
gives no Segmentation. OHIF and Weasis show it as an overlay on the source series.
"""

from __future__ import annotations

import copy

import numpy as np
from highdicom import UID, AlgorithmIdentificationSequence
from highdicom.seg import (
    SegmentAlgorithmTypeValues,
    Segmentation,
    SegmentationTypeValues,
    SegmentDescription,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from workstation.analysis.findings import SeriesVerdict
from workstation.analysis.run import ModelSummary
from workstation.reporting.dicom_source import (
    DECISION_SUPPORT,
    MANUFACTURER,
    MODEL_NAME,
    SERIES_NUMBERS,
    SOFTWARE_VERSION,
    NotExportableError,
    quiet_names,
    source_images,
)
from workstation.reporting.images import OUTLINE_THRESHOLD

SEGMENT_LABEL = "Suspect region"


def algorithm_identification(model: ModelSummary) -> AlgorithmIdentificationSequence:
    return AlgorithmIdentificationSequence(
        name=model.name, family=codes.cid7162.ArtificialIntelligence, version=model.version,
        source=MANUFACTURER, parameters={"sha256": model.sha256})


def region_masks(verdict: SeriesVerdict) -> dict[int, np.ndarray]:
    """The binary suspect region of each assessed slice that has one, by slice index."""
    return {f.index: np.asarray(f.mask) >= OUTLINE_THRESHOLD for f in verdict.findings
            if bool((np.asarray(f.mask) >= OUTLINE_THRESHOLD).any())}


def build_segmentation(verdict: SeriesVerdict, model: ModelSummary,
                       series_uid: str | None = None) -> Segmentation | None:
    """The series' suspect regions as a BINARY Segmentation, or None when no slice has
    one. Raises NotExportableError for a series results cannot reference."""
    masks = region_masks(verdict)
    if not masks:
        return None
    images = source_images(verdict)
    with_region = [s for s in images if s.finding.index in masks]
    multi_frame = any(s.frame is not None for s in images)
    if multi_frame:
        files = {s.dataset.SOPInstanceUID for s in images}
        if len(files) != 1:
            raise NotExportableError(f"{verdict.series.description} mixes multi-frame "
                                     "files; its regions cannot be stored as one SEG")
        source = images[0].dataset
        frames = int(source.NumberOfFrames)
        pixels = np.zeros((frames, int(source.Rows), int(source.Columns)), dtype=bool)
        for image in with_region:
            pixels[image.frame] = _checked(masks[image.finding.index], image.dataset,
                                           verdict)
        sources = [_shared_geometry(source, verdict)]
    else:
        pixels = np.stack([_checked(masks[s.finding.index], s.dataset, verdict)
                           for s in with_region])
        sources = [s.dataset for s in with_region]
    description = SegmentDescription(
        segment_number=1,
        segment_label=SEGMENT_LABEL,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm_identification(model),
    )
    with quiet_names():
        seg = Segmentation(
            source_images=sources,
            pixel_array=pixels,
            segmentation_type=SegmentationTypeValues.BINARY,
            segment_descriptions=[description],
            series_instance_uid=series_uid or UID(),
            series_number=SERIES_NUMBERS["SEG"],
            sop_instance_uid=UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=MODEL_NAME,
            software_versions=SOFTWARE_VERSION,
            device_serial_number=model.sha256[:16] or "unknown",
            content_label="SUSPECT_REGION",
            content_description="Suspect regions outlined by the triage model",
            series_description=f"AI suspect regions ({DECISION_SUPPORT})",
            omit_empty_frames=True,
        )
    return seg


def _shared_geometry(source: Dataset, verdict: SeriesVerdict) -> Dataset:
    """``source`` (a header) with its pixel measures and plane orientation in the shared
    functional group, where highdicom reads them, when the file keeps them per frame
    (all frames alike; a file whose frames differ is refused)."""
    shared = source.SharedFunctionalGroupsSequence[0]
    missing = [k for k in ("PixelMeasuresSequence", "PlaneOrientationSequence")
               if k not in shared]
    if not missing:
        return source
    patched = copy.deepcopy(source)
    frames = patched.PerFrameFunctionalGroupsSequence
    for keyword in missing:
        values = [item.get(keyword) for item in frames]
        if values[0] is None or any(v != values[0] for v in values):
            raise NotExportableError(f"{verdict.series.description}: the frames differ in "
                                     "geometry; its regions cannot be stored as one SEG")
        setattr(patched.SharedFunctionalGroupsSequence[0], keyword, values[0])
        for item in frames:
            delattr(item, keyword)
    return patched


def _checked(mask: np.ndarray, dataset: object, verdict: SeriesVerdict) -> np.ndarray:
    rows, cols = int(getattr(dataset, "Rows", 0)), int(getattr(dataset, "Columns", 0))
    if mask.shape != (rows, cols):
        raise NotExportableError(
            f"{verdict.series.description}: a mask of {mask.shape[1]}x{mask.shape[0]} "
            f"pixels does not match its {cols}x{rows} source image")
    return mask
