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

from workstation.analysis.network import ClassLogits
from workstation.analysis.preprocess import mask_to_image, prepare


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
