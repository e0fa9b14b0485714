"""The dense branches in one pass (``model.dense``, ``UberNet.forward``) and the scale fusion's
backward (``pyramid.scale_fuse``) against the per-task branches and the plain formula, float64."""

from __future__ import annotations

import torch

from ubernet_lite.config import UberNetConfig
from ubernet_lite.model import UberNet
from ubernet_lite.model.pyramid import scale_fuse


def _model():
    torch.manual_seed(0)
    model = UberNet(UberNetConfig.lite()).double().train()
    for p in model.parameters():  # away from the initial F^t = S^t = mean: distinct per channel
        p.data.add_(0.05 * torch.randn_like(p))
    return model


def test_scale_fuse_is_the_sum_of_products():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 5, dtype=torch.float64, generator=g)
    ys = [torch.randn(2, 5, 6, 7, dtype=torch.float64, generator=g) for _ in range(3)]
    a = [w.clone().requires_grad_(True)] + [y.clone().requires_grad_(True) for y in ys]
    b = [w.clone().requires_grad_(True)] + [y.clone().requires_grad_(True) for y in ys]
    new = scale_fuse(a[0], a[1:])
    ref = sum(b[0][i].view(1, -1, 1, 1) * b[1 + i] for i in range(3))
    torch.testing.assert_close(new, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn(new.shape, dtype=torch.float64, generator=g)
    new.backward(grad)
    ref.backward(grad)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-12, atol=1e-12)


def test_forward_is_every_task_decoded_alone():
    """UberNet.decode_all (what forward runs: the dense tasks in one pass) = decode() of each
    task on the same features (train mode: dropout and BatchNorm statistics drawn once): values
    and the gradients of every parameter, for all tasks and for a subset."""
    model = _model()
    images = torch.rand(2, 3, 48, 40, dtype=torch.float64)
    dense = [n for n, s in model.specs.items() if s.kind != "detection"]
    for names in (dense, ["semantic", "normals", "boundaries"]):
        g = torch.Generator().manual_seed(1)
        feats = model.encode(images)
        out = model.decode_all(names, feats)
        ref = {n: model.decode(n, feats) for n in names}
        loss_new, loss_ref = 0.0, 0.0
        for n in names:
            pairs = [(out[n], ref[n][n])] + list(zip(out.scales[n], ref[n].scales[n], strict=True))
            for a, b in pairs:
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
                r = torch.randn(a.shape, dtype=torch.float64, generator=g)
                loss_new = loss_new + (a * r).sum()
                loss_ref = loss_ref + (b * r).sum()
        params = [p for p in model.parameters() if p.requires_grad]
        g_new = torch.autograd.grad(loss_new, params, allow_unused=True, retain_graph=True)
        g_ref = torch.autograd.grad(loss_ref, params, allow_unused=True)
        for a, b in zip(g_new, g_ref, strict=True):
            assert (a is None) == (b is None)
            if a is not None:
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        assert sum(a is not None for a in g_new) > 0


def test_state_dict_keys_are_unchanged():
    model = UberNet(UberNetConfig.lite())
    keys = set(model.state_dict())
    assert "heads.semantic.skip.skips.0.weight" in keys
    assert "heads.semantic.skip.fusion" in keys
    assert "heads.semantic.scale_fusion.weight" in keys


def _ref_branch(branch, feats):
    """The straightforward formula of Fig. 2 with F.interpolate: per level
    y_l = up(sum_i F_i * up(E_i(B_i(C_i)))), fused = sum_l S_l * y_l."""
    import torch.nn.functional as F

    skip, per_level = branch.skip, []
    for taps, size in zip(feats.taps, feats.level_sizes, strict=True):
        y = 0
        for e, fw, c, s in zip(skip.skips, skip.fusion, taps, skip.tap_strides, strict=True):
            r = e(c)
            if s > 1:
                h, w = r.shape[-2:]
                span = (s * (h - 1) + 1, s * (w - 1) + 1)
                r = F.interpolate(r, size=span, mode="bilinear", align_corners=True)
                r = r[..., : size[0], : size[1]]
            y = y + fw.view(1, -1, 1, 1) * r
        if tuple(size) != tuple(feats.image_size):
            y = F.interpolate(y, size=feats.image_size, mode="bilinear", align_corners=False)
        per_level.append(y)
    w = branch.scale_fusion.weight
    return sum(w[i].view(1, -1, 1, 1) * y for i, y in enumerate(per_level)), per_level


def test_dense_branches_are_the_plain_formula():
    """decode_all (joint 1x1 convolutions, shared interpolations, S^t's backward at the levels'
    resolutions, the interpolations' strided-convolution backward) against the formula of
    Fig. 2 with F.interpolate and autograd: values, and the gradients of every head parameter
    and of the taps, float64."""
    model = _model()
    images = torch.rand(2, 3, 64, 48, dtype=torch.float64)
    dense = [n for n, s in model.specs.items() if s.kind != "detection"]
    feats = model.encode(images)
    taps = [t.detach().requires_grad_(True) for t in feats.tensors()]
    cut = feats.with_tensors(taps)
    out = model.decode_all(dense, cut)
    g = torch.Generator().manual_seed(2)
    loss_new, loss_ref = 0.0, 0.0
    for n in dense:
        fused, per_level = _ref_branch(model.heads[n], cut)
        pairs = [(out[n], fused)] + list(zip(out.scales[n], per_level, strict=True))
        for a, b in pairs:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
            r = torch.randn(a.shape, dtype=torch.float64, generator=g)
            loss_new = loss_new + (a * r).sum()
            loss_ref = loss_ref + (b * r).sum()
    params = [p for n in dense for p in model.heads[n].parameters()]
    params += [t for level in cut.taps for t in level]  # (not the detection map)
    g_new = torch.autograd.grad(loss_new, params, retain_graph=True)
    g_ref = torch.autograd.grad(loss_ref, params)
    for a, b in zip(g_new, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_scale_fuse_with_sources_is_the_sum_of_products():
    """S^t's backward at the levels' resolutions (sources z_l with y_l = up(z_l)) = autograd
    through F.interpolate and the products, float64."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(4)
    w = torch.randn(3, 4, dtype=torch.float64, generator=g)
    y0 = torch.randn(2, 4, 16, 12, dtype=torch.float64, generator=g)
    z1 = torch.randn(2, 4, 8, 6, dtype=torch.float64, generator=g)
    z2 = torch.randn(2, 4, 4, 3, dtype=torch.float64, generator=g)

    def up(z):
        return F.interpolate(z, size=(16, 12), mode="bilinear", align_corners=False)

    a = [t.clone().requires_grad_(True) for t in (w, y0, z1, z2)]
    b = [t.clone().requires_grad_(True) for t in (w, y0, z1, z2)]
    from ubernet_lite.model.pyramid import to_input_resolution

    ys = [a[1], to_input_resolution(a[2], (16, 12)), to_input_resolution(a[3], (16, 12))]
    new = scale_fuse(a[0], ys, [None, a[2], a[3]])
    yr = [b[1], up(b[2]), up(b[3])]
    ref = sum(b[0][i].view(1, -1, 1, 1) * yr[i] for i in range(3))
    torch.testing.assert_close(new, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn(new.shape, dtype=torch.float64, generator=g)
    extra = [torch.randn(y.shape, dtype=torch.float64, generator=g) for y in ys]  # deep supervision
    (new * grad).sum().add((ys[1] * extra[1]).sum()).backward()
    (ref * grad).sum().add((yr[1] * extra[1]).sum()).backward()
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-12, atol=1e-12)
