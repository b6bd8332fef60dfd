"""Inputs for the loader: byte-level and structure-aware mutations of the seed corpus.

Every decision goes through a ``Chooser`` so that the same generators serve Hypothesis
(``HypothesisChooser``: the short test in the suite, reproducible and shrinkable) and the
long run (``RandomChooser``: cheap, one ``random.Random`` per job).
"""

from __future__ import annotations

import io
import random
import struct
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from tests.fuzz import seeds as seed_corpus

T = TypeVar("T")


# ----------------------------------------------------------------------------- choosers
class Chooser:
    def int(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def bytes(self, max_size: int) -> bytes:
        raise NotImplementedError

    def choice(self, items: Sequence[T]) -> T:
        return items[self.int(0, len(items) - 1)]

    def chance(self, p: float) -> bool:
        return self.int(0, 999) < int(p * 1000)


class RandomChooser(Chooser):
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def bytes(self, max_size: int) -> bytes:
        return self.rng.randbytes(self.rng.randint(0, max_size))


class HypothesisChooser(Chooser):
    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self.data = data
        self.st = st

    def int(self, lo: int, hi: int) -> int:
        return int(self.data.draw(self.st.integers(lo, hi)))

    def bytes(self, max_size: int) -> bytes:
        return bytes(self.data.draw(self.st.binary(max_size=max_size)))


# ---------------------------------------------------------------------------------- case
@dataclass
class Case:
    """The files of one execution (name -> content) and how they were made."""

    files: dict[str, bytes]
    good: str  # "dicom" or "raster": which good file is put beside them
    as_files: bool = False  # pass each path to load_study instead of the folder
    mutations: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.files.values())


INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE)
INTERESTING_INTS = (0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 1023,
                    4096, 16383, 16384, 16385, 32767, 32768, 65535, 65536, 2**31 - 1,
                    2**31, 2**32 - 1)


# ------------------------------------------------------------------------- byte level
def _position(ch: Chooser, size: int) -> int:
    if size == 0:
        return 0
    if ch.chance(0.6):  # headers live at the start; most bytes of a file are pixels
        return ch.int(0, min(size, 2048) - 1)
    return ch.int(0, size - 1)


def mutate_bytes(data: bytes, ch: Chooser, log: list[str], rounds: int | None = None) -> bytes:
    buf = bytearray(data)
    for _ in range(rounds if rounds is not None else ch.int(1, 4)):
        op = ch.int(0, 7)
        if op == 0 and buf:
            pos = _position(ch, len(buf))
            buf[pos] ^= 1 << ch.int(0, 7)
            log.append(f"bytes: flip bit at {pos}")
        elif op == 1 and buf:
            pos = _position(ch, len(buf))
            buf[pos] = ch.choice(INTERESTING_BYTES)
            log.append(f"bytes: set byte {pos}")
        elif op == 2 and len(buf) > 4:
            pos = _position(ch, len(buf) - 4)
            fmt = ch.choice(("<H", ">H", "<I", ">I"))
            value = ch.choice(INTERESTING_INTS) & (0xFFFF if fmt.endswith("H") else 0xFFFFFFFF)
            struct.pack_into(fmt, buf, pos, value)
            log.append(f"bytes: {fmt} {value} at {pos}")
        elif op == 3:
            pos = _position(ch, len(buf) + 1) if buf else 0
            chunk = ch.bytes(64)
            buf[pos:pos] = chunk
            log.append(f"bytes: insert {len(chunk)} at {pos}")
        elif op == 4 and buf:
            pos = _position(ch, len(buf))
            length = ch.int(1, 256)
            del buf[pos:pos + length]
            log.append(f"bytes: delete {length} at {pos}")
        elif op == 5 and buf:
            cut = ch.int(0, len(buf) - 1) if ch.chance(0.5) else _position(ch, len(buf))
            del buf[cut:]
            log.append(f"bytes: truncate at {cut}")
        elif op == 6 and len(buf) > 8:
            pos = _position(ch, len(buf))
            length = ch.int(1, 128)
            chunk = bytes(buf[pos:pos + length])
            dest = _position(ch, len(buf))
            buf[dest:dest] = chunk
            log.append(f"bytes: duplicate {len(chunk)} from {pos} to {dest}")
        elif op == 7 and len(buf) > 8:
            pos = _position(ch, len(buf))
            length = ch.int(1, 64)
            buf[pos:pos + length] = bytes([ch.choice(INTERESTING_BYTES)]) * length
            log.append(f"bytes: fill {length} at {pos}")
    return bytes(buf)


