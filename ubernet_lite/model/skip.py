"""Tap normalisation B_i and the per-task skip layers E_i^t with additive fusion F^t (Sec. 2).

Fig. 2 of the paper: the trunk's responses C_i go through Batch Normalization B_i (one per tap,
shared by every task and every pyramid scale: the responses of conv1_2 and fc7 differ by orders
of magnitude, BN brings them "in a common range"), then through task-specific *linear* skip
layers E_i^t (1x1 convolutions, no non-linearity), which are interpolated to a common resolution
and fused additively with learned weights F^t:

    y^t = sum_i F^t_i * up(E_i^t(B_i(C_i)))          (Fig. 2, "F^t"; one weight per tap and channel)

Task-specific deviations: none. The paper (Sec. 4) uses "skip-layer connections for all network
layers, pyramid levels, and tasks", so every dense task reads all six taps. The normals branch is
linear like the others; its output is *not* normalised here (the loss l2-normalises it, Sec. 2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .upsample import upsample_corners


def conv1x1(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``F.conv2d(x, weight, bias)`` for a 1x1 kernel: [B, C_in, h, w] -> [B, C_out, h, w].

    On the CPU as one batched matrix product ``W x + b`` over the pixels (its backward two
    more), which is faster than the convolution's 1x1 path and allocates no per-thread buffers
    in its backward; elsewhere (and for channels-last inputs) ``F.conv2d``."""
    if x.device.type != "cpu" or not x.is_contiguous() or weight.shape[-2:] != (1, 1):
        return F.conv2d(x, weight, bias)
    n, c, h, w = x.shape
    mat = weight.reshape(1, weight.shape[0], c).expand(n, -1, -1)  # [B, C_out, C_in]
    y = torch.baddbmm(bias.reshape(1, -1, 1), mat, x.reshape(n, c, h * w))
    return y.view(n, -1, h, w)


def upsample_from_stride(x: torch.Tensor, stride: int, size: tuple[int, int]) -> torch.Tensor:
    """Bring a stride-``stride`` map to the resolution of its image level, aligned exactly.

    Cell ``j`` of a stride-``s`` trunk map sits on pixel ``s * j`` (see ``vgg.py``), so a map of
    ``n`` cells spans pixels ``0 .. s (n - 1)``; bilinear interpolation with ``align_corners=True``
    to ``s (n - 1) + 1`` pixels puts every cell on its pixel, and we crop to ``size`` (the span is
    ``>= size``: ``H`` for odd ``H``, ``H + 1`` for even ``H``).

    [B, C, h, w] -> [B, C, size[0], size[1]].
    """
    if stride == 1 and tuple(x.shape[-2:]) == tuple(size):
        return x
    h, w = x.shape[-2:]
    span = (stride * (h - 1) + 1, stride * (w - 1) + 1)
    if span[0] < size[0] or span[1] < size[1]:
        raise ValueError(
            f"a stride-{stride} map of {h}x{w} cannot cover a {size[0]}x{size[1]} level"
        )
    # = F.interpolate(x, span, "bilinear", align_corners=True)[..., :size[0], :size[1]]
    return upsample_corners(x, stride, None if tuple(span) == tuple(size) else tuple(size))


