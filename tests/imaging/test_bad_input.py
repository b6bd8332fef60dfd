"""Hostile and damaged input, as a fuzzing run of mutated files found it (issue: loader
boundary): every bad file becomes one plain Problem naming it, never an exception, a hang or
a silent blank, and the good files beside it load completely."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

from tests.dicom_factory import gradient, mr_dataset, write
from workstation.analysis.findings import ReasonKind, Verdict
from workstation.analysis.triage import series_verdict
from workstation.cli import main
from workstation.imaging import Severity, guard, load_study
from workstation.imaging import decode as decoding
from workstation.imaging.bounds import MAX_IMAGES_PER_FILE, MIN_TILE_SIDE
from workstation.imaging.series import BLANK_DISPLAY_WARNING

SLOW = 10.0  # seconds: far above what a refused file takes, far below a hang


# ------------------------------------------------------------------------- crafting
def one_file(folder: Path, name: str = "bad.dcm", pixels: np.ndarray | None = None,
             **kwargs) -> tuple[Dataset, Path]:  # type: ignore[no-untyped-def]
    ds = mr_dataset(gradient() if pixels is None else pixels, series_uid=generate_uid(),
                    instance=1, **kwargs)
    return ds, folder / name


def patched(path: Path, old: bytes, new: bytes) -> Path:
    data = path.read_bytes()
    assert data.count(old) == 1, f"{old!r} found {data.count(old)} times"
    path.write_bytes(data.replace(old, new))
    return path


def with_vr(path: Path, tag: tuple[int, int], vr: bytes) -> Path:
    """Rewrite the (explicit) VR of the first element ``tag`` on disk."""
    data = path.read_bytes()
    key = struct.pack("<HH", *tag)
    at = data.index(key)
    path.write_bytes(data[:at + 4] + vr + data[at + 6:])
    return path


def unknown_transfer_syntax(folder: Path) -> Path:
    ds, path = one_file(folder)
    write(ds, path)
    return patched(path, b"1.2.840.10008.1.2.1\x00", b"1.2.3.4.5.6.7.8.9.1\x00")


def transfer_syntax_as_us(folder: Path) -> Path:
    ds, path = one_file(folder)
    write(ds, path)
    return with_vr(path, (0x0002, 0x0010), b"US")


def rows_as_text(folder: Path) -> Path:
    ds, path = one_file(folder)
    write(ds, path)
    return patched(path, b"\x28\x00\x10\x00US\x02\x00\x20\x00", b"\x28\x00\x10\x00LO\x02\x00ab")


def unknown_vr_in_orientation(folder: Path) -> Path:  # read by the frame headers
    ds, path = one_file(folder)
    write(ds, path)
    return with_vr(path, (0x0020, 0x0037), b"ZZ")


def unknown_vr_in_series_uid(folder: Path) -> Path:  # read by the grouping
    ds, path = one_file(folder)
    write(ds, path)
    return with_vr(path, (0x0020, 0x000E), b"ZZ")


def unknown_vr_in_frame_group(folder: Path) -> Path:  # read per frame of an enhanced file
    pixels = np.stack([gradient(), gradient(offset=5)])
    ds, path = one_file(folder, pixels=gradient())
    ds.NumberOfFrames = 2
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    frames = []
    for k in range(2):
        position = Dataset()
        position.ImagePositionPatient = [0.0, 0.0, 5.0 * k]
        item = Dataset()
        item.PlanePositionSequence = DicomSequence([position])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    write(ds, path)
    return with_vr(path, (0x0020, 0x0032), b"ZZ")


def mosaic(folder: Path, vr: str, count: object, vr_on_disk: bytes | None = None) -> Path:
    ds, path = one_file(folder, pixels=gradient(64, 64))
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "MOSAIC"]
    ds.add_new((0x0019, 0x0010), "LO", "SIEMENS MR HEADER")
    ds.add_new((0x0019, 0x100A), vr, count)
    write(ds, path)
    return with_vr(path, (0x0019, 0x100A), vr_on_disk) if vr_on_disk else path


def mosaic_count_us_beyond_capacity(folder: Path) -> Path:
    return mosaic(folder, "US", 65535)


def mosaic_count_of_millions(folder: Path) -> Path:  # hung for minutes, then ran out of memory
    return mosaic(folder, "UL", 4_000_000)


def mosaic_count_unknown_vr(folder: Path) -> Path:
    return mosaic(folder, "US", 4, vr_on_disk=b"ZZ")


def millions_of_frames(folder: Path) -> Path:
    ds, path = one_file(folder, pixels=np.zeros((1, 1)))
    ds.NumberOfFrames = 3_000_000
    write(ds, path)
    return path


def frames_beyond_the_data(folder: Path) -> Path:
    ds, path = one_file(folder, pixels=np.zeros((1, 1)))
    ds.NumberOfFrames = MAX_IMAGES_PER_FILE - 1  # within the frame budget, 2 bytes of data
    write(ds, path)
    return path


def truncated_pixel_data(folder: Path) -> Path:
    ds, path = one_file(folder)
    write(ds, path)
    path.write_bytes(path.read_bytes()[:-500])
    return path


def _two_page_tiff(path: Path, width: int, height: int) -> Path:
    """A two-page TIFF whose second page's header claims ``width`` x ``height``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    first = Image.fromarray(np.arange(32 * 32, dtype=np.uint8).reshape(32, 32))
    second = Image.fromarray((np.arange(33 * 33) % 251).astype(np.uint8).reshape(33, 33))
    first.save(path, save_all=True, append_images=[second])
    data = bytearray(path.read_bytes())
    ifd = struct.unpack_from("<I", data, 4)[0]
    ifd = struct.unpack_from("<I", data, ifd + 2 + 12 * struct.unpack_from("<H", data, ifd)[0])[0]
    for k in range(struct.unpack_from("<H", data, ifd)[0]):
        at = ifd + 2 + 12 * k
        tag = struct.unpack_from("<H", data, at)[0]
        if tag in (256, 257):  # ImageWidth, ImageLength
            struct.pack_into("<HHII", data, at, tag, 4, 1, width if tag == 256 else height)
    path.write_bytes(bytes(data))
    return path


