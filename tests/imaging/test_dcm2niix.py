"""Our DICOM reader against dcm2niix, on every real DICOM series of the shared datasets.

dcm2niix (C. Rorden) is the converter the neuroimaging world checks its DICOM geometry
against; the series here come from its own validation repositories. For each series this
module runs it (``-z n -b y``, options below), reads the NIfTI with nibabel and checks that
our reader found the same volumes (matched by label), the same slices in the same order at the
same positions, the same orientation and the same pixel values after rescale.

Skipped without the datasets (``datasets`` fixture) or without ``dcm2niix`` on PATH
(Debian/Ubuntu package ``dcm2niix``; ``.ci/run`` installs it when it can).

How dcm2niix lays out a NIfTI, relative to the DICOM slices:

* voxel (i, j, k) of a volume is column i of DICOM row ``rows - 1 - j`` of slice k: dcm2niix
  flips the rows, so its j axis runs opposite to the DICOM column direction and its voxel
  (0, 0, k) is the first pixel of the slice's *last* row; numpy's ``raw[row, col]`` is thus
  ``data[col, rows - 1 - row, k]``;
* the affine is in RAS (NIfTI), DICOM is LPS: x and y change sign;
* scl_slope / scl_inter carry the rescale; nibabel's ``get_fdata`` applies them.

Intentional differences, each handled explicitly below:

* ``-x i``: by default dcm2niix rotates a 3D acquisition (MRAcquisitionType 3D: here the
  enhanced MPRAGE and the Philips field map) to the nearest orthogonal axes, a lossless
  re-indexing of the voxels (checked in
  ``test_dcm2niix_default_rotation_of_a_3d_acquisition_only_reindexes_it``); we keep the
  slices as the scanner stored them, and ``-x i`` makes dcm2niix keep them too, so the
  comparison stays slice for slice.
* ``-p n``: by default dcm2niix writes Philips images in Philips' "floating point" scale
  (magnitude: displayed value / (RescaleSlope x private ScaleSlope 2005,100E); phase: radians),
  not in the values the standard Rescale Slope/Intercept give; our reader applies the standard
  rescale (PS3.3 C.11.1), as DICOM viewers do. ``-p n`` makes dcm2niix store the standard
  rescale; its default is checked in
  ``test_dcm2niix_default_philips_scaling_is_not_the_standard_rescale``.
* Siemens sagittal mosaics (``REVERSED_MOSAICS``): dcm2niix keeps a mosaic's tiles in the
  order they are stored, along the CSA header's slice normal, which for these sagittal series
  points the other way from the DICOM normal (row cosine x column cosine). Our reader orders
  every volume of every series along row x column, so a sagittal mosaic scrolls the same way as
  any other sagittal series (the Canon DTI, the MPRAGE). Each slice has the same position and
  pixels in both; only the order is opposite, and the test asserts exactly that.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pytest

from workstation.imaging import Series, Study, Volume, load_study
from workstation.imaging.dicom import looks_like_dicom

DCM2NIIX = shutil.which("dcm2niix")
# -z n: plain .nii; -b y: JSON sidecar; -f %s_%e: series number and echo in the name (dcm2niix
# adds _ph for phase images); -x i and -p n: see the module docstring; -l o: original data type;
# -i n: convert derived images too. Given explicitly so a ~/.dcm2nii.ini cannot change them.
OPTIONS = ("-z", "n", "-b", "y", "-f", "%s_%e", "-x", "i", "-p", "n", "-l", "o", "-i", "n")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
POSITION_MM = 0.01  # slice positions and image positions agree within this (mm)
AFFINE_TOLERANCE = 1e-3  # NIfTI affine (float32 in the file) against ours
Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Case:
    """One real series: its folder (relative to the datasets folder) and its shape."""

    folder: str
    volumes: int
    slices: int  # in each volume
    reversed_slices: bool = False  # dcm2niix's k runs opposite to our order (see docstring)


MOSAICS = "dicom/siemens_epi_mosaic_orientation"
REVERSED_MOSAICS = {f"{MOSAICS}/sag/sag{order}{n}" for order in ("asc", "desc", "int")
                    for n in (35, 36)}
CASES = [
    Case("dicom/ge_epi_axial", 10, 15),
    *(Case(f"dicom/siemens_epi_axial/mr_000{n}", 2, 5) for n in (3, 4, 5, 6)),
    *(Case(f"{MOSAICS}/{plane}/{plane}{order}{n}", 2, n,
           reversed_slices=f"{MOSAICS}/{plane}/{plane}{order}{n}" in REVERSED_MOSAICS)
      for plane in ("ax", "cor", "sag") for order in ("asc", "desc", "int") for n in (35, 36)),
    Case(f"{MOSAICS}/ax/axasc36b", 2, 36),
    Case(f"{MOSAICS}/axmb/AxAsc36mb2a", 2, 36),
    Case(f"{MOSAICS}/axmb/AxInt36mb", 2, 36),
    Case("normal/dicom/canon_dti_sag", 13, 40),
    Case("normal/dicom/ge_se_epi_fieldmap_ax", 4, 60),
    Case("normal/dicom/philips_gre_fieldmap_ax", 4, 53),
    Case("normal/dicom/siemens_t1_mprage_sag_enhanced", 1, 96),
]


# ------------------------------------------------------------------------------ dcm2niix
def run_dcm2niix(folder: Path, out: Path, options: tuple[str, ...] = OPTIONS) -> Path:
    if DCM2NIIX is None:
        pytest.skip("dcm2niix is not on PATH (install the dcm2niix package to compare the "
                    "reader with it)")
    out.mkdir(parents=True)
    done = subprocess.run([DCM2NIIX, *options, "-o", str(out), str(folder)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"dcm2niix failed on {folder}:\n{done.stdout}{done.stderr}"
    return out


def without(option: str) -> tuple[str, ...]:
    """OPTIONS less ``option`` and its value: dcm2niix's default for it."""
    index = OPTIONS.index(option)
    return OPTIONS[:index] + OPTIONS[index + 2:]