class TapNorms(nn.Module):
    """The six Batch Normalizations B_1..B_6 of the taps, shared by tasks and scales (Sec. 2).

    ``forward(taps)``: list of six [B, C_i, h_i, w_i] -> list of six tensors of the same shapes.
    New tensors: the trunk's tensors are not modified.
    """

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in channels)

    def forward(self, taps: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(taps) != len(self.norms):
            raise ValueError(f"expected {len(self.norms)} taps, got {len(taps)}")
        return [bn(c) for bn, c in zip(self.norms, taps, strict=True)]


class SkipFusion(nn.Module):
    """One task's skip layers E_i^t (linear 1x1 convs) and additive fusion F^t, for one scale.

    The same module serves every pyramid scale (weights tied across scales, Fig. 2).

    Args:
        tap_channels: channels of the six taps.
        tap_strides: their strides relative to the image level (1, 2, 4, 8, 8, 8).
        out_channels: the task's prediction channels (``TaskSpec.out_channels``).

    ``forward(taps, size)``: six normalised taps [B, C_i, h_i, w_i] of one image level and the
    level's size ``(h, w)`` -> [B, out_channels, h, w]. Does not modify its inputs.
    """

    def __init__(
        self, tap_channels: tuple[int, ...], tap_strides: tuple[int, ...], out_channels: int
    ):
        super().__init__()
        if len(tap_channels) != len(tap_strides):
            raise ValueError("tap_channels and tap_strides must have the same length")
        self.tap_strides = tuple(tap_strides)
        self.skips = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in tap_channels)  # E_i^t
        # F^t: one weight per tap and output channel, starting at the mean over the taps.
        self.fusion = nn.Parameter(
            torch.full((len(tap_channels), out_channels), 1.0 / len(tap_channels))
        )

    def responses(self, taps: list[torch.Tensor], size: tuple[int, int]) -> list[torch.Tensor]:
        """Each tap's skip response at the level's resolution: six [B, out_channels, h, w]."""
        return [
            upsample_from_stride(e(c), s, size)
            for e, c, s in zip(self.skips, taps, self.tap_strides, strict=True)
        ]

    def folded(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """F^t_i folded into E_i^t: per tap, the weight [out, C_i, 1, 1] and bias [out] of the
        1x1 convolution ``F^t_i * E_i^t`` (computed once, used by every pyramid level)."""
        return [
            (e.weight * w.view(-1, 1, 1, 1), e.bias * w)
            for e, w in zip(self.skips, self.fusion, strict=True)
        ]

    def forward(
        self,
        taps: list[torch.Tensor],
        size: tuple[int, int],
        folded: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        # Everything here is linear, so we compute the same sum more cheaply: F^t_i is folded
        # into E_i^t's weights (no full-resolution multiply; ``folded``, which the caller may
        # pass once for all levels), and the taps that share a stride (conv4_3, conv5_3, fc7 at
        # 8) are summed before one interpolation (interpolation is linear too). Equal to
        # sum_i F^t_i * up(E_i^t(B_i(C_i))), see ``responses``.
        return self.upsampled(self.by_stride(taps, folded), size)

    def by_stride(
        self,
        taps: list[torch.Tensor],
        folded: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> dict[int, torch.Tensor]:
        """``{s: sum of F^t_i * E^t_i(B_i(C_i)) over the taps i of stride s}``, each at its
        stride's resolution [B, out_channels, h_s, w_s] (conv4_3, conv5_3 and fc7 share 8)."""
        folded = self.folded() if folded is None else folded
        by_stride: dict[int, torch.Tensor] = {}
        for (w, b), c, s in zip(folded, taps, self.tap_strides, strict=True):
            y = conv1x1(c, w, b)  # F^t_i * E^t_i(B_i(C_i))
            by_stride[s] = y if s not in by_stride else by_stride[s] + y
        return by_stride

    @staticmethod
    def chains(by_stride: dict[int, torch.Tensor]) -> bool:
        """Whether every stride divides the next coarser one (1, 2, 4, 8: the coarse-to-fine
        chain of :meth:`upsampled` applies)."""
        strides = sorted(by_stride, reverse=True)
        return all(a % b == 0 for a, b in zip(strides, strides[1:], strict=False))

    @staticmethod
    def upsampled(by_stride: dict[int, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """The sum of :meth:`by_stride`'s maps at the level's resolution [B, C, h, w]."""
        strides = sorted(by_stride, reverse=True)
        if not SkipFusion.chains(by_stride):
            out = None
            for s, y in by_stride.items():
                term = upsample_from_stride(y, s, size)
                out = term if out is None else out + term
            return out
        # Coarse to fine: a stride-8 map interpolated onto the stride-4 cells (which lie on its
        # own grid lines: cell j at pixel 4 j) is the same piecewise-bilinear function, so
        # up_8(y_8) + up_4(y_4) = up_4(up_{8->4}(y_8) + y_4) exactly, and only the finest sum is
        # interpolated to full resolution (one full-size interpolation instead of three).
        out = SkipFusion.coarse_to_fine(by_stride, strides)
        return upsample_from_stride(out, strides[-1], size)

    @staticmethod
    def coarse_to_fine(by_stride: dict[int, torch.Tensor], strides: list[int]) -> torch.Tensor:
        """The maps of ``strides`` (coarse to fine, each dividing the previous) summed on the
        finest one's cells: ``up_{s_k -> s_{k+1}}(...) + y_{s_{k+1}}``, [B, C, h_s, w_s] of the
        last stride (the coarse-to-fine chain of :meth:`upsampled`)."""
        out = by_stride[strides[0]]
        for coarse, fine in zip(strides, strides[1:], strict=False):
            y = by_stride[fine]
            out = upsample_from_stride(out, coarse // fine, tuple(y.shape[-2:])) + y
        return out
