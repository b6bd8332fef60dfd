"""Splitting one series' images into volumes (imaging.volumes), on hand-made headers."""

from __future__ import annotations

import pytest

from workstation.imaging.volumes import ImageKind, VolumeHeader, image_kind, split_volumes


@pytest.mark.parametrize(("image_type", "kind"), [
    (["ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"], ImageKind.MAGNITUDE),
    (["ORIGINAL", "PRIMARY", "PHASE MAP", "P", "FFE"], ImageKind.PHASE),
    (["ORIGINAL", "PRIMARY", "P", "ND"], ImageKind.PHASE),
    (["ORIGINAL", "PRIMARY", "R", "ND"], ImageKind.REAL),
    (["ORIGINAL", "PRIMARY", "I", "ND"], ImageKind.IMAGINARY),
    (["DERIVED", "PRIMARY", "FIELD_MAP"], ImageKind.FIELD_MAP),
    (["DERIVED", "PRIMARY", "DIFFUSION", "ADC"], ImageKind.DERIVED_MAP),
    (["ORIGINAL", "PRIMARY", "EPI", "NONE"], ImageKind.MAGNITUDE),
    ([], ImageKind.MAGNITUDE),
])
def test_image_kind_from_image_type(image_type: list[str], kind: ImageKind) -> None:
    assert image_kind(image_type) is kind


def headers(positions: int, repeats: int, **fields: object) -> list[VolumeHeader]:
    """``repeats`` acquisitions of ``positions`` slices, given in position order."""
    out = []
    for p in range(positions):
        for r in range(repeats):
            out.append(VolumeHeader(position=float(p) * 3.0, order=(r * positions + p + 1,),
                                    **fields))  # type: ignore[arg-type]
    return out


def test_repeated_positions_become_time_points_in_acquisition_order() -> None:
    given = headers(4, 3)
    groups = split_volumes(given)
    assert [g.label for g in groups] == ["time point 1", "time point 2", "time point 3"]
    for r, group in enumerate(groups):
        assert [given[i].order[0] for i in group.members] == [r * 4 + p + 1 for p in range(4)]
        assert [given[i].position for i in group.members] == [0.0, 3.0, 6.0, 9.0]


def test_a_single_volume_has_no_label() -> None:
    (group,) = split_volumes(headers(5, 1))
    assert group.label == "" and group.members == (0, 1, 2, 3, 4) and group.anatomical


def test_diffusion_b0_first_then_directions() -> None:
    b0 = headers(3, 1, b_value=0.0)
    dwi = [VolumeHeader(position=float(p) * 3.0, order=(10 + d * 3 + p,), b_value=1000.0,
                        b_vector=vector)
           for d, vector in enumerate([(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)]) for p in range(3)]
    groups = split_volumes(dwi + b0)
    assert [g.label for g in groups] == ["b = 0", "b = 1000, direction 1",
                                         "b = 1000, direction 2"]
    assert all(len(g.members) == 3 for g in groups)


def test_diffusion_directions_without_vectors_are_numbered_repeats() -> None:
    groups = split_volumes(headers(3, 1, b_value=0.0) + headers(3, 2, b_value=1500.0))
    assert [g.label for g in groups] == ["b = 0", "b = 1500, direction 1",
                                         "b = 1500, direction 2"]


def test_field_map_magnitude_first_and_phase_not_anatomical() -> None:
    given = []
    for kind in (ImageKind.PHASE, ImageKind.MAGNITUDE):
        for echo in (2, 1):
            given += headers(3, 1, kind=kind, echo=echo)
    groups = split_volumes(given)
    assert [g.label for g in groups] == ["magnitude, echo 1", "magnitude, echo 2",
                                         "phase, echo 1", "phase, echo 2"]
    assert [g.anatomical for g in groups] == [True, True, False, False]


def test_temporal_position_identifier_names_time_points() -> None:
    groups = split_volumes(headers(2, 1, temporal=2) + headers(2, 1, temporal=1))
    assert [g.label for g in groups] == ["time point 1", "time point 2"]


def test_no_positions_keep_one_volume() -> None:
    given = [VolumeHeader(order=(i,)) for i in range(6)]
    (group,) = split_volumes(given)
    assert group.members == tuple(range(6))


def test_nothing_to_split() -> None:
    assert split_volumes([]) == []
