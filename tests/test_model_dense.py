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