# ------------------------------------------------------------------------ DICOM structure
def _pydicom() -> Any:
    import pydicom
    from pydicom import config

    config.settings.writing_validation_mode = config.IGNORE
    config.settings.reading_validation_mode = config.IGNORE
    return pydicom


TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.100",
    "1.2.3.4", "", "1.2.840.10008.1.2.4.90.1", "1.2.840.10008.1.2.1.98",
)
PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL",
                "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420", "", "monochrome2",
                " MONOCHROME1 ", "XYZ", "MONOCHROME3", "ARGB", "CMYK", "HSV")
ODD_NUMBERS = ("0", "-0", "1", "-1", "2", "3", "0.5", "1e-38", "-1e-38", "1e38", "-1e38",
               "1e308", "1e400", "nan", "NaN", "inf", "-inf", "", " ", "abc", "1\\2\\3",
               "\\", "4096", "-32768", "65535", "2147483648", "-2147483649", "9" * 16,
               "1.5e", "+", "0x10", "1,5")
ODD_INTS = ("0", "-1", "1", "2", "3", "4", "16", "100", "1000", "99999", "2147483647",
            "2147483648", "-2147483648", "1e3", "3.5", "", " ", "abc", "2\\3", "00000001")
IMAGE_TYPES = ("ORIGINAL\\PRIMARY\\M\\ND\\MOSAIC", "DERIVED\\PRIMARY\\MOSAIC",
               "ORIGINAL\\PRIMARY\\P\\ND", "DERIVED\\PRIMARY\\PHASE", "ORIGINAL\\PRIMARY\\REAL",
               "DERIVED\\SECONDARY\\DIFFUSION\\ADC", "ORIGINAL\\PRIMARY\\FIELD_MAP",
               "", "\\\\\\", "MOSAIC", "ORIGINAL\\PRIMARY\\LOCALIZER", "X" * 64)
UIDS = ("1.2.3", "", "0", "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.1.3.10",
        "1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.88.11",
        "1.2.840.10008.5.1.4.1.1.481.2")


def _tag(keyword_or_tag: Any) -> Any:
    from pydicom.tag import Tag

    return Tag(keyword_or_tag)


def _set_raw(ds: Any, tag: Any, vr: str, value: bytes) -> None:
    """Put an element with exactly these value bytes (written as they are)."""
    from pydicom.dataelem import RawDataElement

    if len(value) % 2:
        value += b" " if vr not in ("OB", "UN", "US", "SS", "UL", "SL", "FL", "FD") else b"\0"
    tag = _tag(tag)
    ds._dict[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)


def _set_text(ds: Any, keyword: str, vr: str, text: str) -> None:
    _set_raw(ds, _tag(keyword), vr, text.encode("latin-1", "replace"))


def _set_binary(ds: Any, keyword: Any, fmt: str, values: Sequence[int | float], vr: str) -> None:
    _set_raw(ds, _tag(keyword), vr, struct.pack("<" + fmt * len(values), *values))


def _int_value(ds: Any, keyword: str, default: int) -> int:
    try:
        return int(ds.get(keyword, default))
    except Exception:
        return default