def load_nifti(path: Path) -> nib.Nifti1Image:
    image = nib.load(path)
    assert isinstance(image, nib.Nifti1Image), path
    return image


@dataclass(frozen=True)
class NiftiVolume:
    """One 3D volume written by dcm2niix: file, index t along its 4th axis, and label."""

    label: str
    file: str
    t: int
    affine: Array  # RAS, voxel (i, j, k) -> mm
    data: Array  # (columns, rows flipped, slices), after scl_slope / scl_inter


_NAME = re.compile(r"(?P<series>\d+)_(?P<echo>\d+)(?P<phase>_ph)?\.nii")


def nifti_volumes(out: Path, series_number: int | None) -> list[NiftiVolume]:
    """dcm2niix's volumes, each labelled in our reader's words from what dcm2niix says of
    it: ``_ph`` = phase, the echo number of the name, b-values from ``.bval``, else the 4th
    axis as time points. As in our labels, a part is named only when it varies."""
    files = sorted(out.glob("*.nii"))
    parsed = []
    for path in files:
        match = _NAME.fullmatch(path.name)
        assert match, f"unexpected dcm2niix output {path.name} (another suffix: another split?)"
        assert int(match["series"]) == series_number, path.name
        sidecar = json.loads(path.with_suffix(".json").read_text())
        echo = int(match["echo"])
        assert sidecar.get("EchoNumber", 1) == echo, path.name
        parsed.append((path, "phase" if match["phase"] else "magnitude", echo))
    kinds_vary = len({kind for _, kind, _ in parsed}) > 1
    echoes_vary = len({echo for _, _, echo in parsed}) > 1

    volumes = []
    for path, kind, echo in sorted(parsed, key=lambda p: (p[1] != "magnitude", p[2])):
        image = load_nifti(path)
        data: Array = np.asarray(image.get_fdata(dtype=np.float64), dtype=np.float64)
        if data.ndim == 3:
            data = data[..., np.newaxis]
        count = data.shape[3]
        base = []
        if kinds_vary or kind != "magnitude":
            base.append(kind)
        if echoes_vary:
            base.append(f"echo {echo}")
        bval = path.with_suffix(".bval")
        b_values = [float(b) for b in bval.read_text().split()] if bval.exists() else None
        for t in range(count):
            parts = list(base)
            if b_values is not None:
                assert len(b_values) == count
                b = b_values[t]
                parts.append(f"b = {b:g}")
                same_b = [u for u in range(count) if b_values[u] == b]
                if len(same_b) > 1:
                    word = "direction" if b > 0 else "repeat"
                    parts.append(f"{word} {same_b.index(t) + 1}")
            elif count > 1:
                parts.append(f"time point {t + 1}")
            volumes.append(NiftiVolume(", ".join(parts), path.name, t,
                                       np.asarray(image.affine, dtype=np.float64),
                                       data[..., t]))
    return volumes


