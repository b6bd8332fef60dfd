import math

import pytest

from workstation.imaging.geometry import (
    direction_letters,
    plane_from_orientation,
    position_along_normal,
)
from workstation.imaging.series import Plane


@pytest.mark.parametrize(
    ("orientation", "plane"),
    [
        ((1, 0, 0, 0, 1, 0), Plane.AXIAL),
        ((1, 0, 0, 0, 0, -1), Plane.CORONAL),
        ((0, 1, 0, 0, 0, -1), Plane.SAGITTAL),
    ],
)
def test_plane_from_orientation(orientation: tuple[float, ...], plane: Plane) -> None:
    found, obliquity = plane_from_orientation(orientation)
    assert found is plane
    assert obliquity == pytest.approx(0.0)


def test_oblique_axial_reports_its_angle() -> None:
    angle = math.radians(20)
    orientation = (1, 0, 0, 0, math.cos(angle), -math.sin(angle))
    plane, obliquity = plane_from_orientation(orientation)
    assert plane is Plane.AXIAL
    assert obliquity == pytest.approx(20.0, abs=1e-6)


@pytest.mark.parametrize("bad", [None, (1, 0, 0), (1, 0, 0, 1, 0, 0), (0, 0, 0, 0, 0, 0)])
def test_missing_or_broken_orientation_is_unknown(bad: tuple[float, ...] | None) -> None:
    assert plane_from_orientation(bad) == (Plane.UNKNOWN, None)


def test_position_along_normal_and_letters() -> None:
    assert position_along_normal((10, 20, 30), (1, 0, 0, 0, 1, 0)) == pytest.approx(30)
    assert direction_letters((1, 0, 0)) == "L"
    assert direction_letters((0, -1, 0)) == "A"
    assert direction_letters((0, 0.3, 0.9)) == "HP"
