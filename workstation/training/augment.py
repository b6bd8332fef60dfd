"""Batch augmentation on tensors: flips, small affine moves, intensity changes.

Geometry moves the mask with the image. No vertical flips or large rotations: they would
destroy what the plane head must learn (superior is up in every display convention).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def random_curves(images: torch.Tensor, chosen: torch.Tensor, generator: torch.Generator,
                  knots: int = 6) -> torch.Tensor:
    """Map the chosen images' intensities through random piecewise-linear curves (monotone or
    not) that keep black at black: the same anatomy and lesion in another contrast, so the
    classifier leans on shape more than on the T1-contrast intensities most training images
    have (one BraTS contrast is only ever seen at test time)."""
    count = int(chosen.sum())
    if count == 0:
        return images
    values = torch.rand(count, knots - 1, generator=generator)
    monotone = torch.rand(count, generator=generator) < 0.5
    values = torch.where(monotone[:, None], values.sort(dim=1).values, values)
    curve = torch.cat([torch.zeros(count, 1), values], dim=1)  # (count, knots)
    x = images[chosen].clamp(0, 1) * (knots - 1)  # (count, 1, H, W)
    low = x.floor().clamp(max=knots - 2)
    frac = x - low
    index = low.long().flatten(1)  # (count, H*W)
    y0 = torch.gather(curve, 1, index)
    y1 = torch.gather(curve, 1, index + 1)
    mapped = (y0 + (y1 - y0) * frac.flatten(1)).view_as(x)
    images = images.clone()
    images[chosen] = mapped
    return images


def augment(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator,
            curve_probability: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """images, masks: (B, 1, H, W) float in [0, 1]."""
    batch = images.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(batch, generator=generator) * (high - low) + low

    flip = torch.rand(batch, generator=generator) < 0.5
    angle = uniform(-12, 12) * math.pi / 180
    scale = uniform(0.88, 1.12)
    shift_x, shift_y = uniform(-0.06, 0.06), uniform(-0.06, 0.06)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    sign = torch.where(flip, -1.0, 1.0)
    theta = torch.stack([
        torch.stack([cos * sign, -sin, shift_x], dim=1),
        torch.stack([sin * sign, cos, shift_y], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)
    masks = F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)

    if curve_probability > 0:
        images = random_curves(images, torch.rand(batch, generator=generator)
                               < curve_probability, generator)
    gamma = torch.exp(uniform(-0.3, 0.3)).view(-1, 1, 1, 1)
    contrast = uniform(0.8, 1.2).view(-1, 1, 1, 1)
    brightness = uniform(-0.08, 0.08).view(-1, 1, 1, 1)
    images = images.clamp(0, 1).pow(gamma) * contrast + brightness
    noise = torch.randn(images.shape, generator=generator) * uniform(0, 0.03).view(-1, 1, 1, 1)
    blur = torch.rand(batch, generator=generator) < 0.2
    if bool(blur.any()):
        # low-resolution acquisitions (EPI, thick slices): blur by down/up sampling
        size = images.shape[-1]
        small = F.interpolate(images[blur], scale_factor=0.4, mode="bilinear",
                              align_corners=False)
        images[blur] = F.interpolate(small, size=(size, size), mode="bilinear",
                                     align_corners=False)
    return (images + noise).clamp(0, 1), masks