def tiff_page_of_no_size(folder: Path) -> Path:
    return _two_page_tiff(folder / "tiff" / "empty-page.tif", 0, 33)


def tiff_bomb_on_page_two(folder: Path) -> Path:
    return _two_page_tiff(folder / "tiff" / "bomb.tif", 16000, 16000)


def tiff_page_too_large(folder: Path) -> Path:
    return _two_page_tiff(folder / "tiff" / "huge.tif", 70000, 70000)


# builder, what the problem says
BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "unknown transfer syntax": (unknown_transfer_syntax, "is not a transfer syntax"),
    "transfer syntax as US": (transfer_syntax_as_us, "Transfer Syntax UID (0002,0010) is not"),
    "Rows as text": (rows_as_text, "the header's Rows ('ab') is not a whole number"),
    "unknown VR in orientation": (unknown_vr_in_orientation, "the DICOM header is damaged ("),
    "unknown VR in series UID": (unknown_vr_in_series_uid, "the DICOM header is damaged ("),
    "unknown VR in a frame group": (unknown_vr_in_frame_group, "the DICOM header is damaged"),
    "mosaic count US": (mosaic_count_us_beyond_capacity, "promises 65,535 images"),
    "mosaic count of millions": (mosaic_count_of_millions, "promises 4,000,000 images"),
    "mosaic count unknown VR": (mosaic_count_unknown_vr, "the DICOM header is damaged"),
    "millions of frames": (millions_of_frames, "promises 3,000,000 frames"),
    "frames beyond the data": (frames_beyond_the_data, "fewer than the"),
    "truncated pixel data": (truncated_pixel_data, "truncated"),
    "TIFF page of no size": (tiff_page_of_no_size, "page 2: the image size 0x33 is empty"),
    "TIFF bomb on page 2": (tiff_bomb_on_page_two, "page 2: the image size 16000x16000 is "
                                                   "far too large to open safely"),
    "TIFF page too large": (tiff_page_too_large, "page 2: the image size 70000x70000"),
}


def write_good_series(folder: Path, count: int = 4, uid: str = "1.2.826.0.1.99.1") -> None:
    for k in range(count):
        write(mr_dataset(gradient(offset=100 * k), series_uid=uid, instance=k + 1,
                         position=(0.0, 0.0, 5.0 * k)), folder / f"good{k}.dcm")


def signature(study) -> list[tuple[str, int, bytes]]:  # type: ignore[no-untyped-def]
    return [(s.source, len(s.slices), b"".join(x.raw.tobytes() for x in s.slices))
            for s in study.series]


