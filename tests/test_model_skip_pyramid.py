"""Skip layers (E^t linear, F^t), tap BatchNorms, the pyramid and the scale fusion S^t."""

import pytest
import torch
import torch.nn.functional as F

from ubernet_lite.model import SkipFusion, image_pyramid, min_input_size
from ubernet_lite.model.pyramid import ScaleFusion, level_size
from ubernet_lite.model.skip import TapNorms, upsample_from_stride


def test_upsampling_puts_cell_j_on_pixel_stride_times_j():
    for H in (321, 128):
        n = H
        for _ in range(3):
            n = n // 2 + 1
        ramp = torch.arange(n, dtype=torch.float32).view(1, 1, n, 1).expand(1, 1, n, 5)
        up = upsample_from_stride(ramp, 8, (H, 5))
        assert up.shape == (1, 1, H, 5)
        torch.testing.assert_close(up[0, 0, :, 2], torch.arange(H, dtype=torch.float32) / 8)


def test_skip_layers_are_linear_and_fuse_all_taps():
    torch.manual_seed(0)
    chans, strides = (4, 6, 8, 8, 8, 10), (1, 2, 4, 8, 8, 8)
    skip = SkipFusion(chans, strides, out_channels=3)
    sizes = [(33, 33), (17, 17), (9, 9), (5, 5), (5, 5), (5, 5)]

    def taps():
        return [torch.randn(2, c, *s) for c, s in zip(chans, sizes, strict=True)]

    a, b = taps(), taps()
    zero = [torch.zeros_like(t) for t in a]
    f = lambda t: skip(t, (33, 33))  # noqa: E731
    torch.testing.assert_close(f([x + y for x, y in zip(a, b, strict=True)]), f(a) + f(b) - f(zero))
    assert f(a).shape == (2, 3, 33, 33)
    # every tap contributes
    for i in range(6):
        changed = [t.clone() for t in a]
        changed[i] = changed[i] + 1
        assert not torch.allclose(f(changed), f(a))


def test_tap_norms_bring_taps_to_a_common_range():
    norms = TapNorms((2, 3)).train()
    taps = [torch.randn(4, 2, 8, 8) * 100 + 50, torch.rand(4, 3, 4, 4) * 0.1]
    out = norms(taps)
    for y in out:
        assert y.mean().abs() < 1e-4 and (y.std() - 1).abs() < 0.05


def test_pyramid_levels_and_min_size():
    x = torch.rand(1, 3, 321, 481)
    levels = image_pyramid(x, (1.0, 0.5, 0.25))
    assert [tuple(v.shape[-2:]) for v in levels] == [(321, 481), (160, 240), (80, 120)]
    assert levels[0] is x
    m = min_input_size((1.0, 0.5, 0.25), 8)
    assert level_size((m, m), 0.25)[0] >= 8 > level_size((m - 1, m - 1), 0.25)[0]
    assert min_input_size((1.0,), 8) == 8


def test_fast_fusion_equals_the_sum_of_weighted_responses():
    torch.manual_seed(0)
    chans, strides = (4, 6, 8, 8, 8, 10), (1, 2, 4, 8, 8, 8)
    skip = SkipFusion(chans, strides, out_channels=2)
    with torch.no_grad():
        skip.fusion.normal_()
    sizes = [(40, 50), (21, 26), (11, 14), (6, 8), (6, 8), (6, 8)]
    taps = [torch.randn(1, c, *s) for c, s in zip(chans, sizes, strict=True)]
    ref = sum(
        skip.fusion[i].view(1, -1, 1, 1) * r for i, r in enumerate(skip.responses(taps, (40, 50)))
    )
    torch.testing.assert_close(skip(taps, (40, 50)), ref)


@pytest.mark.parametrize("size", [(40, 50), (33, 31), (128, 128), (32, 32)])
def test_coarse_to_fine_fusion_equals_the_reference_in_float64_with_gradients(size):
    """The coarse-to-fine interpolation of the fused skips (stride 8 -> 4 -> 2 -> 1) against the
    definition: every tap's response interpolated straight to full resolution (F.interpolate),
    weighted by F^t and summed."""
    torch.manual_seed(1)
    chans, strides = (4, 6, 8, 8, 8, 10), (1, 2, 4, 8, 8, 8)
    skip = SkipFusion(chans, strides, out_channels=3).double()
    with torch.no_grad():
        skip.fusion.normal_()
    sizes = [size]
    for _ in range(3):  # n -> n // 2 + 1 per stride-2 pool, as the trunk's ceil-mode pools
        sizes.append(tuple(n // 2 + 1 for n in sizes[-1]))
    sizes += [sizes[-1]] * 2
    taps = [torch.randn(2, c, *s, dtype=torch.float64) for c, s in zip(chans, sizes, strict=True)]
    fast = skip(taps, size)
    ref = 0
    for i, (e, c, s) in enumerate(zip(skip.skips, taps, strides, strict=True)):
        y = e(c)
        span = [s * (n - 1) + 1 for n in y.shape[-2:]]
        y = F.interpolate(y, size=span, mode="bilinear", align_corners=True)
        ref = ref + skip.fusion[i].view(1, -1, 1, 1) * y[..., : size[0], : size[1]]
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    up = torch.randn(ref.shape, dtype=torch.float64)
    params = list(skip.parameters())
    g_fast = torch.autograd.grad((fast * up).sum(), params)
    g_ref = torch.autograd.grad((ref * up).sum(), params)
    for a, b in zip(g_fast, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_scale_fusion_is_the_weighted_sum_in_float64_with_gradients():
    torch.manual_seed(2)
    fusion = ScaleFusion(3, 4).double()
    with torch.no_grad():
        fusion.weight.normal_()
    ys = [torch.randn(2, 4, 5, 6, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    fast = fusion(ys)
    ref = sum(w.view(1, -1, 1, 1) * y for w, y in zip(fusion.weight, ys, strict=True))
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    up = torch.randn(ref.shape, dtype=torch.float64)
    inputs = [fusion.weight, *ys]
    for a, b in zip(
        torch.autograd.grad((fast * up).sum(), inputs),
        torch.autograd.grad((ref * up).sum(), inputs),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