def op_dimension(ds: Any, ch: Chooser) -> str:
    keyword = ch.choice(("Rows", "Columns"))
    orig = _int_value(ds, keyword, 64)
    value = ch.choice((0, 1, 2, 3, 7, 255, 256, 4096, 16383, 16384, 16385, 32768, 65535,
                       orig * 2, orig // 2, orig + 1, max(orig - 1, 0), orig * 3))
    if ch.chance(0.15):
        raw = ch.choice((b"", b"\x01", b"\x00\x00\x00\x01", b"\xff\xff\xff\xff"))
        _set_raw(ds, _tag(keyword), ch.choice(("US", "UN", "SS", "UL")), raw)
        return f"{keyword}: raw {raw!r}"
    if ch.chance(0.2):
        vr = ch.choice(("SS", "UL", "DS", "IS", "OB"))
        if vr in ("DS", "IS"):
            _set_text(ds, keyword, vr, ch.choice(ODD_INTS))
        elif vr == "OB":
            _set_raw(ds, _tag(keyword), "OB", ch.bytes(8))
        else:
            _set_binary(ds, keyword, "h" if vr == "SS" else "I", [value % 32768], vr)
        return f"{keyword}: VR {vr}"
    _set_binary(ds, keyword, "H", [value & 0xFFFF], "US")
    return f"{keyword} = {value}"


def op_frames(ds: Any, ch: Chooser) -> str:
    text = ch.choice((*ODD_INTS, str(_int_value(ds, "NumberOfFrames", 1) * 2), "65535"))
    _set_text(ds, "NumberOfFrames", "IS", text)
    return f"NumberOfFrames = {text!r}"


def op_bits(ds: Any, ch: Chooser) -> str:
    keyword = ch.choice(("BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                         "SamplesPerPixel", "PlanarConfiguration"))
    value = ch.choice((0, 1, 2, 3, 4, 7, 8, 12, 15, 16, 17, 24, 31, 32, 48, 64, 255, 65535))
    _set_binary(ds, keyword, "H", [value], "US")
    return f"{keyword} = {value}"


def op_photometric(ds: Any, ch: Chooser) -> str:
    value = ch.choice(PHOTOMETRICS)
    _set_text(ds, "PhotometricInterpretation", "CS", value)
    return f"PhotometricInterpretation = {value!r}"


def op_transfer_syntax(ds: Any, ch: Chooser) -> str:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID

    value = ch.choice(TRANSFER_SYNTAXES)
    if not hasattr(ds, "file_meta") or ds.file_meta is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(value)
    return f"TransferSyntaxUID = {value!r} (data not re-encoded)"


def op_window(ds: Any, ch: Chooser) -> str:
    keyword = ch.choice(("WindowCenter", "WindowWidth", "VOILUTFunction"))
    if keyword == "VOILUTFunction":
        value = ch.choice(("LINEAR", "LINEAR_EXACT", "SIGMOID", "", "linear", "CUBIC", "\\"))
        _set_text(ds, keyword, "CS", value)
    else:
        value = ch.choice(ODD_NUMBERS)
        _set_text(ds, keyword, "DS", value)
    return f"{keyword} = {value!r}"


def op_rescale(ds: Any, ch: Chooser) -> str:
    keyword = ch.choice(("RescaleIntercept", "RescaleSlope"))
    value = ch.choice(ODD_NUMBERS)
    _set_text(ds, keyword, "DS", value)
    return f"{keyword} = {value!r}"


def op_image_type(ds: Any, ch: Chooser) -> str:
    value = ch.choice(IMAGE_TYPES)
    _set_text(ds, "ImageType", "CS", value)
    return f"ImageType = {value!r}"


def op_mosaic(ds: Any, ch: Chooser) -> str:
    """Siemens NumberOfImagesInMosaic (0019,100A), usually with ImageType MOSAIC."""
    if ch.chance(0.8):
        _set_text(ds, "ImageType", "CS", "ORIGINAL\\PRIMARY\\M\\ND\\MOSAIC")
    if ch.chance(0.8):
        _set_raw(ds, (0x0019, 0x0010), "LO", b"SIEMENS MR HEADER")
    count = ch.choice((0, 1, 2, 3, 4, 5, 9, 16, 36, 64, 100, 1000, 4096, 65535))
    form = ch.int(0, 3)
    if form == 0:
        _set_binary(ds, (0x0019, 0x100A), "H", [count], "US")
    elif form == 1:
        _set_raw(ds, (0x0019, 0x100A), "UN", struct.pack("<H", count))
    elif form == 2:
        _set_raw(ds, (0x0019, 0x100A), "UN", ch.bytes(6))
    else:
        _set_text(ds, (0x0019, 0x100A), "IS", ch.choice(ODD_INTS))  # type: ignore[arg-type]
    if ch.chance(0.3):  # a CSA image header, damaged
        _set_raw(ds, (0x0029, 0x0010), "LO", b"SIEMENS CSA HEADER")
        _set_raw(ds, (0x0029, 0x1010), "OB", b"SV10\x04\x03\x02\x01" + ch.bytes(200))
    return f"mosaic: count {count} form {form}"


PRIVATE_TAGS = ((0x0043, 0x1039), (0x0029, 0x1010), (0x0029, 0x1020), (0x0019, 0x100A),
                (0x0065, 0x1050), (0x0065, 0x1051), (0x0065, 0x0010), (0x0019, 0x0010),
                (0x0029, 0x0010), (0x0011, 0x1001), (0x7FE1, 0x1010))


def op_private(ds: Any, ch: Chooser) -> str:
    tag = ch.choice(PRIVATE_TAGS)
    if ch.chance(0.3):
        tag = (ch.choice((0x0009, 0x0019, 0x0029, 0x0043, 0x0065, 0x7FDF)), ch.int(0x10, 0x10FF))
    if tag == (0x0065, 0x0010):
        _set_raw(ds, tag, "LO", ch.choice((b"Image Private Header", b"", b"UIH")))
    vr = ch.choice(("UN", "OB", "DS", "IS", "LO", "SQ"))
    if vr == "DS":
        _set_raw(ds, tag, vr, ch.choice(ODD_NUMBERS).encode())
    elif vr == "SQ":
        _set_raw(ds, tag, "UN", b"\xfe\xff\x00\xe0" + ch.bytes(24))
    else:
        _set_raw(ds, tag, vr, ch.bytes(64))
    return f"private ({tag[0]:04X},{tag[1]:04X}) {vr}"


def op_geometry(ds: Any, ch: Chooser) -> str:
    keyword = ch.choice(("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                         "SliceThickness", "InstanceNumber", "SpacingBetweenSlices",
                         "EchoNumbers", "DiffusionBValue", "AcquisitionNumber",
                         "TemporalPositionIdentifier"))
    value = ch.choice(("0\\0\\0\\0\\0\\0", "1\\0\\0\\0\\1\\0", "nan\\0\\0\\0\\1\\0", "1\\0\\0",
                       "1e308\\1e308\\1e308", "0\\0", "1\\1\\0\\1\\1\\0", "", *ODD_NUMBERS))
    vr = "IS" if keyword in ("InstanceNumber", "EchoNumbers", "AcquisitionNumber",
                             "TemporalPositionIdentifier") else "DS"
    if keyword == "DiffusionBValue":
        vr = "FD"
        _set_raw(ds, _tag(keyword), vr, ch.bytes(16))
    else:
        _set_text(ds, keyword, vr, value)
    return f"{keyword} = {value!r}"


def op_series_uid(ds: Any, ch: Chooser) -> str:
    keyword = ch.choice(("SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID"))
    value = ch.choice(UIDS)
    _set_text(ds, keyword, "UI", value)
    return f"{keyword} = {value!r}"


def op_delete(ds: Any, ch: Chooser) -> str:
    if ch.chance(0.7):
        keyword = ch.choice(("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
                             "PixelRepresentation", "SamplesPerPixel",
                             "PhotometricInterpretation", "PixelData", "NumberOfFrames",
                             "SOPClassUID", "PlanarConfiguration", "SeriesInstanceUID",
                             "ImageOrientationPatient", "WindowWidth", "file_meta"))
    else:
        tags = list(ds.keys())
        if not tags:
            return "delete: nothing"
        keyword = ch.choice(tags)
    if keyword == "file_meta":
        if hasattr(ds, "file_meta"):
            del ds.file_meta
        return "delete file_meta"
    tag = _tag(keyword)
    if tag in ds:
        del ds[tag]
    return f"delete {keyword}"


def op_pixel_data(ds: Any, ch: Chooser) -> str:
    from pydicom.tag import Tag

    tag = Tag("PixelData")
    if tag not in ds:
        _set_raw(ds, tag, "OW", ch.bytes(512))
        return "PixelData: added random"
    elem = ds.get_item(tag)
    data = bytes(elem.value or b"")
    form = ch.int(0, 5)
    if form == 0:
        new = b""
    elif form == 1:
        new = data[:1]
    elif form == 2:
        new = data[: len(data) // 2]
    elif form == 3:
        new = data[: max(len(data) - ch.int(1, 64), 0)]
    elif form == 4:
        new = data + ch.bytes(256)
    else:
        new = mutate_bytes(data, ch, [], rounds=2)
    vr = getattr(elem, "VR", "OW") or "OW"
    if getattr(elem, "is_undefined_length", False) or data[:4] == b"\xfe\xff\x00\xe0":
        from pydicom.dataelem import DataElement

        new_elem = DataElement(tag, "OB", new, is_undefined_length=True)
        ds[tag] = new_elem
    else:
        _set_raw(ds, tag, vr if vr in ("OB", "OW") else "OW", new)
    return f"PixelData: form {form} ({len(data)} -> {len(new)} bytes)"


def op_luts(ds: Any, ch: Chooser) -> str:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    item = Dataset()
    entries = ch.choice((0, 1, 2, 3, 256, 4096, 65535))
    first = ch.choice((0, 1, 32767, 32768, 65535))
    bits = ch.choice((0, 1, 8, 12, 16, 17, 32))
    item.LUTDescriptor = [entries, first, bits]
    count = ch.choice((0, 1, 2, entries, entries + 1, 10))
    item.LUTData = [ch.int(0, 65535) for _ in range(min(count, 5000))]
    if ch.chance(0.5):
        item.LUTExplanation = "fuzz"
    if ch.chance(0.5):
        item.ModalityLUTType = "HU"
    keyword = ch.choice(("VOILUTSequence", "ModalityLUTSequence"))
    setattr(ds, keyword, DicomSequence([item]))
    return f"{keyword}: descriptor {[entries, first, bits]}, {count} entries"


def op_functional_groups(ds: Any, ch: Chooser) -> str:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    frames = ch.choice((0, 1, 2, 3, 5))
    items = []
    for _ in range(frames):
        item = Dataset()
        if ch.chance(0.6):
            pos = Dataset()
            pos.ImagePositionPatient = [ch.int(-5, 5), 0, ch.int(-5, 5)]
            item.PlanePositionSequence = DicomSequence([pos])
        if ch.chance(0.5):
            transform = Dataset()
            _set_text(transform, "RescaleSlope", "DS", ch.choice(ODD_NUMBERS))
            _set_text(transform, "RescaleIntercept", "DS", ch.choice(ODD_NUMBERS))
            item.PixelValueTransformationSequence = DicomSequence([transform])
        if ch.chance(0.4):
            voi = Dataset()
            _set_text(voi, "WindowCenter", "DS", ch.choice(ODD_NUMBERS))
            _set_text(voi, "WindowWidth", "DS", ch.choice(ODD_NUMBERS))
            item.FrameVOILUTSequence = DicomSequence([voi])
        if ch.chance(0.3):
            content = Dataset()
            content.DimensionIndexValues = [ch.int(0, 3) for _ in range(ch.int(0, 3))]
            content.StackID = ch.choice(("1", "", "x"))
            item.FrameContentSequence = DicomSequence([content])
        if ch.chance(0.2):
            item.PlaneOrientationSequence = DicomSequence([])
        items.append(item)
    keyword = ch.choice(("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"))
    setattr(ds, keyword, DicomSequence(items))
    if ch.chance(0.6):
        _set_text(ds, "NumberOfFrames", "IS", ch.choice(("2", "3", "4", str(frames), "1000")))
    if ch.chance(0.3):
        dim = Dataset()
        dim.DimensionIndexPointer = ch.choice((0x00209057, 0x00200032, 0x00180081, 0xFFFFFFFF))
        ds.DimensionIndexSequence = DicomSequence([dim])
    return f"{keyword}: {frames} items"


DICOM_OPS: tuple[Callable[[Any, Chooser], str], ...] = (
    op_dimension, op_frames, op_bits, op_photometric, op_transfer_syntax, op_window,
    op_rescale, op_image_type, op_mosaic, op_private, op_geometry, op_series_uid, op_delete,
    op_pixel_data, op_luts, op_functional_groups,
)


def encode_dicom(ds: Any, ch: Chooser | None = None, log: list[str] | None = None) -> bytes:
    """Preamble + file meta (as it stands) + data set, in the data set's own encoding."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    implicit, little = getattr(ds, "original_encoding", (False, True))
    implicit = bool(implicit) if implicit is not None else False
    little = bool(little) if little is not None else True
    if ch is not None and ch.chance(0.1):
        implicit, little = ch.choice(((True, True), (False, True), (False, False)))
        if log is not None:
            log.append(f"encoding: implicit={implicit} little={little}")
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = little, implicit
    write_dataset(body, ds)
    meta = getattr(ds, "file_meta", None)
    if meta is None or (ch is not None and ch.chance(0.05)):
        if log is not None:
            log.append("written without preamble and file meta")
        return body.getvalue()
    head = DicomBytesIO()
    head.is_little_endian, head.is_implicit_VR = True, False
    write_file_meta_info(head, meta, enforce_standard=False)
    return b"\0" * 128 + b"DICM" + head.getvalue() + body.getvalue()


def mutate_dicom_structure(seed: seed_corpus.Seed, ch: Chooser, log: list[str]) -> bytes:
    pydicom = _pydicom()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(io.BytesIO(seed.data), force=True)
        except Exception:
            log.append("unparsable seed: byte mutation instead")
            return mutate_bytes(seed.data, ch, log)
        for _ in range(ch.int(1, 4)):
            op = ch.choice(DICOM_OPS)
            try:
                log.append(op(ds, ch))
            except Exception as exc:  # an op that does not fit this data set
                log.append(f"{op.__name__} not applied ({type(exc).__name__})")
        try:
            data = encode_dicom(ds, ch, log)
        except Exception as exc:
            log.append(f"encode failed ({type(exc).__name__}): byte mutation instead")
            return mutate_bytes(seed.data, ch, log)
    if ch.chance(0.15):
        data = mutate_bytes(data, ch, log, rounds=1)
    return data


# ------------------------------------------------------------------------------ raster
PIL_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I",
             "I;16", "I;16B", "F", "LAB", "HSV")
SIZES = ((1, 1), (1, 7), (7, 1), (2, 3), (3, 5), (16, 16), (63, 65), (255, 1), (1, 300),
         (64, 64), (17000, 1), (1, 16385), (128, 96))


def _pil_array(ch: Chooser, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    kind = ch.int(0, 3)
    if kind == 0:
        return np.full((h, w), ch.choice((0, 1, 127, 255)), dtype=np.uint8)
    if kind == 1:
        return np.tile(np.linspace(0, 255, w, dtype=np.float32).astype(np.uint8), (h, 1))
    if kind == 2:
        rng = np.random.default_rng(ch.int(0, 2**16))
        return rng.integers(0, 256, size=(h, w), dtype=np.uint8)
    arr = np.zeros((h, w), dtype=np.uint8)
    arr[h // 3: 2 * h // 3 + 1, w // 3: 2 * w // 3 + 1] = 200
    return arr


def make_raster(ch: Chooser, log: list[str]) -> tuple[str, bytes]:
    from PIL import Image

    size = ch.choice(SIZES)
    mode = ch.choice(PIL_MODES)
    base = Image.fromarray(_pil_array(ch, size), mode="L")
    try:
        if mode in ("I;16", "I;16B"):
            arr = np.asarray(base, dtype=np.uint16) * ch.choice((1, 257, 16))
            image = Image.fromarray(arr.astype("<u2" if mode == "I;16" else ">u2"), mode=mode)
        elif mode == "F":
            image = Image.fromarray(np.asarray(base, dtype=np.float32) * 1e30, mode="F")
        elif mode == "La":
            image = base.convert("LA")
        else:
            image = base.convert(mode)
    except Exception:
        image, mode = base, "L"
    fmt = ch.choice(("PNG", "JPEG", "TIFF", "TIFF", "BMP"))
    suffix = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "BMP": ".bmp"}[fmt]
    if ch.chance(0.1):
        suffix = ch.choice((".png", ".jpg", ".jpeg", ".tiff", ".bmp", ".PNG"))
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {}
    if fmt == "TIFF":
        kwargs["compression"] = ch.choice((None, "tiff_lzw", "tiff_adobe_deflate", "packbits",
                                           "jpeg", "group4"))
        if ch.chance(0.5):
            pages = []
            for _ in range(ch.int(1, 4)):
                page_mode = ch.choice(("L", "RGB", "1", "I;16", "F", "P"))
                page_size = ch.choice((*SIZES[:8], (64, 64)))
                try:
                    pages.append(image.convert(page_mode).resize(page_size))
                except (ValueError, OSError):
                    pages.append(base.convert(page_mode).resize(page_size))
            kwargs["save_all"] = True
            kwargs["append_images"] = pages
    try:
        image.save(buf, format=fmt, **kwargs)
    except Exception:
        buf = io.BytesIO()
        kwargs.pop("compression", None)
        try:
            image.save(buf, format=fmt, **kwargs)
        except Exception:
            buf = io.BytesIO()
            base.save(buf, format="PNG")
            fmt, suffix = "PNG", ".png"
    log.append(f"raster: {mode} {size[0]}x{size[1]} as {fmt}{suffix} {kwargs.get('compression')}"
               f"{' multi-page' if 'save_all' in kwargs else ''}")
    data = buf.getvalue()
    if fmt == "PNG" and ch.chance(0.2):
        data = _png_claim_size(data, ch, log)
    return suffix, data


def _png_claim_size(data: bytes, ch: Chooser, log: list[str]) -> bytes:
    """Rewrite the IHDR's width/height (with a correct CRC): a header that lies."""
    if data[12:16] != b"IHDR":
        return data
    w = ch.choice((0, 1, 16385, 65535, 100000, 2**31 - 1))
    h = ch.choice((0, 1, 16385, 65535, 100000, 2**31 - 1))
    ihdr = b"IHDR" + struct.pack(">II", w, h) + data[24:29]
    log.append(f"png: IHDR claims {w}x{h}")
    return data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


def good_png() -> bytes:
    from PIL import Image

    yy, xx = np.mgrid[0:64, 0:64]
    arr = ((xx * 3 + yy * 2) % 256).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------------- cases
DICOM_NAMES = ("m{}.dcm", "m{}", "IM_{}", "m{}.DCM", "m{}.ima")


def make_case(ch: Chooser) -> Case:
    """One execution's input: one to three damaged files of one kind."""
    log: list[str] = []
    dicoms, rasters = seed_corpus.dicom_seeds(), seed_corpus.raster_seeds()
    roll = ch.int(0, 99)
    files: dict[str, bytes] = {}
    if roll < 70 and dicoms:
        count = 1 if ch.chance(0.75) else ch.int(2, 3)
        seed = ch.choice(dicoms)
        log.append(f"seed {seed.path.name}")
        for i in range(count):
            if i and ch.chance(0.5):
                seed = ch.choice(dicoms)
                log.append(f"seed {seed.path.name}")
            if ch.chance(0.7):
                data = mutate_dicom_structure(seed, ch, log)
            else:
                data = mutate_bytes(seed.data, ch, log)
            name = ch.choice(DICOM_NAMES).format(i)
            if ch.chance(0.03):
                name = "DICOMDIR"
            files[name] = data
        good = "dicom"
    elif roll < 80 and rasters:
        seed = ch.choice(rasters)
        log.append(f"seed {seed.path.name}")
        files["r0" + seed.path.suffix.lower()] = mutate_bytes(seed.data, ch, log)
        good = "raster"
    elif roll < 97 or not seed_corpus.seeds():
        for i in range(1 if ch.chance(0.8) else 2):
            suffix, data = make_raster(ch, log)
            if ch.chance(0.25):
                data = mutate_bytes(data, ch, log, rounds=ch.int(1, 2))
            files[f"r{i}{suffix}"] = data
        good = "raster"
    else:  # a file in the wrong clothes
        seed = ch.choice(seed_corpus.seeds())
        suffix = ch.choice((".png", ".jpg", ".tif", ".dcm", ""))
        log.append(f"seed {seed.path.name} named *{suffix}")
        files["x0" + suffix] = mutate_bytes(seed.data, ch, log, rounds=ch.int(0, 1))
        good = "raster" if suffix in (".png", ".jpg", ".tif") else "dicom"
    return Case(files=files, good=good, as_files=ch.chance(0.3), mutations=log)
