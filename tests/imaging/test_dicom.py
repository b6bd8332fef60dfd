"""Grouping, ordering, the pixel pipeline and bad input, on synthetic and bundled DICOM."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from tests.dicom_factory import AXIAL, CORONAL, SAGITTAL, gradient, mr_dataset, write
from workstation.imaging import Plane, PlaneSource, Severity, load_study


def write_series(folder: Path, count: int, *, orientation=AXIAL, uid: str | None = None,
                 names: list[str] | None = None, **kwargs) -> str:  # type: ignore[no-untyped-def]
    uid = uid or generate_uid()
    for index in range(count):
        # slice k sits at z = 5k along the normal, but instance numbers run backwards
        normal = np.cross(orientation[:3], orientation[3:])
        ds = mr_dataset(gradient(offset=index * 100), series_uid=uid, instance=count - index,
                        position=tuple(normal * 5.0 * index), orientation=orientation, **kwargs)
        name = names[index] if names else f"IMG{random.randrange(10**8):08d}"
        write(ds, folder / name)
    return uid


def offsets(series) -> list[int]:  # type: ignore[no-untyped-def]
    return [int(s.raw[0, 0]) for s in series.slices]


def test_shuffled_files_are_sorted_along_the_slice_normal(tmp_path: Path) -> None:
    names = [f"f{n}" for n in random.Random(3).sample(range(1000), 12)]
    write_series(tmp_path, 12, names=names)
    study = load_study([tmp_path])
    (series,) = study.series
    assert offsets(series) == [i * 100 for i in range(12)]
    positions = [s.position for s in series.slices]
    assert positions == sorted(positions)
    assert series.plane is Plane.AXIAL and series.plane_source is PlaneSource.DICOM


@pytest.mark.parametrize(("orientation", "plane"),
                         [(CORONAL, Plane.CORONAL), (SAGITTAL, Plane.SAGITTAL)])
def test_plane_comes_from_the_orientation(tmp_path: Path, orientation, plane) -> None:  # type: ignore[no-untyped-def]
    write_series(tmp_path, 3, orientation=orientation)
    (series,) = load_study([tmp_path]).series
    assert series.plane is plane
    assert series.obliquity_deg == 0.0


def test_without_positions_instance_number_then_name_orders(tmp_path: Path) -> None:
    uid = generate_uid()
    for instance, name in [(3, "a"), (1, "b"), (2, "c")]:
        write(mr_dataset(gradient(offset=instance), series_uid=uid, instance=instance,
                         position=None), tmp_path / name)
    (series,) = load_study([tmp_path]).series
    assert offsets(series) == [1, 2, 3]


def test_mixed_folder_two_series_and_junk(tmp_path: Path) -> None:
    write_series(tmp_path / "nested" / "deeper", 4, description="T2 axial")
    write_series(tmp_path / "nested", 3, orientation=SAGITTAL, description="T1 sagittal")
    (tmp_path / "notes.txt").write_text("scan notes")
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "garbage").write_bytes(bytes(range(256)) * 10)
    study = load_study([tmp_path])
    assert sorted(len(s.slices) for s in study.series) == [3, 4]
    assert {s.description for s in study.series} == {"T2 axial", "T1 sagittal"}
    by_path = {Path(p.path).name: p for p in study.problems}
    assert by_path["empty.dcm"].severity is Severity.ERROR
    assert "empty" in by_path["empty.dcm"].message
    assert by_path["notes.txt"].severity is Severity.SKIPPED
    assert by_path["garbage"].severity is Severity.SKIPPED


def test_series_mixing_orientations_is_split(tmp_path: Path) -> None:
    uid = generate_uid()
    write_series(tmp_path / "a", 5, uid=uid)
    write_series(tmp_path / "b", 2, uid=uid, orientation=SAGITTAL)
    study = load_study([tmp_path])
    assert sorted((len(s.slices), s.plane) for s in study.series) == [
        (2, Plane.SAGITTAL), (5, Plane.AXIAL)]
    assert all(any("orientations" in p.message for p in s.problems) for s in study.series)


def test_rescale_window_and_monochrome1(tmp_path: Path) -> None:
    pixels = np.array([[0, 50], [100, 200]], dtype=np.uint16)
    write(mr_dataset(pixels, series_uid=generate_uid(), instance=1, slope=2.0,
                     intercept=-100.0, window=(100.0, 201.0)), tmp_path / "m2")
    write(mr_dataset(pixels, series_uid=generate_uid(), instance=1, slope=2.0,
                     intercept=-100.0, window=(100.0, 201.0), photometric="MONOCHROME1"),
          tmp_path / "m1")
    study = load_study([tmp_path / "m2", tmp_path / "m1"])
    m2, m1 = (s.slices[0] for s in study.series)
    assert m2.raw.tolist() == [[-100.0, 0.0], [100.0, 300.0]]
    assert m2.window.source == "dicom"
    assert m2.image[0, 0] == 0.0 and m2.image[1, 1] == 1.0
    np.testing.assert_allclose(m1.image, 1.0 - m2.image)


def test_real_monochrome1_radiograph_is_inverted(pydicom_data_files: Path) -> None:
    (series,) = load_study([pydicom_data_files / "RG1_UNCR.dcm"]).series
    image = series.slices[0].image
    raw = series.slices[0].raw
    # MONOCHROME1: the highest stored values must display darkest
    assert image[raw >= np.percentile(raw, 99)].mean() < image[raw <= np.percentile(raw, 1)].mean()


def test_percentile_window_when_file_has_none(tmp_path: Path) -> None:
    write(mr_dataset(gradient(), series_uid=generate_uid(), instance=1), tmp_path / "x")
    (series,) = load_study([tmp_path]).series
    assert series.slices[0].window.source == "percentile"
    assert series.slices[0].image.min() >= 0.0 and series.slices[0].image.max() <= 1.0


def test_metadata_for_report_and_gui(tmp_path: Path) -> None:
    write_series(tmp_path, 2)
    info = load_study([tmp_path]).series[0].info
    assert (info.patient_name, info.patient_id, info.patient_birth_date, info.patient_sex) == (
        "Doe^Jane", "PID-001", "19700101", "F")
    assert (info.study_date, info.accession_number, info.modality, info.series_number) == (
        "20261125", "ACC-1", "MR", 3)
    assert info.pixel_spacing == (0.9, 0.9) and info.slice_thickness == 5.0
    assert info.body_part_examined == "BRAIN" and info.institution_name == "Test Clinic"
    assert info.protocol_name is None  # not in these files


def test_protocol_name_is_read_beside_the_descriptions(tmp_path: Path) -> None:
    ds = mr_dataset(gradient(), series_uid=generate_uid(), instance=1, description="SAG T2")
    ds.ProtocolName = "t2_tse_sag_knee"
    write(ds, tmp_path / "x")
    info = load_study([tmp_path]).series[0].info
    assert (info.series_description, info.protocol_name) == ("SAG T2", "t2_tse_sag_knee")


def test_enhanced_multiframe_frames_become_slices(pydicom_data_files: Path) -> None:
    # this anonymised file kept no functional groups: frames load, plane stays unknown
    (series,) = load_study([pydicom_data_files / "emri_small.dcm"]).series
    assert len(series.slices) == 10
    assert series.plane is Plane.UNKNOWN
    assert [s.frame for s in series.slices] == list(range(10))


def test_enhanced_mr_per_frame_groups_give_geometry_and_rescale(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import EnhancedMRImageStorage

    frames = np.stack([np.full((8, 8), 10 * (k + 1), dtype=np.uint16) for k in range(4)])
    ds = mr_dataset(frames[0], series_uid=generate_uid(), instance=1, position=None,
                    orientation=None)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedMRImageStorage
    ds.NumberOfFrames = 4
    ds.PixelData = frames.tobytes()
    shared = Dataset()
    orientation, transform = Dataset(), Dataset()
    orientation.ImageOrientationPatient = list(CORONAL)
    transform.RescaleSlope, transform.RescaleIntercept = 2, -5
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for k in range(4):  # frames stored against the normal (+y): sorting must reverse them
        item, pos = Dataset(), Dataset()
        pos.ImagePositionPatient = [0.0, float(3 * (3 - k)), 0.0]
        item.PlanePositionSequence = Sequence([pos])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    write(ds, tmp_path / "enhanced.dcm")
    (series,) = load_study([tmp_path]).series
    assert series.plane is Plane.CORONAL
    assert [int(s.raw[0, 0]) for s in series.slices] == [75, 55, 35, 15]


def test_enhanced_mr_volumes_from_dimension_indices_and_frame_types(tmp_path: Path) -> None:
    """Six frames: three positions x two cardiac phases (a dimension the reader does not
    otherwise know, Nominal Cardiac Trigger Delay Time), stored position-major with phase 2
    first, so that only the dimension index values (not the storage order) put phase 1
    first; one frame of phase 2 is typed PHASE."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.tag import Tag
    from pydicom.uid import EnhancedMRImageStorage

    frames = np.stack([np.full((8, 8), 10 * (k + 1), dtype=np.uint16) for k in range(6)])
    ds = mr_dataset(frames[0], series_uid=generate_uid(), instance=1, position=None,
                    orientation=None)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedMRImageStorage
    ds.NumberOfFrames = 6
    ds.PixelData = frames.tobytes()
    dimensions = []
    for pointer in ("StackID", "InStackPositionNumber", "NominalCardiacTriggerDelayTime"):
        item = Dataset()
        item.DimensionIndexPointer = Tag(pointer)
        item.FunctionalGroupPointer = Tag("FrameContentSequence")
        dimensions.append(item)
    ds.DimensionIndexSequence = Sequence(dimensions)
    shared, orientation = Dataset(), Dataset()
    orientation.ImageOrientationPatient = list(AXIAL)
    shared.PlaneOrientationSequence = Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for k in range(6):  # (position, phase): (0, 2), (0, 1), (1, 2), (1, 1), (2, 2), (2, 1)
        position, phase = k // 2, 1 - k % 2
        item, pos, content, frame_type = Dataset(), Dataset(), Dataset(), Dataset()
        pos.ImagePositionPatient = [0.0, 0.0, float(4 * position)]
        content.DimensionIndexValues = [1, position + 1, phase + 1]
        frame_type.FrameType = ["ORIGINAL", "PRIMARY", "PHASE" if k == 4 else "M", "NONE"]
        item.PlanePositionSequence = Sequence([pos])
        item.FrameContentSequence = Sequence([content])
        item.MRImageFrameTypeSequence = Sequence([frame_type])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    write(ds, tmp_path / "enhanced.dcm")
    (series,) = load_study([tmp_path]).series
    assert [(v.label, v.count, v.anatomical) for v in series.volumes] == [
        ("magnitude, time point 1", 3, True), ("magnitude, time point 2", 2, True),
        ("phase", 1, False)]
    assert [int(s.raw[0, 0]) for s in series.slices] == [20, 40, 60, 10, 30, 50]
    assert series.assessed_indices == (0, 1, 2)


