"""The image pyramid and the scale fusion S^t (Sec. 2, Fig. 2).

"We construct an image pyramid and pass the multi-resolution versions of the image through CNNs
with shared weights ... the other layers are successively downsampled by a factor of two." The
pyramid is part of the network: level ``l`` is the image resized by ``scales[l]`` (1, 1/2, 1/4 by
default), every level goes through the *same* trunk and the same task branch (tied weights), each
level's task output is brought back to the input resolution and the levels are fused with learned
weights S^t:

    y^t = sum_l S^t_l * up(y^t_l)                    (Fig. 2, "S^t"; one weight per level and channel)

The per-level outputs ``up(y^t_l)`` are kept for the deep supervision of Sec. 2 ("loss layers both
at the outputs of the individual scales and the final responses").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .upsample import upsample_centers


def level_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """Size ``(h, w)`` of the pyramid level of scale ``scale`` for an image of ``size``."""
    return max(1, int(round(size[0] * scale))), max(1, int(round(size[1] * scale)))


def min_input_size(scales: tuple[float, ...], stride: int) -> int:
    """The smallest image side the pyramid accepts.

    The coarsest level must still hold one full trunk cell, i.e. be at least ``stride`` pixels
    on each side: ``round(side * min(scales)) >= stride``. For (1, 1/2, 1/4) and stride 8: 30 (7.5 rounds to 8).
    """
    s = min(scales)
    side = max(1, math.floor((stride - 1) / s))  # a lower bound; step up to the exact minimum
    while level_size((side, side), s)[0] < stride:
        side += 1
    return side


def image_pyramid(images: torch.Tensor, scales: tuple[float, ...]) -> list[torch.Tensor]:
    """The levels of the pyramid: [B, 3, H, W] -> list of [B, 3, h_l, w_l], ``h_l = round(H s_l)``.

    Scale 1 returns the images themselves; smaller scales are antialiased bilinear resizes of the
    original (not of the previous level), which is the same as successive halving up to rounding.
    """
    size = tuple(images.shape[-2:])
    levels = []
    for s in scales:
        hw = level_size(size, s)
        if hw == size:
            levels.append(images)
        else:
            levels.append(
                F.interpolate(images, size=hw, mode="bilinear", align_corners=False, antialias=True)
            )
    return levels


def to_input_resolution(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A level's output at the input resolution: [B, C, h_l, w_l] -> [B, C, H, W] (bilinear)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    h, w = x.shape[-2:]
    if size[0] % h == 0 and size[0] // h == size[1] / w:  # an integer factor: 2 and 4 here
        return upsample_centers(x, size[0] // h)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def scale_fuse(weight: torch.Tensor, outputs: list[torch.Tensor]) -> torch.Tensor:
    """S^t of Fig. 2: ``sum_l weight[l, c] * outputs[l][:, c]``.

    ``weight`` [L, C], ``outputs`` L tensors [B, C, H, W] -> [B, C, H, W]. The same values as the
    chain of multiply-adds, with a backward that computes the weights' gradient as one
    per-plane dot product per level (autograd's reduction of ``grad * y`` over the batch and
    pixel dimensions of a broadcast product is several times slower on the CPU).
    """
    if len(outputs) != weight.shape[0]:
        raise ValueError(f"expected {weight.shape[0]} scale outputs, got {len(outputs)}")
    return _ScaleFuse.apply(weight, *outputs)


class _ScaleFuse(torch.autograd.Function):
    """``sum_l w_l * y_l`` (w_l [C] per channel); backward: ``dy_l = w_l * g``,
    ``dw_l[c] = sum_{b, h, w} g * y_l``."""

    @staticmethod
    def forward(ctx, weight, *outputs):
        ctx.save_for_backward(weight, *outputs)
        fused = None
        for w, y in zip(weight, outputs, strict=True):
            w = w.view(1, -1, 1, 1)  # one multiply-add per level (no separate product)
            fused = w * y if fused is None else torch.addcmul(fused, w, y)
        return fused

    @staticmethod
    def backward(ctx, grad):
        weight, *outputs = ctx.saved_tensors
        b, c = grad.shape[:2]
        grad_w = None
        if ctx.needs_input_grad[0]:
            g = grad.reshape(b * c, -1)
            grad_w = torch.stack(
                [(g * y.reshape(b * c, -1)).sum(1).view(b, c).sum(0) for y in outputs]
            ).to(weight.dtype)
        grads_y = [
            (grad * w.view(1, -1, 1, 1)).to(y.dtype) if ctx.needs_input_grad[1 + l] else None
            for l, (w, y) in enumerate(zip(weight, outputs, strict=True))
        ]
        return (grad_w, *grads_y)


class ScaleFusion(nn.Module):
    """S^t: learned additive fusion of one task's outputs over the pyramid levels.

    ``forward(outputs)``: list of L tensors [B, C, H, W] (all at the input resolution) ->
    [B, C, H, W]. One weight per level and channel, initialised to the mean.
    """

    def __init__(self, num_scales: int, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_scales, channels), 1.0 / num_scales))

    def forward(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        return scale_fuse(self.weight, outputs)  # Fig. 2, S^t
