"""The shared real brain MRI DICOM: series, planes and order (skipped without the data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workstation.imaging import Plane, PlaneSource, Series, Severity, load_study


def test_ge_150_files_are_one_series_of_ten_volumes_in_position_order(datasets: Path) -> None:
    study = load_study([datasets / "dicom" / "ge_epi_axial"])
    (series,) = study.series
    assert len(series.slices) == 150
    assert [v.count for v in series.volumes] == [15] * 10
    assert [v.label for v in series.volumes[:2]] == ["time point 1", "time point 2"]
    assert [v.assessed for v in series.volumes] == [True] + [False] * 9
    for volume in series.volumes:
        positions = [s.position for s in series.slices[volume.start:volume.stop]]
        assert None not in positions
        assert positions == sorted(positions)  # type: ignore[type-var]
        assert len(set(positions)) == 15
    assert series.plane is Plane.AXIAL
    assert series.info.patient_name == "Test^Regression"
    assert not study.errors


def test_mosaic_orientation_folders_get_their_planes(datasets: Path) -> None:
    root = datasets / "dicom" / "siemens_epi_mosaic_orientation"
    study = load_study([root])
    assert not study.errors, study.errors
    expected = {"ax": Plane.AXIAL, "axmb": Plane.AXIAL, "cor": Plane.CORONAL,
                "sag": Plane.SAGITTAL}
    seen_syntaxes: set[str] = set()
    assert len(study.series) == 21  # ax 7, axmb 2, cor 6, sag 6
    for series in study.series:
        top = Path(series.source).relative_to(root).parts[0]
        assert series.plane is expected[top], series.source
        assert series.plane_source is PlaneSource.DICOM
        assert series.slices and all(float(s.raw.std()) > 0 for s in series.slices[:5])
        assert not [p for p in series.problems if p.severity is Severity.ERROR]
        seen_syntaxes.update(series.transfer_syntaxes)
    assert any("JPEG Lossless" in t for t in seen_syntaxes)
    assert any("JPEG 2000" in t for t in seen_syntaxes)


def test_mosaic_tiles_are_brain_slices_not_the_whole_mosaic(datasets: Path) -> None:
    folder = datasets / "dicom" / "siemens_epi_mosaic_orientation" / "ax" / "axasc35"
    (series,) = load_study([folder]).series
    assert len(series.slices) == 70  # 2 volumes x 35 tiles
    assert [v.count for v in series.volumes] == [35, 35]
    assert series.shape == (64, 64)
    middle = series.slices[17].image
    assert middle[24:40, 24:40].mean() > middle[:4, :4].mean()  # brain in the centre


def test_jpeg_lossless_and_jpeg2000_mosaics_match_in_content(datasets: Path) -> None:
    folder = datasets / "dicom" / "siemens_epi_mosaic_orientation" / "axmb"
    study = load_study([folder])
    assert len(study.series) == 2
    for series in study.series:
        stack = np.stack([s.raw for s in series.slices])
        assert stack.shape == (72, 86, 86)
        assert stack.max() > 100


def test_large_folder_previews_its_first_image_before_the_series(datasets: Path) -> None:
    from workstation.imaging import iter_study
    from workstation.imaging.study import Preview

    items = list(iter_study([datasets / "dicom" / "ge_epi_axial"], previews=True))
    kinds = [type(i).__name__ for i in items]
    assert kinds.index("Preview") < kinds.index("Series")
    preview = next(i for i in items if isinstance(i, Preview))
    series = next(i for i in items if isinstance(i, Series))
    assert preview.files == 151  # 150 images and the folder's README text file
    shown = next(s for s in series.slices if s.source == preview.slice.source)
    np.testing.assert_array_equal(shown.image, preview.slice.image)


def test_field_map_reads_the_first_magnitude_echo_and_not_the_phase(datasets: Path) -> None:
    (series,) = load_study([datasets / "normal" / "dicom" / "philips_gre_fieldmap_ax"]).series
    assert [(v.label, v.count) for v in series.volumes] == [
        ("magnitude, echo 1", 53), ("magnitude, echo 2", 53), ("phase, echo 1", 53),
        ("phase, echo 2", 53)]
    assert [v.assessed for v in series.volumes] == [True, False, False, False]
    assert series.volumes[2].not_assessed_reason == (
        "not assessed: not an anatomical image (phase)")
    assert series.assessed_indices == tuple(range(53))


def test_diffusion_series_reads_its_b0_volume(datasets: Path) -> None:
    (series,) = load_study([datasets / "normal" / "dicom" / "canon_dti_sag"]).series
    assert len(series.volumes) == 13 and {v.count for v in series.volumes} == {40}
    assert series.volumes[0].label == "b = 0" and series.volumes[0].assessed
    assert series.volumes[12].label == "b = 1500, direction 12"
    assert series.image_words(45) == "image 6 of 40, volume 2 (b = 1500, direction 1)"