def test_dicomdir_loads_the_files_it_lists(pydicom_files: Path, tmp_path: Path) -> None:
    shutil.copytree(pydicom_files / "dicomdirtests", tmp_path / "dd")
    study = load_study([tmp_path / "dd" / "DICOMDIR"])
    assert study.series
    assert sum(len(s.slices) for s in study.series) > 0


# ------------------------------------------------------------------------- bad input
def test_truncated_file_is_reported_and_the_rest_loads(tmp_path: Path) -> None:
    write_series(tmp_path, 3, names=["a", "b", "c"])
    data = (tmp_path / "b").read_bytes()
    (tmp_path / "b").write_bytes(data[: len(data) - 700])
    study = load_study([tmp_path])
    (series,) = study.series
    assert len(series.slices) == 2
    (error,) = study.errors
    assert error.path.endswith("b") and "truncated" in error.message


def test_header_only_truncation(tmp_path: Path) -> None:
    write_series(tmp_path, 1, names=["a"])
    data = (tmp_path / "a").read_bytes()
    (tmp_path / "a").write_bytes(data[:200])
    study = load_study([tmp_path])
    assert not study.series
    assert study.errors and study.errors[0].path.endswith("a")


def test_absurd_size_header_is_refused_without_decoding(tmp_path: Path) -> None:
    ds = mr_dataset(gradient(4, 4), series_uid=generate_uid(), instance=1)
    ds.Rows = ds.Columns = 20000
    write(ds, tmp_path / "huge.dcm")
    study = load_study([tmp_path])
    (error,) = study.errors
    assert "20000x20000" in error.message and "larger" in error.message


def test_missing_pixel_data(tmp_path: Path) -> None:
    ds = mr_dataset(gradient(4, 4), series_uid=generate_uid(), instance=1)
    del ds.PixelData
    write(ds, tmp_path / "nopix.dcm")
    (error,) = load_study([tmp_path]).errors
    assert "without pixel data" in error.message


def test_pixel_data_shorter_than_header_says(pydicom_files: Path) -> None:
    (error,) = load_study([pydicom_files / "MR_truncated.dcm"]).errors
    assert "truncated" in error.message


def test_empty_folder_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    study = load_study([tmp_path / "empty", tmp_path / "nowhere"])
    messages = {Path(p.path).name: p.message for p in study.problems}
    assert "holds no files" in messages["empty"]
    assert "does not exist" in messages["nowhere"]


def test_non_image_dicom_is_skipped_not_an_error(pydicom_files: Path, tmp_path: Path) -> None:
    shutil.copy(pydicom_files / "test-SR.dcm", tmp_path)
    shutil.copy(pydicom_files / "MR_small.dcm", tmp_path)
    study = load_study([tmp_path])
    assert len(study.series) == 1
    assert not study.errors
    assert any("not an image" in p.message for p in study.problems)
