"""Triaged real DICOM series for the DICOM-results tests.

The series are real (``$BRAIN_TRIAGE_DATA/dicom/ge_epi_axial``: GE single-frame files;
``normal/dicom/siemens_t1_mprage_sag_enhanced``: one enhanced multi-frame file). The
engine is a stand-in that calls glioma with an outlined region on the images chosen here,
so that every kind of result object (the SEG above all) is made from real headers; what
the real model says of these healthy heads is tested through the command line.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tests.fakes import FakeEngine
from workstation.analysis.run import StudyTriage, triage_study
from workstation.imaging import load_study
from workstation.imaging.series import Slice

GE = Path("dicom") / "ge_epi_axial"
MPRAGE = Path("normal") / "dicom" / "siemens_t1_mprage_sag_enhanced"


def region_mask(shape: tuple[int, int], k: int) -> np.ndarray:
    """A disc of p 0.9 whose place depends on ``k``, with a soft rim below 0.5."""
    rows, cols = shape
    rr, cc = np.mgrid[:rows, :cols]
    centre = (rows // 2 + (k % 3) - 1, cols // 3 + (k % 5))
    distance = np.hypot(rr - centre[0], cc - centre[1])
    mask = np.where(distance <= max(3, rows // 10), 0.9, 0.0)
    mask = np.where((distance > max(3, rows // 10)) & (distance <= max(4, rows // 8)), 0.3,
                    mask)
    return mask.astype(np.float32)


class RegionEngine(FakeEngine):
    """Glioma p 0.92 with a region on the ``tumour`` images (0-based, of what is read);
    an unsure p(no tumour) 0.7 on the ``unsure`` ones (sent to review)."""

    def __init__(self, tumour: Sequence[int], unsure: Sequence[int] = ()) -> None:
        super().__init__()
        self.tumour = set(tumour)
        self.unsure = set(unsure)

    def analyse(self, slices: Sequence[Slice], progress: Any = None,
                cancelled: Any = None) -> list[Any]:
        self.read.append(len(slices))
        answers = []
        for k, image in enumerate(slices):
            hit = k in self.tumour
            probabilities = ([0.92, 0.03, 0.02, 0.03] if hit else [0.25, 0.03, 0.02, 0.70]
                             if k in self.unsure else [0.005, 0.005, 0.005, 0.985])
            answers.append(SimpleNamespace(
                probabilities=np.array(probabilities, np.float32),
                plane_probabilities=np.array([0.9, 0.05, 0.05], np.float32),
                mask=region_mask(image.shape, k) if hit else np.zeros(image.shape,
                                                                      np.float32),
                ood_score=0.0, foreground_fraction=0.5, ct_score=0.0,
                reference_ood_score=0.0, picture_score=0.0))
        return answers


def triaged(datasets: Path, folder: Path, tumour: Sequence[int],
            unsure: Sequence[int] = ()) -> StudyTriage:
    path = datasets / folder
    if not path.is_dir():
        pytest.skip(f"{folder} is not in the datasets folder")
    return triage_study(load_study([path]), RegionEngine(tumour, unsure))


def dciodvfy_errors(path: Path) -> list[str]:
    """The "Error" lines dciodvfy (dicom3tools) prints for ``path``."""
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120,
                         check=False)
    return [line for line in (run.stdout + run.stderr).splitlines()
            if line.startswith("Error")]