# ---------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", list(BAD_FILES))
def test_each_bad_file_is_one_plain_problem(tmp_path: Path, name: str) -> None:
    build, expected = BAD_FILES[name]
    bad = build(tmp_path / "study")
    started = time.monotonic()
    study = load_study([tmp_path / "study"])
    assert time.monotonic() - started < SLOW
    assert not study.series
    (problem,) = study.problems
    assert problem.path == str(bad) and problem.severity is Severity.ERROR
    assert expected in problem.message, problem.message
    assert "Traceback" not in problem.message


def test_good_series_load_completely_beside_every_bad_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_good_series(tmp_path / "good" / "t1")
    write(mr_dataset(gradient(48, 40), series_uid="1.2.826.0.1.99.2", instance=1),
          tmp_path / "good" / "t2" / "only.dcm")
    alone = load_study([tmp_path / "good"])
    mixed = tmp_path / "mixed"
    write_good_series(mixed / "t1")
    write(mr_dataset(gradient(48, 40), series_uid="1.2.826.0.1.99.2", instance=1),
          mixed / "t2" / "only.dcm")
    bad = {build(mixed / "t1" if name.startswith("unknown VR in o") else mixed)
           for name, (build, _) in BAD_FILES.items()}
    bad.add(unknown_transfer_syntax(mixed / "t1"))  # beside the good files of a series
    study = load_study([mixed])
    assert [(len(s.slices)) for s in study.series] == [len(s.slices) for s in alone.series]
    assert [b for _, _, b in signature(study)] == [b for _, _, b in signature(alone)]
    assert sorted(p.path for p in study.errors) == sorted(str(p) for p in bad)
    assert main(["inspect", str(mixed)]) == 0
    out = capsys.readouterr()
    assert f"{len(bad)} file(s) could not be loaded" in out.out
    assert "Traceback" not in out.err


class FakePanic(BaseException):
    """What pyo3 raises for a Rust panic (pyo3_runtime.PanicException): no Exception."""


def test_a_decoder_panic_is_a_problem_and_the_rest_loads(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    write_good_series(tmp_path)
    real = decoding.decode

    def panicking(ds: Dataset) -> decoding.Decoded:
        if str(ds.get("InstanceNumber")) == "2":
            try:  # a real one where the RLE decoder has it: an empty segment
                from rle.rle import decode_segment

                decode_segment(b"")
            except Exception:  # pragma: no cover - a fixed decoder raises ValueError
                pass
            raise FakePanic("index out of bounds: the len is 0 but the index is 0")
        return real(ds)

    monkeypatch.setattr(decoding, "decode", panicking)
    study = load_study([tmp_path])
    (series,) = study.series
    assert len(series.slices) == 3
    (problem,) = study.errors
    assert problem.path.endswith("good1.dcm")
    assert problem.message.startswith("the image data could not be decoded (")
    assert "index out of bounds" in problem.message


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_stopping_is_never_swallowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     stop: type[BaseException]) -> None:
    write_good_series(tmp_path, count=1)

    def interrupted(ds: Dataset) -> decoding.Decoded:
        raise stop()

    monkeypatch.setattr(decoding, "decode", interrupted)
    with pytest.raises(stop):
        load_study([tmp_path])


