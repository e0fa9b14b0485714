"""The separable RoIAlign of the detection branch against torchvision's, in float64, with gradients."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align

from ubernet_lite.model.detection import FEATURE_KEY, RoIAlignDict, separable_roi_align


def _boxes(n, side, g):
    """Boxes of every kind: inside, crossing the border, tiny (under one cell), degenerate."""
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * side * 1.2 - 0.1 * side
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * side * 0.6
    wh[: n // 4] *= 0.02  # smaller than a cell
    wh[-2:] = 0  # a point
    return torch.cat([xy, xy + wh], 1)


@pytest.mark.parametrize(
    "size,scale,sampling", [((17, 17), 1 / 8, 2), ((9, 13), 1 / 8, 3), ((5, 6), 1.0, 1)]
)
def test_separable_roi_align_matches_torchvision(size, scale, sampling):
    g = torch.Generator().manual_seed(0)
    h, w = size
    x = torch.randn(3, 5, h, w, dtype=torch.float64, generator=g)
    # 37 boxes: three chunks of ROI_CHUNK (16) in one image, the last one partial
    boxes = [_boxes(n, max(h, w) / scale, g) for n in (11, 0, 37)]
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    new = separable_roi_align(x1, boxes, 7, scale, sampling)
    ref = roi_align(x2, boxes, 7, spatial_scale=scale, sampling_ratio=sampling, aligned=False)
    torch.testing.assert_close(new, ref, rtol=1e-12, atol=1e-12)
    up = torch.randn(ref.shape, dtype=torch.float64, generator=g)
    (new * up).sum().backward()
    (ref * up).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-12)


def test_pooler_is_multiscale_roi_align():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 17, 17, dtype=torch.float64, generator=g)
    boxes = [_boxes(9, 128, g), _boxes(5, 128, g)]
    shapes = [(128, 128), (128, 128)]
    feats = OrderedDict([(FEATURE_KEY, x)])
    ref = MultiScaleRoIAlign([FEATURE_KEY], output_size=7, sampling_ratio=2)(feats, boxes, shapes)
    torch.testing.assert_close(
        RoIAlignDict(7, 2)(feats, boxes, shapes), ref, rtol=1e-12, atol=1e-12
    )


def test_no_boxes_gives_an_empty_batch():
    x = torch.randn(2, 4, 9, 9)
    out = separable_roi_align(x, [torch.zeros(0, 4), torch.zeros(0, 4)], 7, 1 / 8, 2)
    assert out.shape == (0, 4, 7, 7)


def test_float32_under_autocast_as_torchvision():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 4, 9, 9, generator=g).to(torch.bfloat16)
    boxes = [_boxes(6, 64, g).float()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        new = separable_roi_align(x, boxes, 7, 1 / 8, 2)
        ref = roi_align(x, boxes, 7, spatial_scale=1 / 8, sampling_ratio=2, aligned=False)
    assert new.dtype == ref.dtype
    torch.testing.assert_close(new.float(), ref.float())
