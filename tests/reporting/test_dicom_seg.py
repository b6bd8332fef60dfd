"""The suspect regions as a binary DICOM SEG: read back by highdicom, frames equal masks."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from tests.reporting.dicom_cases import GE, MPRAGE, triaged
from workstation.reporting.dicom_export import write_dataset
from workstation.reporting.dicom_seg import SEGMENT_LABEL, build_segmentation
from workstation.reporting.dicom_source import NotExportableError


def _written(seg: hd.seg.Segmentation, folder: Path) -> hd.seg.Segmentation:
    path = write_dataset(seg, folder / "seg.dcm")
    return hd.seg.segread(path)


def test_single_frame_sources_one_frame_per_slice_with_a_region(datasets: Path,
                                                                tmp_path: Path) -> None:
    result = triaged(datasets, GE, tumour=[2, 7, 8])
    verdict = result.verdicts[0]
    seg = build_segmentation(verdict, result.model)
    assert seg is not None
    back = _written(seg, tmp_path)
    assert back.SegmentationType == "BINARY"
    assert back.get_segment_description(1).segment_label == SEGMENT_LABEL
    with_region = [f for f in verdict.findings if (f.mask >= 0.5).any()]
    assert len(with_region) == 3 and int(back.NumberOfFrames) == 3
    uids = [pydicom.dcmread(verdict.series.slices[f.index].source,
                            stop_before_pixels=True).SOPInstanceUID for f in with_region]
    pixels = back.get_pixels_by_source_instance(uids, segment_numbers=[1])
    assert pixels.shape == (3, 64, 64, 1)
    for frame, finding in zip(pixels[..., 0], with_region, strict=True):
        assert np.array_equal(frame.astype(bool), finding.mask >= 0.5)
    assert back.StudyInstanceUID == verdict.series.info.study_instance_uid
    assert [item.SeriesInstanceUID for item in back.ReferencedSeriesSequence] == [
        verdict.series.series_uid]


def test_enhanced_multi_frame_source_frames_equal_the_masks(datasets: Path,
                                                             tmp_path: Path) -> None:
    result = triaged(datasets, MPRAGE, tumour=[10, 11, 40])
    verdict = result.verdicts[0]
    seg = build_segmentation(verdict, result.model)
    assert seg is not None
    back = _written(seg, tmp_path)
    source = pydicom.dcmread(verdict.series.slices[0].source, stop_before_pixels=True)
    with_region = [f for f in verdict.findings if (f.mask >= 0.5).any()]
    frames = [verdict.series.slices[f.index].frame for f in with_region]
    assert None not in frames and int(back.NumberOfFrames) == len(with_region) == 3
    pixels = back.get_pixels_by_source_frame(
        source.SOPInstanceUID, [f + 1 for f in frames if f is not None], segment_numbers=[1])
    for frame, finding in zip(pixels[..., 0], with_region, strict=True):
        assert np.array_equal(frame.astype(bool), finding.mask >= 0.5)


def test_no_region_gives_no_segmentation(datasets: Path) -> None:
    result = triaged(datasets, GE, tumour=[])
    assert build_segmentation(result.verdicts[0], result.model) is None


def test_a_series_that_is_not_dicom_is_refused_in_words() -> None:
    from dataclasses import replace

    from tests.fakes import make_series, verdict_of
    from workstation.analysis.run import ModelSummary

    series = replace(make_series((3,)), kind="raster")
    verdict = verdict_of(series, {1: 0.9})
    mask = np.zeros((32, 32), np.float32)
    mask[4:9, 4:9] = 1.0
    findings = tuple(replace(f, mask=mask) if f.index == 1 else f for f in verdict.findings)
    verdict = replace(verdict, findings=findings)
    with pytest.raises(NotExportableError, match="not a DICOM series"):
        build_segmentation(verdict, ModelSummary("m", "1", "ab" * 32))
