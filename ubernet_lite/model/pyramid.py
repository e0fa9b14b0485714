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

from .upsample import centers_factor, upsample_adjoint, upsample_centers


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


def scale_fuse(
    weight: torch.Tensor,
    outputs: list[torch.Tensor],
    sources: list[torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """S^t of Fig. 2: ``sum_l weight[l, c] * outputs[l][:, c]``.

    Args:
        weight: [L, C].
        outputs: L tensors [B, C, H, W].
        sources: optional, per level the map ``z_l`` [B, C, h_l, w_l] of which ``outputs[l]`` is
            ``upsample_centers(z_l, H / h_l)`` (:func:`~.upsample.centers_factor` not None), or
            None. The gradient then goes to ``z_l`` directly, at the level's resolution:
            ``dz_l = w_l * up^T(g)`` and ``dw_l = <up^T(g), z_l>`` (interpolation is linear and
            per channel, so these equal ``up^T(w_l * g)`` and ``<g, up(z_l)>``), instead of
            full-size products added to ``outputs[l]``'s own gradient.

    Returns:
        [B, C, H, W]. The same values as the chain of multiply-adds; the backward computes the
        weights' gradient as per-plane dot products (autograd's reduction of ``grad * y`` over
        the batch and pixel dimensions of a broadcast product is several times slower on the CPU).
    """
    if len(outputs) != weight.shape[0]:
        raise ValueError(f"expected {weight.shape[0]} scale outputs, got {len(outputs)}")
    sources = list(sources) if sources is not None else [None] * len(outputs)
    factors = tuple(
        None if z is None else centers_factor(z, tuple(y.shape[-2:]))
        for z, y in zip(sources, outputs, strict=True)
    )
    sources = [z if f else None for z, f in zip(sources, factors, strict=True)]
    if all(f is None for f in factors):
        return _ScaleFuse.apply(weight, factors, None, *outputs, *sources)
    # the levels without a source as plain autograd products with the weights detached (their
    # weights' gradient is _ScaleFuse's): autograd's w_l * g is then a fresh tensor, added in
    # place to the level's own (deep-supervision) gradient, which bounds the low-memory peak
    base = None
    for w, y, f in zip(weight.detach(), outputs, factors, strict=True):
        if f is None:
            w = w.view(1, -1, 1, 1)
            base = w * y if base is None else torch.addcmul(base, w, y)
    return _ScaleFuse.apply(weight, factors, base, *outputs, *sources)


def _dot_per_channel(a: torch.Tensor, b: torch.Tensor, planes: int = 4) -> torch.Tensor:
    """``sum_{b, h, w} a * b`` per channel: [B, C, H, W] x 2 -> [C], ``planes`` planes at a
    time (the product's temporary stays a fraction of a full-size map)."""
    n, c = a.shape[:2]
    a, b = a.reshape(n * c, -1), b.reshape(n * c, -1)
    out = torch.cat(
        [(a[i : i + planes] * b[i : i + planes]).sum(1) for i in range(0, n * c, planes)]
    )
    return out.view(n, c).sum(0)


class _ScaleFuse(torch.autograd.Function):
    """``base + sum_l w_l * y_l`` (w_l [C] per channel; with ``base``, the sum runs over the
    levels given with a source only, the others being in ``base``). Backward: ``dbase = g``;
    ``dy_l = w_l * g`` and ``dw_l[c] = sum_{b, h, w} g * y_l``, or, for a level given with its
    source ``z_l`` (``y_l = up(z_l)``), ``dz_l = w_l * up^T(g)`` and ``dw_l = <up^T(g), z_l>``."""

    @staticmethod
    def forward(ctx, weight, factors, base, *tensors):
        n = len(factors)
        outputs, sources = tensors[:n], tensors[n:]
        ctx.factors, ctx.has_base = factors, base is not None
        kept = [None if f else y for f, y in zip(factors, outputs, strict=True)]
        ctx.save_for_backward(weight, *kept, *sources)
        fused = base
        for w, y, f in zip(weight, outputs, factors, strict=True):
            if base is not None and f is None:
                continue  # in base
            w = w.view(1, -1, 1, 1)  # one multiply-add per level (no separate product)
            fused = w * y if fused is None else torch.addcmul(fused, w, y)
        return fused

    @staticmethod
    def backward(ctx, grad):
        weight, *saved = ctx.saved_tensors
        n = len(ctx.factors)
        outputs, sources = saved[:n], saved[n:]
        grad_w, grads_y, grads_z = [], [None] * n, [None] * n
        for l, (f, w, y, z) in enumerate(zip(ctx.factors, weight, outputs, sources, strict=True)):
            w4 = w.view(1, -1, 1, 1)
            if f is None and ctx.has_base:  # y_l's gradient goes through base, w_l's here
                grad_w.append(_dot_per_channel(grad, y))
            elif f is None:
                grad_w.append(_dot_per_channel(grad, y))
                if ctx.needs_input_grad[3 + l]:
                    grads_y[l] = (grad * w4).to(y.dtype)
            else:  # y = up(z): back to the level's resolution first
                a = upsample_adjoint(grad, f, False, z.shape)
                grad_w.append(_dot_per_channel(a, z))
                if ctx.needs_input_grad[3 + n + l]:
                    grads_z[l] = (a * w4).to(z.dtype)
        gw = torch.stack(grad_w).to(weight.dtype) if ctx.needs_input_grad[0] else None
        gbase = grad if ctx.has_base and ctx.needs_input_grad[2] else None
        return (gw, None, gbase, *grads_y, *grads_z)


class ScaleFusion(nn.Module):
    """S^t: learned additive fusion of one task's outputs over the pyramid levels.

    ``forward(outputs)``: list of L tensors [B, C, H, W] (all at the input resolution) ->
    [B, C, H, W]. One weight per level and channel, initialised to the mean.
    """

    def __init__(self, num_scales: int, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_scales, channels), 1.0 / num_scales))

    def forward(
        self, outputs: list[torch.Tensor], sources: list[torch.Tensor | None] | None = None
    ) -> torch.Tensor:
        """``outputs``: L tensors [B, C, H, W]; ``sources``: see :func:`scale_fuse`."""
        return scale_fuse(self.weight, outputs, sources)  # Fig. 2, S^t
