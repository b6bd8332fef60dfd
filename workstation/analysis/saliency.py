"""Grad-CAM: "where the classifier looked" (pytorch-grad-cam), on the input image grid.

This is not the suspect-region mask: it explains the class head, and is shown only when
the user asks for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from workstation.analysis.findings import CLASSES, TUMOUR_CLASSES, Finding
from workstation.analysis.network import ClassLogits
from workstation.analysis.preprocess import mask_to_image, prepare


def gradcam_target(finding: Finding) -> int:
    """The class to explain for a finding (its index in ``CLASSES``): the class it names;
    on an image called no tumour, the tumour class it finds most likely, since "where it
    looked for no tumour" shows nothing a reader can check."""
    if finding.predicted_class in TUMOUR_CLASSES:
        return CLASSES.index(finding.predicted_class)
    return CLASSES.index(max(TUMOUR_CLASSES, key=finding.probabilities.__getitem__))


def gradcam(engine: Any, image: npt.NDArray[np.floating], class_index: int
            ) -> npt.NDArray[np.float32]:
    """Heat map in [0, 1] for ``class_index`` at the size of ``image``."""
    prepared = prepare(np.asarray(image))
    net = engine.net
    model = ClassLogits(net).eval()
    batch = torch.from_numpy(prepared.image)[None, None].to(engine.device)
    with GradCAM(model=model, target_layers=[net.backbone.conv_head]) as cam:
        heat = cam(input_tensor=batch, targets=[ClassifierOutputTarget(class_index)])[0]
    return mask_to_image(np.asarray(heat, dtype=np.float32), prepared.crop)


def explain(engine: Any, image: npt.NDArray[np.floating], finding: Finding
            ) -> npt.NDArray[np.float32]:
    """Grad-CAM of ``image`` for the class ``gradcam_target`` chooses for its finding."""
    return gradcam(engine, image, gradcam_target(finding))
