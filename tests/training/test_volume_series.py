"""NIfTI volumes cut into whole series per plane (training.volume_series), on made-up volumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workstation.imaging import Plane
from workstation.training.volume_series import (
    MIN_TUMOUR_AREA_MM2,
    VolumeCase,
    plane_series,
    volume_cases,
)

nib = pytest.importorskip("nibabel")


def write(path: Path, data: np.ndarray, zooms: tuple[float, float, float]) -> Path:
    nib.save(nib.Nifti1Image(data, np.diag([*zooms, 1.0])), path)
    return path


def test_every_slice_of_every_plane_with_square_pixels_and_tumour_areas(tmp_path: Path) -> None:
    volume = np.zeros((20, 16, 10), np.float32)  # x 1 mm, y 1 mm, z 2 mm
    volume[4:16, 3:13, 2:8] = 100.0
    mask = np.zeros(volume.shape, np.uint8)
    mask[8:14, 6:10, 4:6] = 2  # 6 x 4 mm in x-y, on z slices 4 and 5
    case = VolumeCase("volumes/made_up/t1c", write(tmp_path / "v.nii.gz", volume, (1, 1, 2)),
                      "glioma", write(tmp_path / "seg.nii.gz", mask, (1, 1, 2)))
    cuts = {c.series.plane: c for c in plane_series(case)}
    assert set(cuts) == {Plane.AXIAL, Plane.CORONAL, Plane.SAGITTAL}
    axial, coronal, sagittal = cuts[Plane.AXIAL], cuts[Plane.CORONAL], cuts[Plane.SAGITTAL]
    assert len(axial.series.slices) == 10 and axial.series.shape == (16, 20)
    assert len(coronal.series.slices) == 16 and coronal.series.shape == (20, 20)  # z 2 mm -> 20
    assert len(sagittal.series.slices) == 20 and sagittal.series.shape == (20, 16)
    np.testing.assert_allclose(axial.tumour_area_mm2[4:6], [24.0, 24.0])
    assert axial.tumour_area_mm2[:4].sum() == 0 and axial.tumour_area_mm2[6:].sum() == 0
    # a coronal slice through the lesion: 6 mm in x by 4 mm (2 slices of 2 mm) in z
    assert coronal.tumour_area_mm2.max() == pytest.approx(24.0)
    assert not axial.tumour_slices.any()  # 24 mm^2 is below the 1 cm^2 a tumour slice needs
    assert MIN_TUMOUR_AREA_MM2 == 100.0
    assert axial.clear_slices.sum() == 8
    positions = [s.position for s in axial.series.slices]
    assert positions == [2.0 * k for k in range(10)]
    assert all(float(s.image.min()) >= 0.0 and float(s.image.max()) <= 1.0
               for s in axial.series.slices)


def test_cases_are_the_healthy_heads_and_the_masked_gliomas(datasets: Path) -> None:
    cases = volume_cases(datasets)
    healthy = [c for c in cases if c.truth == "no_tumour"]
    tumour = [c for c in cases if c.truth == "glioma"]
    assert len(healthy) == 34 and all(c.mask is None for c in healthy)
    assert len(tumour) == 20 and all(c.mask is not None for c in tumour)  # 10 cases x 2
    assert not any("brats_gli_00001" in c.name for c in cases)  # no mask