def test_a_file_past_its_time_budget_is_a_problem(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    write_good_series(tmp_path, count=2)
    monkeypatch.setattr(guard, "FILE_TIME_BUDGET_S", -1.0)
    study = load_study([tmp_path])
    assert not study.series
    assert len(study.errors) == 2
    assert all("took longer than -1 s" in p.message for p in study.errors)


def test_uih_grid_count_beyond_its_picture_is_not_cut(tmp_path: Path) -> None:
    ds, path = one_file(tmp_path, pixels=gradient(48, 80))
    ds.Manufacturer = "UIH"
    ds.add_new((0x0065, 0x0010), "LO", "Image Private Header")
    ds.add_new((0x0065, 0x1050), "DS", "10000")  # 100 x 100 tiles of 0 x 0 pixels
    write(ds, path)
    started = time.monotonic()
    (series,) = load_study([tmp_path]).series
    assert time.monotonic() - started < SLOW
    (single,) = series.slices
    assert single.raw.shape == (48, 80)
    assert any("could not be read" in p.message for p in series.problems)


def test_mosaic_tiles_of_the_minimum_side_are_cut(tmp_path: Path) -> None:
    side = 64 // MIN_TILE_SIDE  # 16 x 16 tiles of 4 x 4 pixels fill the picture
    path = mosaic(tmp_path, "US", side * side)
    (series,) = load_study([path.parent]).series
    assert len(series.slices) == side * side
    assert {s.raw.shape for s in series.slices} == {(MIN_TILE_SIDE, MIN_TILE_SIDE)}


# ------------------------------------------------------------------------- blanks
@pytest.mark.parametrize(("kwargs", "where"), [
    ({"window": (1e300, 400.0)}, "lies below the window (center 1e+300, width 400)"),
    ({"window": (40.0, 80.0), "intercept": 1e6}, "lies above the window (center 40, width 80)"),
])
def test_a_window_that_shows_nothing_is_a_warning_and_not_assessed(
        tmp_path: Path, kwargs: dict[str, object], where: str) -> None:
    uid = generate_uid()
    for k in range(3):
        write(mr_dataset(gradient(offset=10 * k), series_uid=uid, instance=k + 1,
                         position=(0.0, 0.0, 5.0 * k), **kwargs), tmp_path / f"s{k}.dcm")
    (series,) = load_study([tmp_path]).series
    for image in series.slices:
        assert image.display_blank
        assert float(np.ptp(image.raw)) > 0 and float(np.ptp(image.image)) == 0
        (warning,) = [w for w in image.warnings if w.startswith(BLANK_DISPLAY_WARNING)]
        assert where in warning
    (note,) = [p for p in series.problems if p.message.startswith(BLANK_DISPLAY_WARNING)]
    assert note.severity is Severity.WARNING
    assert "(3 of 3 images, the first s0.dcm); the model does not assess them" in note.message

    from tests.analysis.test_triage import POLICY, prediction

    verdict = series_verdict(series, [prediction()] * 3, POLICY)
    assert verdict.verdict is Verdict.CANNOT_ASSESS
    assert {f.verdict for f in verdict.findings} == {Verdict.CANNOT_ASSESS}
    assert all(f.reason_kinds == (ReasonKind.BLANK,) for f in verdict.findings)
    assert all("the window leaves nothing visible" in f.review_reasons[0]
               for f in verdict.findings)


def test_a_visible_window_and_a_uniform_image_are_not_display_blank(tmp_path: Path) -> None:
    uid = generate_uid()
    write(mr_dataset(gradient(), series_uid=uid, instance=1, window=(500.0, 1000.0)),
          tmp_path / "a.dcm")
    write(mr_dataset(np.full((32, 32), 7), series_uid=uid, instance=2, window=(1e300, 400.0),
                     position=(0.0, 0.0, 5.0)), tmp_path / "b.dcm")
    (series,) = load_study([tmp_path]).series
    assert [s.display_blank for s in series.slices] == [False, False]
    assert not any(BLANK_DISPLAY_WARNING in p.message for p in series.problems)


# ------------------------------------------------------------------- series notes
@pytest.mark.parametrize("failure", ["truncated", "decode fails"])
def test_the_series_note_counts_only_the_slices_that_loaded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    """12 positions, and a bad 13th file repeating the first: one volume of 12, no note of
    "2 volumes of 1 or 11 slices"."""
    uid = generate_uid()
    write(mr_dataset(gradient(), series_uid=uid, instance=2, position=(0.0, 0.0, 0.0)),
          tmp_path / "a00.dcm")
    bad = tmp_path / "a00-copy.dcm"
    write(mr_dataset(gradient(offset=99), series_uid=uid, instance=1, position=(0.0, 0.0, 0.0)),
          bad)
    if failure == "truncated":
        bad.write_bytes(bad.read_bytes()[:-300])
    else:
        real = decoding.decode

        def failing(ds: Dataset) -> decoding.Decoded:
            if ds.InstanceNumber == 1:
                raise ValueError("bad stream")
            return real(ds)

        monkeypatch.setattr(decoding, "decode", failing)
    for k in range(1, 12):
        write(mr_dataset(gradient(offset=k), series_uid=uid, instance=k + 2,
                         position=(0.0, 0.0, 5.0 * k)), tmp_path / f"a{k:02d}.dcm")
    study = load_study([tmp_path])
    (series,) = study.series
    assert len(series.slices) == 12 and not series.is_multi_volume
    assert [int(s.raw[0, 1]) for s in series.slices] == [1] + [k + 1 for k in range(1, 12)]
    assert not any("volumes" in p.message for p in series.problems)
    (problem,) = study.errors
    assert problem.path == str(bad)
    if failure == "decode fails":
        assert problem.message == "the image data could not be decoded (bad stream)"
        assert problem in series.problems
