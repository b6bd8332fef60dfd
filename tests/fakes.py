"""Stand-ins for the model and hand-made series and findings, without Qt or torch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from workstation.analysis.findings import AnalysisCancelled, Finding, SeriesVerdict, Verdict
from workstation.analysis.triage import Policy
from workstation.imaging.series import Plane, PlaneSource, Series, SeriesInfo, Slice, Volume, Window

POLICY = Policy(review_threshold=0.9, ood_threshold=3.0)
NORMAL = (0.01, 0.01, 0.01, 0.97)  # glioma, meningioma, pituitary, no tumour


def make_series(counts: Sequence[int] = (5,), assessed: int | None = None, name: str = "s",
                uid: str | None = "1.2.3") -> Series:
    """A series of one volume per count (``assessed``: the only volume the model reads;
    default all), each image a flat level with a bright square (tissue, not empty)."""
    volumes, start = [], 0
    for k, count in enumerate(counts):
        reads = assessed is None or k == assessed
        volumes.append(Volume(k, f"echo {k + 1}" if len(counts) > 1 else "", start, count,
                              assessed=reads,
                              not_assessed_reason=None if reads else "not assessed: another"))
        start += count
    slices = []
    for k in range(start):
        raw = np.full((32, 32), 100.0, np.float32)
        raw[8:24, 8:24] = 400.0
        raw.flags.writeable = False
        slices.append(Slice(image=raw / 400.0, raw=raw, window=Window(200, 400, "dicom"),
                            source=f"{name}/img{k}.dcm"))
    return Series(source=name, series_uid=uid,
                  info=SeriesInfo(series_description=name, modality="MR"),
                  slices=tuple(slices), plane=Plane.AXIAL, plane_source=PlaneSource.DICOM,
                  volumes=tuple(volumes))


def make_finding(index: int, probabilities: Sequence[float] = NORMAL,
                 verdict: Verdict | None = None) -> Finding:
    names = ("glioma", "meningioma", "pituitary", "no_tumour")
    p = dict(zip(names, map(float, probabilities), strict=True))
    predicted = max(p, key=p.__getitem__)
    called = verdict or (Verdict.NO_TUMOUR if predicted == "no_tumour" else Verdict.TUMOUR)
    return Finding(index=index, file=f"img{index}.dcm", probabilities=p,
                   predicted_class=predicted, verdict=called, plane="axial",
                   plane_probabilities={"axial": 1.0, "coronal": 0.0, "sagittal": 0.0},
                   review_reasons=(), ood_score=0.1, reference_ood_score=0.1,
                   mask=np.zeros((32, 32), np.float32), mask_area_px=0, peak=None)


def verdict_of(series: Series, tumour: dict[int, float] | None = None) -> SeriesVerdict:
    """A tumour verdict with glioma at p ``tumour[i]`` on image ``i`` (global index) of the
    assessed slices; the rest normal."""
    tumour = tumour or {}
    findings = tuple(make_finding(i, (tumour[i], 0.0, 0.0, 1 - tumour[i]) if i in tumour
                                  else NORMAL) for i in series.assessed_indices)
    called = Verdict.TUMOUR if tumour else Verdict.NO_TUMOUR
    return SeriesVerdict(series, called, "glioma" if tumour else "no_tumour",
                         max(tumour.values(), default=0.97), (), findings, "axial", "dicom")


class FakeEngine:
    """Says ``probabilities(slice)`` of each slice (default a confident no tumour); records
    what it was asked to read; raises ``AnalysisCancelled`` when asked to read series number
    ``cancel_at`` (0-based), as the real engine does when its ``cancelled()`` turns true."""

    def __init__(self, probabilities: Callable[[Slice], Sequence[float]] | None = None,
                 cancel_at: int | None = None) -> None:
        self.calibration = SimpleNamespace(policy=lambda: POLICY)
        self.info = SimpleNamespace(name="fake", version="0", sha256="0" * 64)
        self.device = "cpu"
        self.last_seconds = 0.0
        self.read: list[int] = []  # images asked for, per call
        self._probabilities = probabilities or (lambda s: NORMAL)
        self._cancel_at = cancel_at

    def analyse(self, slices: Sequence[Slice], progress: Any = None,
                cancelled: Any = None) -> list[Any]:
        if self._cancel_at is not None and len(self.read) == self._cancel_at:
            raise AnalysisCancelled()
        self.read.append(len(slices))
        if progress is not None:
            progress(len(slices), len(slices))
        return [SimpleNamespace(
            probabilities=np.asarray(self._probabilities(s), np.float32),
            plane_probabilities=np.array([0.9, 0.05, 0.05], np.float32),
            mask=np.zeros(s.shape, np.float32), ood_score=0.0, foreground_fraction=0.5,
            ct_score=0.0, reference_ood_score=0.0, picture_score=0.0) for s in slices]
