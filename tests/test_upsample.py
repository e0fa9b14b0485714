"""Bilinear upsampling as a depthwise transposed convolution against F.interpolate, in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ubernet_lite.model.pyramid import to_input_resolution
from ubernet_lite.model.skip import upsample_from_stride
from ubernet_lite.model.upsample import upsample_centers, upsample_corners


def _check(new_fn, ref_fn, x):
    a_in, b_in = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    a, b = new_fn(a_in), ref_fn(b_in)
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    g = torch.randn(b.shape, dtype=x.dtype)
    a.backward(g)
    b.backward(g)
    torch.testing.assert_close(a_in.grad, b_in.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
@pytest.mark.parametrize("hw", [(5, 5), (9, 13), (17, 2)])
def test_upsample_corners_is_interpolate_align_corners(factor, hw):
    x = torch.randn(2, 3, *hw, dtype=torch.float64)
    size = tuple(factor * (n - 1) + 1 for n in hw)
    _check(
        lambda z: upsample_corners(z, factor),
        lambda z: F.interpolate(z, size=size, mode="bilinear", align_corners=True),
        x,
    )


@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("hw", [(4, 4), (7, 10), (1, 3)])
def test_upsample_centers_is_interpolate_half_pixel(factor, hw):
    x = torch.randn(2, 3, *hw, dtype=torch.float64)
    size = tuple(factor * n for n in hw)
    _check(
        lambda z: upsample_centers(z, factor),
        lambda z: F.interpolate(z, size=size, mode="bilinear", align_corners=False),
        x,
    )


@pytest.mark.parametrize("size", [(128, 128), (40, 50), (33, 31)])
def test_model_upsamplers_match_interpolate(size):
    for stride in (2, 4, 8):
        n = [-(-(s - 1) // stride) + 1 for s in size]  # the fewest cells covering the level
        x = torch.randn(1, 2, *n, dtype=torch.float64)
        span = [stride * (c - 1) + 1 for c in n]
        _check(
            lambda z, s=stride: upsample_from_stride(z, s, size),
            lambda z, span=span: F.interpolate(z, size=span, mode="bilinear", align_corners=True)[
                ..., : size[0], : size[1]
            ],
            x,
        )
    for scale in (2, 4, 3):
        if size[0] % scale or size[1] % scale:
            continue
        x = torch.randn(2, 3, size[0] // scale, size[1] // scale, dtype=torch.float64)
        _check(
            lambda z: to_input_resolution(z, size),
            lambda z: F.interpolate(z, size=size, mode="bilinear", align_corners=False),
            x,
        )
