import numpy as np
import pytest

from workstation.analysis.preprocess import INPUT_SIZE, mask_to_image, mask_to_input, prepare


def brain_like(rows: int = 200, cols: int = 300) -> np.ndarray:
    image = np.zeros((rows, cols), np.float32)
    yy, xx = np.mgrid[:rows, :cols]
    image[((yy - 90) / 60) ** 2 + ((xx - 170) / 80) ** 2 < 1] = 0.8
    return image


def test_prepare_crops_to_the_foreground_and_normalises() -> None:
    prepared = prepare(brain_like())
    assert prepared.image.shape == (INPUT_SIZE, INPUT_SIZE)
    assert prepared.image.dtype == np.float32
    assert prepared.image.max() == 1.0
    # the ellipse is 160 wide: the square box is about that, centred on it
    assert 160 <= prepared.crop.side <= 180
    assert 0.2 < prepared.foreground_fraction < 0.4


def test_prepare_is_robust_to_padding_and_scale() -> None:
    small = prepare(brain_like())
    padded = prepare(np.pad(brain_like(), 80))
    assert np.abs(small.image - padded.image).mean() < 0.02


def test_mask_round_trip_lands_on_the_input_grid() -> None:
    image = brain_like()
    mask = np.zeros_like(image)
    mask[80:100, 150:190] = 1
    prepared = prepare(image)
    back = mask_to_image(mask_to_input(mask, prepared.crop), prepared.crop)
    assert back.shape == image.shape
    overlap = ((back > 0.5) & (mask > 0.5)).sum() / (mask > 0.5).sum()
    assert overlap > 0.9


def test_blank_image_is_safe() -> None:
    prepared = prepare(np.zeros((64, 64), np.float32))
    assert np.isfinite(prepared.image).all()
    assert prepared.foreground_fraction == 0.0


@pytest.mark.parametrize(("source", "target", "anti_aliasing"),
                         [(224, 160, True), (512, 160, True), (161, 160, True),
                          (100, 160, False), (160, 512, False), (160, 97, False),
                          (1000, 160, True), (37, 160, True), (160, 33, False),
                          (1, 160, True), (160, 1, False)])
def test_matrix_resize_is_scikit_image_resize(source: int, target: int,
                                              anti_aliasing: bool) -> None:
    from skimage.transform import resize

    from workstation.analysis.preprocess import resize_square

    image = np.random.default_rng(source).random((source, source), dtype=np.float32)
    expected = resize(image, (target, target), order=1, anti_aliasing=anti_aliasing,
                      preserve_range=True)
    assert np.abs(resize_square(image, target, anti_aliasing) - expected).max() < 1e-5


@pytest.mark.parametrize("shape", [(224, 224), (512, 512), (160, 160), (65, 63), (7, 3),
                                   (1, 1), (4096, 1)])
def test_fast_percentile_is_numpy_percentile(shape: tuple[int, int]) -> None:
    from workstation.analysis.preprocess import percentile_99

    rng = np.random.default_rng(sum(shape))
    cases = [rng.random(shape, dtype=np.float32),
             np.round(rng.random(shape, dtype=np.float32) * 4) / 4,  # many ties
             np.zeros(shape, np.float32),
             brain_like(*shape) if min(shape) > 8 else np.ones(shape, np.float32)]
    for image in cases:
        # the same order statistics; numpy interpolates them in float32, this in float64
        assert percentile_99(image) == pytest.approx(float(np.percentile(image, 99)),
                                                     rel=1e-6, abs=1e-12)
