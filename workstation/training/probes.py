"""Out-of-distribution probes: images that must come out ``cannot_assess``.

All are read from installed packages (pydicom-data, pydicom, scikit-image) or made here;
nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from workstation.imaging import Series, SeriesInfo, Slice, Window, load_study
from workstation.imaging.pixels import frozen

DICOM_PROBES = {
    "CT (693_UNCR)": "693_UNCR.dcm",
    "CT (CT_small)": "CT_small.dcm",
    "ultrasound (US1_UNCR)": "US1_UNCR.dcm",
    "ultrasound palette (OBXXXX1A)": "OBXXXX1A.dcm",
    "chest radiograph (RG1_UNCR)": "RG1_UNCR.dcm",
    "extremity radiograph (RG3_UNCR)": "RG3_UNCR.dcm",
    "abdomen MR (MR-SIEMENS-DICOM-WithOverlays)": "MR-SIEMENS-DICOM-WithOverlays.dcm",
    "abdomen MR (examples_overlay)": "examples_overlay.dcm",
    "nuclear medicine (JPEG2000_UNC)": "JPEG2000_UNC.dcm",
}
PHOTOS = ("astronaut", "coffee", "chelsea", "camera", "rocket", "brick", "grass", "moon")
# other scikit-image pictures, never used as probes: export picks the out-of-distribution
# score's settings on them (an out-of-distribution validation set) and fits the picture
# check on crops of them (``picture_crops``), so the probes above stay a test
OOD_VALIDATION = ("horse", "clock", "coins", "page", "text", "hubble_deep_field",
                  "immunohistochemistry", "logo", "retina", "cell", "gravel",
                  "microaneurysms", "colorwheel", "checkerboard", "binary_blobs",
                  "shepp_logan_phantom")
# pictures scikit-image draws at random unless seeded: seeded, or export would not be repeatable
_SEEDED = {"binary_blobs": {"rng": 0}}


@dataclass(frozen=True, eq=False)
class Probe:
    name: str
    series: Series
    kind: str  # dicom | photo | synthetic


def _find(name: str) -> Path | None:
    import pydicom.data

    folders = [Path(pydicom.data.__file__).parent / "test_files"]
    try:
        import data_store

        folders.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    return None


def _image_series(name: str, image: np.ndarray) -> Series:
    image = np.asarray(image, dtype=np.float32)
    slice_ = Slice(image=frozen(image), raw=frozen(image),
                   window=Window(0.5, 1.0, "full-range"), source=name)
    return Series(source=name, series_uid=None, info=SeriesInfo(series_description=name),
                  slices=(slice_,), kind="raster")


def probes() -> Iterator[Probe]:
    for name, file in DICOM_PROBES.items():
        path = _find(file)
        if path is None:
            continue
        for series in load_study([path]).series:
            yield Probe(name, series, "dicom")
    from skimage import color, data

    for name in PHOTOS:
        try:
            picture = getattr(data, name)()
        except Exception:  # a picture scikit-image would have to download
            continue
        grey = color.rgb2gray(picture) if picture.ndim == 3 else picture / 255.0
        yield Probe(f"photo: {name}", _image_series(name, grey), "photo")
    rng = np.random.default_rng(0)
    yield Probe("blank image", _image_series("blank", np.zeros((256, 256))), "synthetic")
    yield Probe("uniform grey", _image_series("grey", np.full((256, 256), 0.5)), "synthetic")
    yield Probe("white noise", _image_series("noise", rng.random((256, 256))), "synthetic")
    smooth = np.cumsum(np.cumsum(rng.standard_normal((256, 256)), 0), 1)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    yield Probe("smooth random field", _image_series("field", smooth), "synthetic")


def ood_validation_images() -> list[np.ndarray]:
    """The OOD_VALIDATION pictures as grey images in [0, 1] (those installed)."""
    from skimage import color, data

    images = []
    for name in OOD_VALIDATION:
        try:
            picture = np.asarray(getattr(data, name)(**_SEEDED.get(name, {})),
                                 dtype=np.float32)
        except Exception:  # a picture scikit-image would have to download
            continue
        if picture.ndim == 3:
            picture = color.rgb2gray(picture[..., :3] / max(1.0, float(picture.max())))
        else:
            picture = picture / max(1.0, float(picture.max()))
        images.append(np.asarray(picture, dtype=np.float32))
    return images


PICTURE_CROPS = 40  # random crops of each OOD_VALIDATION picture for the picture check
PICTURE_SEED = 0


def picture_crops(per_picture: int = PICTURE_CROPS, seed: int = PICTURE_SEED
                  ) -> list[np.ndarray]:
    """The picture check's examples of what is not an MR slice (export fits it on them):
    each OOD_VALIDATION picture whole and in ``per_picture`` random square crops (a quarter
    to all of its short side), turned by a multiple of 90 degrees, mirrored, through a
    random gamma, and about a third of them inverted, as grey images in [0, 1]. Seeded:
    export is repeatable. The probes stay out: they test the check."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for picture in ood_validation_images():
        out.append(picture)
        rows, cols = picture.shape
        for _ in range(per_picture):
            side = max(8, int(min(rows, cols) * rng.uniform(0.25, 1.0)))
            top, left = int(rng.integers(0, rows - side + 1)), int(rng.integers(0, cols - side + 1))
            crop = np.rot90(picture[top:top + side, left:left + side], int(rng.integers(4)))
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            crop = np.clip(crop, 0.0, 1.0) ** float(np.exp(rng.uniform(-0.5, 0.5)))
            if rng.random() < 0.3:
                crop = 1.0 - crop
            out.append(np.ascontiguousarray(crop, dtype=np.float32))
    return out


def without_metadata(series: Series) -> Series:
    """The same pixels with the DICOM header facts removed: the image score alone decides."""
    return replace(series, info=SeriesInfo(series_description=series.description))