# ----------------------------------------------------------------------------- fixtures
@functools.cache
def read_study(folder: Path) -> Study:
    """Our reader's study of one series folder (read once: a Study is immutable)."""
    return load_study([folder])


@dataclass(frozen=True)
class Pair:
    case: Case
    series: Series
    niftis: list[NiftiVolume]  # in dcm2niix's order (magnitude, echo, then t)

    def matched(self) -> Iterator[tuple[Volume, NiftiVolume]]:
        """Our volumes with dcm2niix's, matched by label."""
        ours = {v.label: v for v in self.series.volumes}
        for nifti in self.niftis:
            assert nifti.label in ours, (nifti.label, sorted(ours))
            yield ours[nifti.label], nifti

    def slices_in_nifti_order(self, volume: Volume) -> list[int]:
        """Indices into ``series.slices`` of the volume's slices in dcm2niix's k order."""
        indices = list(range(volume.start, volume.stop))
        return indices[::-1] if self.case.reversed_slices else indices


@pytest.fixture(scope="module")
def convert(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """dcm2niix's output folder for a series folder, converted once per module."""
    cache: dict[Path, Path] = {}

    def converted(folder: Path) -> Path:
        if folder not in cache:
            cache[folder] = run_dcm2niix(folder, tmp_path_factory.mktemp("dcm2niix") / "out")
        return cache[folder]

    return converted


@pytest.fixture(scope="module", params=CASES, ids=[c.folder.split("/", 1)[1] for c in CASES])
def pair(request: pytest.FixtureRequest, datasets: Path,
         convert: Callable[[Path], Path]) -> Pair:
    case: Case = request.param
    folder = datasets / case.folder
    assert folder.is_dir(), f"{folder} is missing from the datasets"
    out = convert(folder)
    study = read_study(folder)
    assert not study.errors, study.errors
    (series,) = study.series
    return Pair(case, series, nifti_volumes(out, series.info.series_number))


# -------------------------------------------------------------------------------- tests
def test_the_cases_are_every_dicom_series_of_the_datasets(datasets: Path) -> None:
    found = set()
    for top in (datasets / "dicom", datasets / "normal" / "dicom"):
        for folder in [top, *top.rglob("*")]:
            if folder.is_dir() and any(f.is_file() and looks_like_dicom(f)
                                       for f in folder.iterdir()):
                found.add(folder.relative_to(datasets).as_posix())
    assert found == {c.folder for c in CASES}


def test_same_volumes_with_the_same_slice_counts(pair: Pair) -> None:
    series, case = pair.series, pair.case
    assert [v.count for v in series.volumes] == [case.slices] * case.volumes
    assert len(pair.niftis) == case.volumes
    assert sorted(n.label for n in pair.niftis) == sorted(v.label for v in series.volumes)
    for volume, nifti in pair.matched():
        rows, cols = series.shape or (0, 0)
        assert nifti.data.shape == (cols, rows, volume.count), (volume.label, nifti.file)


def test_same_slice_order_and_positions(pair: Pair) -> None:
    series = pair.series
    for volume, nifti in pair.matched():
        ours = [series.slices[i] for i in range(volume.start, volume.stop)]
        positions = [s.position for s in ours]
        assert None not in positions
        assert positions == sorted(positions), volume.label  # type: ignore[type-var]
        lps = LPS_TO_RAS @ nifti.affine
        rows = ours[0].shape[0]
        normal = np.cross(ours[0].orientation[:3], ours[0].orientation[3:])  # type: ignore[index]
        # dcm2niix's slice axis along our normal: the same way, except the reversed mosaics
        along = float(np.dot(lps[:3, 2], normal))
        assert (along < 0) if pair.case.reversed_slices else (along > 0), volume.label
        for k, index in enumerate(pair.slices_in_nifti_order(volume)):
            ours_slice = series.slices[index]
            first_pixel = (lps @ [0.0, rows - 1.0, k, 1.0])[:3]  # DICOM row 0, column 0
            assert ours_slice.image_position is not None
            np.testing.assert_allclose(first_pixel, ours_slice.image_position, rtol=0,
                                       atol=POSITION_MM, err_msg=f"{volume.label} k={k}")
            assert float(np.dot(first_pixel, normal)) == pytest.approx(
                ours_slice.position, abs=POSITION_MM), f"{volume.label} k={k}"


def our_affine(pair: Pair, volume: Volume) -> Array:
    """The NIfTI affine dcm2niix should write, from our slices' geometry (RAS)."""
    indices = pair.slices_in_nifti_order(volume)
    first, last = pair.series.slices[indices[0]], pair.series.slices[indices[-1]]
    assert first.orientation is not None and pair.series.info.pixel_spacing is not None
    row_cosine = np.asarray(first.orientation[:3])  # along a row: columns increase
    column_cosine = np.asarray(first.orientation[3:])  # down a column: rows increase
    row_spacing, column_spacing = pair.series.info.pixel_spacing
    rows = first.shape[0]
    start = np.asarray(first.image_position)
    step = (np.asarray(last.image_position) - start) / (len(indices) - 1)
    lps = np.eye(4)
    lps[:3, 0] = column_spacing * row_cosine  # i: the next column
    lps[:3, 1] = -row_spacing * column_cosine  # j: the row above (dcm2niix's row flip)
    lps[:3, 2] = step  # k: the next slice in dcm2niix's order
    lps[:3, 3] = start + (rows - 1) * row_spacing * column_cosine  # (0, 0, k): last row
    return LPS_TO_RAS @ lps


def test_same_orientation(pair: Pair) -> None:
    series = pair.series
    for volume, nifti in pair.matched():
        orientations = {series.slices[i].orientation for i in range(volume.start, volume.stop)}
        assert len(orientations) == 1, volume.label
        np.testing.assert_allclose(nifti.affine, our_affine(pair, volume), rtol=0,
                                   atol=AFFINE_TOLERANCE, err_msg=volume.label)


def test_same_pixel_values_after_rescale(pair: Pair) -> None:
    for volume, nifti in pair.matched():
        for k, index in enumerate(pair.slices_in_nifti_order(volume)):
            raw = pair.series.slices[index].raw
            # i = column, j = flipped row: back to numpy rows x columns
            theirs = nifti.data[:, ::-1, k].T
            # float32 rounding of slope x value + intercept (one stored step is >= 1 unit)
            np.testing.assert_allclose(raw, theirs, rtol=1e-6, atol=1e-3,
                                       err_msg=f"{volume.label} k={k} ({nifti.file})")


# ------------------------------------------------------------- labels and the defaults
def _series(datasets: Path, folder: str) -> Series:
    (series,) = read_study(datasets / folder).series
    return series


def test_canon_dti_volumes_are_b0_then_the_directions(datasets: Path) -> None:
    series = _series(datasets, "normal/dicom/canon_dti_sag")
    assert [v.label for v in series.volumes] == ["b = 0"] + [
        f"b = 1500, direction {n}" for n in range(1, 13)]
    assert [v.assessed for v in series.volumes] == [True] + [False] * 12


def test_philips_field_map_volumes_are_magnitude_then_phase_by_echo(datasets: Path) -> None:
    series = _series(datasets, "normal/dicom/philips_gre_fieldmap_ax")
    assert [v.label for v in series.volumes] == [
        "magnitude, echo 1", "magnitude, echo 2", "phase, echo 1", "phase, echo 2"]
    assert [v.anatomical for v in series.volumes] == [True, True, False, False]
    assert [v.assessed for v in series.volumes] == [True, False, False, False]


def test_single_volume_and_time_series_labels(datasets: Path) -> None:
    mprage = _series(datasets, "normal/dicom/siemens_t1_mprage_sag_enhanced")
    assert [(v.label, v.count, v.assessed) for v in mprage.volumes] == [("", 96, True)]
    field_map = _series(datasets, "normal/dicom/ge_se_epi_fieldmap_ax")
    assert [v.label for v in field_map.volumes] == [f"time point {n}" for n in range(1, 5)]
    mosaic = _series(datasets, f"{MOSAICS}/sag/sagint36")
    assert [v.label for v in mosaic.volumes] == ["time point 1", "time point 2"]


@pytest.mark.parametrize(("folder", "kept_shape", "rotated_shape"), [
    ("normal/dicom/siemens_t1_mprage_sag_enhanced", (128, 128, 96), (96, 128, 128)),
    ("normal/dicom/philips_gre_fieldmap_ax", (80, 80, 53), (80, 80, 53)),  # i flipped
])
def test_dcm2niix_default_rotation_of_a_3d_acquisition_only_reindexes_it(
        datasets: Path, convert: Callable[[Path], Path], tmp_path: Path, folder: str,
        kept_shape: tuple[int, ...], rotated_shape: tuple[int, ...]) -> None:
    """Why ``-x i``: both series are 3D acquisitions (MRAcquisitionType 3D); dcm2niix's
    default output is the same voxels, re-indexed to the nearest orthogonal axes."""
    kept = sorted(convert(datasets / folder).glob("*.nii"))
    out = run_dcm2niix(datasets / folder, tmp_path / "default", without("-x"))
    assert [p.name for p in sorted(out.glob("*.nii"))] == [p.name for p in kept]
    orientations = nib.orientations
    for path in kept:
        kept_image, rotated_image = load_nifti(path), load_nifti(out / path.name)
        assert (kept_image.shape, rotated_image.shape) == (kept_shape, rotated_shape)
        transform = orientations.ornt_transform(
            orientations.io_orientation(kept_image.affine),
            orientations.io_orientation(rotated_image.affine))
        assert not np.array_equal(transform, [[0, 1], [1, 1], [2, 1]])  # not the identity
        reindexed = orientations.apply_orientation(kept_image.get_fdata(), transform)
        np.testing.assert_array_equal(reindexed, rotated_image.get_fdata(), err_msg=path.name)
        affine = kept_image.affine @ orientations.inv_ornt_aff(transform, kept_image.shape)
        np.testing.assert_allclose(affine, rotated_image.affine, rtol=0, atol=AFFINE_TOLERANCE,
                                   err_msg=path.name)


def test_dcm2niix_default_philips_scaling_is_not_the_standard_rescale(
        datasets: Path, tmp_path: Path) -> None:
    """Why ``-p n``: by default dcm2niix writes the magnitude in Philips' floating-point
    scale, value / (RescaleSlope x ScaleSlope 2005,100E) as its sidecar reports them, and the
    phase in radians. Our reader gives the standard rescale's values: for this phase map its
    Real World Value Mapping says milliradians (-3142..3142)."""
    folder = datasets / "normal/dicom/philips_gre_fieldmap_ax"
    series = _series(datasets, "normal/dicom/philips_gre_fieldmap_ax")
    out = run_dcm2niix(folder, tmp_path / "default", without("-p"))
    ours = {v.label: v for v in series.volumes}
    for nifti in nifti_volumes(out, series.info.series_number):
        volume = ours[nifti.label]
        raw = np.stack([series.slices[i].raw for i in range(volume.start, volume.stop)],
                       axis=-1).astype(np.float64)  # rows x columns x slices
        theirs = nifti.data[:, ::-1, :].transpose(1, 0, 2)
        if nifti.label.startswith("phase"):
            assert float(np.abs(raw).max()) == pytest.approx(3142, abs=2)
            assert float(np.abs(theirs).max()) == pytest.approx(np.pi, abs=2e-3)
            np.testing.assert_allclose(theirs, raw / 1000, rtol=0, atol=1e-3,
                                       err_msg=nifti.label)
        else:
            sidecar = json.loads((out / nifti.file).with_suffix(".json").read_text())
            scale = sidecar["PhilipsRescaleSlope"] * sidecar["PhilipsScaleSlope"]
            assert scale != pytest.approx(1)
            np.testing.assert_allclose(theirs, raw / scale, rtol=1e-5,
                                       atol=1e-6 * float(np.abs(theirs).max()),
                                       err_msg=nifti.label)
