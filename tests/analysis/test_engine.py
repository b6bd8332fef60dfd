"""The shipped model: integrity check, and it runs end to end on real images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from workstation.analysis.model_file import ModelIntegrityError, default_description

pytest.importorskip("torch")

MODEL = default_description()
needs_model = pytest.mark.skipif(not MODEL.is_file(), reason="no shipped model")


@needs_model
def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    from workstation.analysis.engine import Engine

    description = json.loads(MODEL.read_text())
    shutil.copy(MODEL, tmp_path / MODEL.name)
    weights = tmp_path / description["weights"]
    data = bytearray((MODEL.parent / description["weights"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="does not match its recorded sha256"):
        Engine(tmp_path / MODEL.name, device="cpu", backend="torch")


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    from workstation.analysis.engine import Engine

    with pytest.raises(ModelIntegrityError, match="not installed"):
        Engine(tmp_path / "nothing.json", device="cpu")


@needs_model
def test_network_outputs_on_real_slices(datasets: Path) -> None:
    from workstation.analysis.engine import Engine
    from workstation.imaging import load_study

    engine = Engine(device="cpu")
    study = load_study([datasets / "figshare_cheng" / "images" / "0001.jpg",
                        datasets / "dicom" / "ge_epi_axial"])
    by_kind = {s.kind: s for s in study.series}
    slices = [by_kind["raster"].slices[0], *by_kind["dicom"].slices[:3]]
    predictions = engine.analyse(slices)
    assert len(predictions) == 4
    for prediction, slice_ in zip(predictions, slices, strict=True):
        assert prediction.probabilities.shape == (4,)
        assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-4)
        assert prediction.plane_probabilities.sum() == pytest.approx(1.0, abs=1e-4)
        assert prediction.mask.shape == slice_.shape
        assert prediction.mask.min() >= 0.0 and prediction.mask.max() <= 1.0
        assert np.isfinite(prediction.ood_score)
    # the shipped model carries the reference score, and these brain slices pass both
    policy = engine.calibration.policy()
    assert np.isfinite(policy.reference_ood_threshold)
    assert all(0 < p.reference_ood_score < policy.reference_ood_threshold for p in predictions)
    assert all(p.ood_score < policy.ood_threshold for p in predictions)


@needs_model
def test_predictions_run_on_the_folded_network_and_match_the_trained_one() -> None:
    """Batch norms are folded for speed; Grad-CAM keeps the network as trained, and the
    two agree to float rounding."""
    import torch

    from workstation.analysis.engine import Engine

    engine = Engine(device="cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in engine.inference_net.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in engine.net.modules())
    grey = torch.rand(2, 1, 160, 160, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        exact, fast = engine.net(grey).class_logits, engine.inference_net(grey).class_logits
    assert torch.allclose(exact, fast, atol=1e-4)


@needs_model
def test_cuda_request_without_gpu_is_refused() -> None:
    import torch

    from workstation.analysis.torch_backend import pick_device

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        pick_device("cuda")
    assert pick_device("auto") == "cpu"


def test_calibration_reads_either_novelty_score_and_the_ct_and_picture_checks() -> None:
    import numpy as np
    import torch

    from workstation.analysis.engine import Calibration, ct_score, picture_score
    from workstation.analysis.ood import unit

    base = {"temperature": 1.0, "review_threshold": 0.95, "ood_threshold": 0.5}
    features = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    knn = Calibration.from_archive({**base, "ood_bank": torch.tensor([[1.0, 0.0]]).half(),
                                    "ood_neighbours": 1})
    assert knn.novelty.method == "knn" and knn.ct_weights is None
    assert np.allclose(knn.novelty.score(features), [0.0, 1.0], atol=1e-3)
    assert np.array_equal(ct_score(features, knn), [0.0, 0.0])
    assert knn.policy().ct_threshold == 1.0  # no CT check: nothing is ever called CT
    assert knn.picture_weights is None and knn.policy().picture_threshold == 1.0
    assert np.array_equal(picture_score(features, knn), [0.0, 0.0])
    assert knn.reference is None  # no reference score: it never refuses anything
    assert knn.policy().reference_ood_threshold == float("inf")
    maha = Calibration.from_archive({
        **base, "ood_method": "mahalanobis", "ood_mean": torch.tensor([1.0, 0.0]),
        "ood_precision": torch.eye(2) * 4, "ct_weights": torch.tensor([-10.0, 10.0]),
        "ct_bias": 0.0, "ct_threshold": 0.9, "reference_ood_threshold": 0.3,
        "picture_weights": torch.tensor([10.0, -10.0]), "picture_bias": 0.0,
        "picture_threshold": 0.8,
        "reference_ood_method": "knn", "reference_ood_bank": torch.tensor([[0.0, 1.0]]),
        "reference_ood_neighbours": 1})
    assert np.allclose(maha.novelty.score(features), [0.0, 8.0])
    ct = ct_score(unit(features), maha)
    assert ct[0] < 0.01 and ct[1] > 0.99
    assert maha.policy().ct_threshold == 0.9
    picture = picture_score(features, maha)
    assert picture[0] > 0.99 and picture[1] < 0.01
    assert maha.policy().picture_threshold == 0.8
    assert maha.reference is not None
    assert np.allclose(maha.reference.score(features), [1.0, 0.0], atol=1e-3)
    assert maha.policy().reference_ood_threshold == 0.3


def test_novelty_score_round_trips_through_its_archive_entries() -> None:
    import numpy as np

    from workstation.analysis.ood import Novelty, unit

    rng = np.random.default_rng(0)
    bank = unit(rng.standard_normal((5, 3))).astype(np.float32)
    score = Novelty(threshold=0.2, method="knn", bank=bank, neighbours=2)
    again = Novelty.from_archive(score.archive("reference_ood"), "reference_ood")
    assert again is not None and again.threshold == 0.2 and again.neighbours == 2
    features = rng.standard_normal((4, 3))
    assert np.allclose(again.score(features), score.score(features))
    assert Novelty.from_archive({}, "reference_ood") is None
