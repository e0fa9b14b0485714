"""Bilinear upsampling by an integer factor: ``F.interpolate`` forward, its exact adjoint back.

Bilinear interpolation by an integer factor ``f`` is a transposed convolution with stride ``f``
and a separable triangle kernel (each output pixel mixes its two nearest inputs per axis with the
same weights at every period). Its gradient with respect to the input is therefore the adjoint of
that transposed convolution, which reads each output pixel once: per axis, the sum of ``f``
strided slices of the output gradient, weighted by the kernel's taps. On the CPU the forward is
``F.interpolate`` itself (the same values) and the backward those strided slices (the same
gradient up to float rounding; ``F.interpolate``'s own backward scatters and costs several times
more, and a strided depthwise convolution makes reordered copies of the gradient at the
low-memory peak). Other devices, odd factors of ``upsample_centers`` and sizes that are not an
integer multiple use ``F.interpolate`` and its autograd.

* :func:`upsample_corners`: ``align_corners=True``, ``n -> f (n - 1) + 1`` (cell ``j`` on pixel
  ``f j``: the skip layers' maps, see ``skip.upsample_from_stride``);
* :func:`upsample_centers`: ``align_corners=False``, ``n -> f n`` (pixel centres; the pyramid
  levels back to the input resolution, see ``pyramid.to_input_resolution``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _use_conv(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dim() == 4 and x.is_floating_point()


class _Upsample(torch.autograd.Function):
    """``F.interpolate(x, size, "bilinear", align_corners=corners)`` by an integer ``factor``
    ([B, C, h, w] -> [B, C, H, W], optionally cropped), whose backward is the interpolation's
    exact adjoint (:func:`upsample_adjoint`): for ``y = conv_transpose(x, k, stride f)``,
    ``dx = conv(dy, k, stride f)``, written as strided slices per axis; for centers (even ``f``)
    the border pixels also collect the gradient of their replicated neighbours (the clamp).
    """

    @staticmethod
    def forward(ctx, x, factor: int, corners: bool, crop=None):
        ctx.factor, ctx.corners, ctx.shape = factor, corners, x.shape
        h, w = x.shape[-2:]
        if corners:
            size = (factor * (h - 1) + 1, factor * (w - 1) + 1)
        else:
            size = (factor * h, factor * w)
        ctx.size = size
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=corners)
        if crop is None or tuple(crop) == size:
            return y
        return y[..., : crop[0], : crop[1]]  # (a view: the crop costs nothing forward)

    @staticmethod
    def backward(ctx, grad):
        (sh, sw), (gh, gw) = ctx.size, grad.shape[-2:]
        if not ctx.corners and (gh, gw) != (sh, sw):
            grad = F.pad(grad, (0, sw - gw, 0, sh - gh))
        # (corners: a cropped gradient's cut rows and columns count as zeros in the adjoint)
        return upsample_adjoint(grad, ctx.factor, ctx.corners, ctx.shape), None, None, None


def _adjoint_axis(g: torch.Tensor, f: int, n: int, dim: int) -> torch.Tensor:
    """The adjoint of the ``align_corners=True`` interpolation by ``f`` along ``dim``, from a
    gradient of length ``L <= f (n - 1) + 1`` there (shorter when the output was cropped) to
    the ``n`` cells: ``out[j] = sum_{|r| < f} (1 - |r| / f) g[f j + r]`` over the rows of ``g``.
    Strided slices and in-place adds: no temporary larger than the result."""
    length = g.shape[dim]

    def rows(start: int, count: int) -> torch.Tensor:  # g[start::f][:count] along dim
        idx = [slice(None)] * g.dim()
        idx[dim] = slice(start, start + f * (count - 1) + 1, f)
        return g[tuple(idx)]

    shape = list(g.shape)
    shape[dim] = n
    out = g.new_zeros(shape)
    c = min(n, (length - 1) // f + 1)
    out.narrow(dim, 0, c).add_(rows(0, c))  # r = 0: the cell's own pixel
    for r in range(1, f):
        w = 1 - r / f
        c = min(n, -(-(length - r) // f))  # pixels f j + r, j = 0 ..
        if c > 0:
            out.narrow(dim, 0, c).add_(rows(r, c), alpha=w)
        c = min(n - 1, -(-(length - (f - r)) // f))  # pixels f j - r, j = 1 ..
        if c > 0:
            out.narrow(dim, 1, c).add_(rows(f - r, c), alpha=w)
    return out


def _centers_axis(g: torch.Tensor, f: int, n: int, dim: int) -> torch.Tensor:
    """The adjoint of the ``align_corners=False`` interpolation by an even ``f`` along ``dim``,
    from the ``f n`` pixels of ``g`` to the ``n`` cells. Pixel ``f j + q`` reads the input at
    ``j + (q + 0.5) / f - 0.5``: for ``q < f / 2`` cells ``j`` and ``j - 1`` with weights
    ``1 - a``, ``a`` (``a = (f / 2 - q - 0.5) / f``), otherwise ``j`` and ``j + 1`` with
    ``1 - b``, ``b`` (``b = (q + 0.5 - f / 2) / f``); a neighbour outside the map is the border
    cell (``F.interpolate``'s clamp)."""
    shape = list(g.shape)
    shape[dim] = n
    out = g.new_zeros(shape)

    def pixels(q: int) -> torch.Tensor:  # g[q::f] along dim: n pixels
        idx = [slice(None)] * g.dim()
        idx[dim] = slice(q, None, f)
        return g[tuple(idx)]

    for q in range(f):
        gq = pixels(q)
        if q < f // 2:
            a = (f / 2 - q - 0.5) / f
            out.add_(gq, alpha=1 - a)
            if n > 1:
                out.narrow(dim, 0, n - 1).add_(gq.narrow(dim, 1, n - 1), alpha=a)
            out.narrow(dim, 0, 1).add_(gq.narrow(dim, 0, 1), alpha=a)  # the clamp at 0
        else:
            b = (q + 0.5 - f / 2) / f
            out.add_(gq, alpha=1 - b)
            if n > 1:
                out.narrow(dim, 1, n - 1).add_(gq.narrow(dim, 0, n - 1), alpha=b)
            out.narrow(dim, n - 1, 1).add_(gq.narrow(dim, n - 1, 1), alpha=b)  # at n - 1
    return out


def upsample_adjoint(
    grad: torch.Tensor, factor: int, corners: bool, shape: torch.Size
) -> torch.Tensor:
    """The adjoint of :func:`upsample_corners` / :func:`upsample_centers` (``corners``) by
    ``factor`` from an input of ``shape`` [B, C, h, w]: the gradient with respect to the input
    of ``(grad * upsample(x)).sum()``, [B, C, H, W] -> [B, C, h, w], by separable strided slices.

    ``corners``: ``grad`` may be of a cropped output (``H <= f (h - 1) + 1``). Centers: an even
    ``factor`` and ``H, W = f h, f w`` (the only ones :class:`_Upsample` and
    :func:`centers_factor` hand out). No temporary larger than the result: on the CPU about as
    fast as oneDNN's strided depthwise convolution, without its reordered copies of the gradient
    (several times the gradient's size, at the peak of the low-memory step).
    """
    f, (h, w) = factor, shape[-2:]
    if corners:
        return _adjoint_axis(_adjoint_axis(grad, f, h, -2), f, w, -1)
    if f % 2 or tuple(grad.shape[-2:]) != (f * h, f * w):
        raise ValueError(
            f"upsample_adjoint: centers needs an even factor and a [.., {f * h}, {f * w}] "
            f"gradient, got factor {f} and {tuple(grad.shape)}"
        )
    return _centers_axis(_centers_axis(grad, f, h, -2), f, w, -1)


def centers_factor(x: torch.Tensor, size: tuple[int, int]) -> int | None:
    """The factor ``f`` when ``upsample_centers(x, f)`` brings ``x`` [B, C, h, w] to ``size``
    through :class:`_Upsample` (so that :func:`upsample_adjoint` is its backward), else None."""
    h, w = x.shape[-2:]
    if not _use_conv(x) or size[0] % h or size[1] % w or size[0] // h != size[1] // w:
        return None
    f = size[0] // h
    return f if f > 1 and f % 2 == 0 else None


def upsample_corners(
    x: torch.Tensor, factor: int, crop: tuple[int, int] | None = None
) -> torch.Tensor:
    """``F.interpolate(x, size=f (n - 1) + 1, mode="bilinear", align_corners=True)`` per axis,
    cropped to the first ``crop`` rows and columns when given.

    [B, C, h, w] -> [B, C, f (h - 1) + 1, f (w - 1) + 1] (or ``crop``). Kernel of the backward:
    the triangle ``(1, 2, ..., f, ..., 2, 1) / f`` (``2 f - 1`` taps), padding ``f - 1``.
    """
    h, w = x.shape[-2:]
    if factor == 1:
        return x if crop is None else x[..., : crop[0], : crop[1]]
    if not _use_conv(x):
        size = (factor * (h - 1) + 1, factor * (w - 1) + 1)
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return y if crop is None else y[..., : crop[0], : crop[1]]
    return _Upsample.apply(x, factor, True, None if crop is None else tuple(crop))


def upsample_centers(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``F.interpolate(x, size=f n, mode="bilinear", align_corners=False)`` per axis.

    [B, C, h, w] -> [B, C, f h, f w]. Output pixel ``o`` reads the input at ``(o + 0.5) / f - 0.5``
    (clamped to the first and last pixel), i.e. kernel taps ``1 - |(r + 0.5) / f - 1|`` for
    ``r = 0 .. 2 f - 1`` on the input padded by one replicated pixel, padding ``3 f / 2`` (even
    ``f``; an odd ``f`` uses ``F.interpolate`` and its autograd).
    """
    if factor == 1:
        return x
    h, w = x.shape[-2:]
    if not _use_conv(x) or factor % 2:
        return F.interpolate(x, size=(factor * h, factor * w), mode="bilinear", align_corners=False)
    return _Upsample.apply(x, factor, False)
