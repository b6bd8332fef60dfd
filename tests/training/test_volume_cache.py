"""Whole-series training slices: subject sides, slice labels and the stage 5 batch mix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workstation.analysis.findings import CLASSES
from workstation.training.series_eval import HELD_OUT
from workstation.training.train import TrainConfig, series_stage_weights
from workstation.training.volume_cache import VALIDATION, subject_split
from workstation.training.volume_series import volume_cases


def test_held_out_and_validation_subjects_never_reach_training() -> None:
    assert subject_split("normal/nifti/ixi577_t1") == "held_out"
    assert subject_split("volumes/brats2013_pat0002/t1c") == "held_out"
    assert subject_split("volumes/brats2013_pat0005/t2f") == "val"
    assert subject_split("normal/nifti/chrisrorden_pd") == "val"  # CC BY-NC: not trained on
    assert subject_split("normal/nifti/ixi012_t1") == "train"
    assert not set(VALIDATION) & set(HELD_OUT)


def test_subject_sides_on_the_real_volumes(datasets: Path) -> None:
    """Every contrast of a patient lies on one side; each side has healthy and glioma."""
    sides: dict[str, set[str]] = {}
    truths: dict[str, set[str]] = {}
    for case in volume_cases(datasets):
        person = case.name.rsplit("/", 1)[0] if case.name.startswith("volumes/") else case.name
        sides.setdefault(person, set()).add(subject_split(case.name))
        truths.setdefault(subject_split(case.name), set()).add(case.truth)
    assert all(len(s) == 1 for s in sides.values())
    assert truths == {side: {"no_tumour", "glioma"} for side in ("train", "val", "held_out")}


def rows(labels: list[str], sources: list[str]) -> list[dict[str, str]]:
    return [{"label": lab, "plane": "axial", "mask_known": "1", "source": src}
            for lab, src in zip(labels, sources, strict=True)]


def test_stage5_mix_gives_the_volumes_their_share_and_balances_the_class_loss() -> None:
    config = TrainConfig(series_volume_share=0.4, series_glioma_share=0.4,
                         series_stripped_clear_share=0.2)
    flat_labels = [c for c in CLASSES for _ in range(5)]
    vol_labels = ["glioma"] * 30 + ["no_tumour"] * 20 + ["no_tumour"] * 50
    vol_sources = ["volumes"] * 50 + ["normal"] * 50
    table = rows(flat_labels, ["figshare"] * 20) + rows(vol_labels, vol_sources)
    volume = np.array([False] * 20 + [True] * 100)
    weights, importance = series_stage_weights(table, volume, config)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[volume].sum() == pytest.approx(0.4)
    assert weights[20:50].sum() == pytest.approx(0.4 * 0.4)  # glioma volume slices
    assert weights[50:70].sum() == pytest.approx(0.4 * 0.2)  # skull-stripped clear slices
    labels = np.array([r["label"] for r in table])
    for name in CLASSES:  # each class weighs a quarter of the class loss
        inside = labels == name
        assert float((weights[inside] * importance[inside]).sum()) == pytest.approx(0.25)
