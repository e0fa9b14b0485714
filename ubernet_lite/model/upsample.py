"""Bilinear upsampling by an integer factor, as a fixed depthwise transposed convolution.

Bilinear interpolation by an integer factor ``f`` is a transposed convolution with stride ``f``
and a separable triangle kernel (each output pixel mixes its two nearest inputs per axis with the
same weights at every period). On the CPU this form, forward and backward, costs about half of
``F.interpolate`` (whose backward scatters); the values are the same up to float rounding. Other
devices, and sizes that are not an integer multiple, use ``F.interpolate``.

* :func:`upsample_corners`: ``align_corners=True``, ``n -> f (n - 1) + 1`` (cell ``j`` on pixel
  ``f j``: the skip layers' maps, see ``skip.upsample_from_stride``);
* :func:`upsample_centers`: ``align_corners=False``, ``n -> f n`` (pixel centres; the pyramid
  levels back to the input resolution, see ``pyramid.to_input_resolution``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _depthwise(kernel: torch.Tensor, channels: int) -> torch.Tensor:
    """The separable 2-D kernel ``k k^T`` for every channel: [channels, 1, K, K]."""
    return (kernel[:, None] * kernel[None, :]).expand(channels, 1, -1, -1).contiguous()


def _use_conv(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dim() == 4 and x.is_floating_point()


def upsample_corners(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``F.interpolate(x, size=f (n - 1) + 1, mode="bilinear", align_corners=True)`` per axis.

    [B, C, h, w] -> [B, C, f (h - 1) + 1, f (w - 1) + 1]. Kernel: the triangle
    ``(1, 2, ..., f, ..., 2, 1) / f`` (``2 f - 1`` taps), padding ``f - 1``.
    """
    h, w = x.shape[-2:]
    size = (factor * (h - 1) + 1, factor * (w - 1) + 1)
    if factor == 1:
        return x
    if not _use_conv(x):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    i = torch.arange(1, 2 * factor, dtype=x.dtype, device=x.device)
    kernel = (factor - (i - factor).abs()) / factor
    b, c = x.shape[:2]
    planes = x.reshape(1, b * c, h, w)  # every plane a channel: the kernel runs on whole blocks
    y = F.conv_transpose2d(
        planes, _depthwise(kernel, b * c), stride=factor, padding=factor - 1, groups=b * c
    )
    return y.view(b, c, *y.shape[-2:])


def upsample_centers(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``F.interpolate(x, size=f n, mode="bilinear", align_corners=False)`` per axis.

    [B, C, h, w] -> [B, C, f h, f w]. Output pixel ``o`` reads the input at ``(o + 0.5) / f - 0.5``
    (clamped to the first and last pixel), i.e. kernel taps ``1 - |(r + 0.5) / f - 1|`` for
    ``r = 0 .. 2 f - 1`` on the input padded by one replicated pixel, padding ``3 f / 2`` (even
    ``f``; an odd ``f`` uses ``F.interpolate``).
    """
    if factor == 1:
        return x
    h, w = x.shape[-2:]
    if not _use_conv(x) or factor % 2:
        return F.interpolate(x, size=(factor * h, factor * w), mode="bilinear", align_corners=False)
    r = torch.arange(2 * factor, dtype=x.dtype, device=x.device)
    kernel = 1 - ((r + 0.5) / factor - 1).abs()
    b, c = x.shape[:2]
    planes = F.pad(x.reshape(1, b * c, h, w), (1, 1, 1, 1), mode="replicate")
    y = F.conv_transpose2d(
        planes, _depthwise(kernel, b * c), stride=factor, padding=factor + factor // 2, groups=b * c
    )
    return y.view(b, c, *y.shape[-2:])
