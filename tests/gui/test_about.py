"""Help > About: the version, the model's version and sha256 and the build, as
``workstation --version`` says them."""

from __future__ import annotations

import json
from pathlib import Path

from workstation.build_info import load_build_info
from workstation.gui.dialogs import AboutDialog

REPO = Path(__file__).resolve().parents[2]


def test_about_names_the_model_sha256_and_build(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = AboutDialog("triage-v2 2.0.0")
    qtbot.addWidget(dialog)
    text = dialog.label.text()
    model = json.loads((REPO / "models" / "triage-v2.json").read_text())
    assert f"sha256 {model['sha256']}" in text
    assert f"model ONNX graph: sha256 {model['onnx']['sha256']}" in text
    assert "build: source checkout" in text
    assert all(line in text for line in load_build_info().lines()[1:])
    assert "Test-split figures" in text  # the model card's rows are still there
