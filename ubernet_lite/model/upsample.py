"""Bilinear upsampling by an integer factor: ``F.interpolate`` forward, a strided convolution back.

Bilinear interpolation by an integer factor ``f`` is a transposed convolution with stride ``f``
and a separable triangle kernel (each output pixel mixes its two nearest inputs per axis with the
same weights at every period). Its gradient with respect to the input is therefore the adjoint of
that transposed convolution: a depthwise *convolution* of the output gradient with the same
kernel and stride ``f``, which reads each output pixel once. On the CPU we take the best of both
forms: the forward is ``F.interpolate`` itself (the same values), the backward that strided
convolution (the same gradient up to float rounding; ``F.interpolate``'s own backward scatters
and costs several times more, and so does the transposed convolution's forward). Other devices,
and sizes that are not an integer multiple, use ``F.interpolate`` and its autograd.

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


def _corners_kernel(factor: int, like: torch.Tensor) -> torch.Tensor:
    """The triangle ``(1, 2, ..., f, ..., 2, 1) / f`` (``2 f - 1`` taps) of ``align_corners=True``."""
    i = torch.arange(1, 2 * factor, dtype=like.dtype, device=like.device)
    return (factor - (i - factor).abs()) / factor


def _centers_kernel(factor: int, like: torch.Tensor) -> torch.Tensor:
    """The taps ``1 - |(r + 0.5) / f - 1|``, ``r = 0 .. 2 f - 1``, of ``align_corners=False``."""
    r = torch.arange(2 * factor, dtype=like.dtype, device=like.device)
    return 1 - ((r + 0.5) / factor - 1).abs()


class _Upsample(torch.autograd.Function):
    """``F.interpolate(x, size, "bilinear", align_corners=corners)`` by an integer ``factor``
    ([B, C, h, w] -> [B, C, H, W]), whose backward is the strided depthwise convolution that is
    the adjoint of the equivalent transposed convolution:

    * corners: ``y = conv_transpose(x, k, stride f, padding f - 1)``, so
      ``dx = conv(dy, k, stride f, padding f - 1)``;
    * centers (even ``f``): ``y = conv_transpose(pad_1(x), k, stride f, padding 3 f / 2)`` with
      ``pad_1`` the replication of the border pixels, so ``dx = pad_1^T(conv(dy, k, stride f,
      padding 3 f / 2))``: the padding ring's gradient added back onto the border pixels.
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
        if ctx.corners:  # (a cropped gradient: the cut rows and columns count as zeros)
            return _corners_adjoint(grad, ctx.factor, ctx.shape), None, None, None
        if (gh, gw) != (sh, sw):
            grad = F.pad(grad, (0, sw - gw, 0, sh - gh))
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


def _corners_adjoint(grad: torch.Tensor, f: int, shape: torch.Size) -> torch.Tensor:
    """:func:`upsample_adjoint` of ``align_corners=True`` by separable strided slices, for a
    gradient [B, C, H, W] of the (possibly cropped) output -> [B, C, h, w] (``shape``). On the
    CPU about as fast as oneDNN's strided depthwise convolution, without its reordered copies
    of the gradient (several times the gradient's size, at the peak of the low-memory step)."""
    h, w = shape[-2:]
    return _adjoint_axis(_adjoint_axis(grad, f, h, -2), f, w, -1)


def upsample_adjoint(
    grad: torch.Tensor, factor: int, corners: bool, shape: torch.Size
) -> torch.Tensor:
    """The adjoint of :func:`upsample_corners` / :func:`upsample_centers` (``corners``) by
    ``factor`` from an input of ``shape`` [B, C, h, w]: the gradient with respect to the input
    of ``(grad * upsample(x)).sum()``, [B, C, H, W] -> [B, C, h, w] (see :class:`_Upsample`)."""
    f, (b, c, h, w) = factor, shape
    if not corners and f % 2 == 0 and tuple(grad.shape[-2:]) == (f * h, f * w):
        return _centers_axis(_centers_axis(grad, f, h, -2), f, w, -1)
    planes = grad.reshape(1, b * c, *grad.shape[-2:])
    if corners:
        k = _depthwise(_corners_kernel(f, grad), b * c)
        dx = F.conv2d(planes, k, stride=f, padding=f - 1, groups=b * c)
        return dx.view(b, c, h, w)
    k = _depthwise(_centers_kernel(f, grad), b * c)
    dp = F.conv2d(planes, k, stride=f, padding=f + f // 2, groups=b * c)[0]  # [BC, h+2, w+2]
    dx = dp[:, 1:-1, 1:-1].contiguous()  # (a new tensor: added to in place below)
    dx[:, 0, :] += dp[:, 0, 1:-1]  # the replicated rows and columns
    dx[:, -1, :] += dp[:, -1, 1:-1]
    dx[:, :, 0] += dp[:, 1:-1, 0]
    dx[:, :, -1] += dp[:, 1:-1, -1]
    dx[:, 0, 0] += dp[:, 0, 0]  # and the four corners
    dx[:, 0, -1] += dp[:, 0, -1]
    dx[:, -1, 0] += dp[:, -1, 0]
    dx[:, -1, -1] += dp[:, -1, -1]
    return dx.view(b, c, h, w)


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
