"""Which class Grad-CAM explains for a finding (the heat map itself needs the model)."""

from __future__ import annotations

from tests.fakes import make_finding
from workstation.analysis.findings import CLASSES, Verdict
from workstation.analysis.saliency import gradcam_target


def test_a_tumour_call_is_explained_for_its_own_class() -> None:
    finding = make_finding(0, (0.1, 0.7, 0.15, 0.05))
    assert gradcam_target(finding) == CLASSES.index("meningioma")


def test_a_no_tumour_call_is_explained_for_its_likeliest_tumour_class() -> None:
    """"Where it looked for no tumour" shows nothing a reader can check."""
    finding = make_finding(0, (0.01, 0.02, 0.07, 0.9), Verdict.REVIEW)
    assert finding.predicted_class == "no_tumour"
    assert gradcam_target(finding) == CLASSES.index("pituitary")
