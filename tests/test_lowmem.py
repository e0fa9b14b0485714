"""Low-memory multi-task backward (Sec. 4): same gradients and BatchNorm statistics as standard.

Two models: a small stand-in whose trunk segments contain BatchNorm, dropout and max-pooling
(the real VGG trunk has no BatchNorm inside its segments, so the double-update trap of
pytorch/pytorch#96136 is exercised here), and the real ``UberNet`` (lite and paper presets).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ubernet_lite.tasks import TARGETS, TaskSpec
from ubernet_lite.training import backward, objective
from ubernet_lite.training.lowmem import (
    checkpointed_modules,
    frozen_batchnorm_stats,
    multitask_backward_checkpoint,
    multitask_backward_lowmem,
    release_values,
    saved_storages,
)

# --------------------------------------------------------------------------------------------
# a stand-in with the model contract of docs/internals.md and BN + dropout inside the segments
# --------------------------------------------------------------------------------------------


class _Feats:
    def __init__(self, taps, size):
        self.taps, self.size = list(taps), size

    def tensors(self):
        return list(self.taps)

    def with_tensors(self, ts):
        return _Feats(ts, self.size)


class _Cfg:
    def __init__(self, tasks):
        self.tasks = tasks


class StandIn(nn.Module):
    """Two checkpointable segments (conv-BN-ReLU-dropout, maxpool-conv-BN-ReLU), tap BNs,
    1x1 heads; a 'detection' head that draws random numbers (like the RPN's sampler)."""

    def __init__(self, tasks, dropout=0.5, norm="batch"):
        super().__init__()
        self.cfg = _Cfg(tasks)
        self.trunk = nn.Module()
        make = {"batch": nn.BatchNorm2d, "group": lambda c: nn.GroupNorm(2, c)}[norm]
        self.trunk.segments = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), make(4), nn.ReLU(), nn.Dropout(dropout)),
            nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1), make(6), nn.ReLU()),
        )
        self.taps = nn.ModuleList([nn.BatchNorm2d(4), nn.BatchNorm2d(6)])
        self.heads = nn.ModuleDict(
            {
                t.name: nn.ModuleList(
                    [nn.Conv2d(4, t.out_channels, 1), nn.Conv2d(6, t.out_channels, 1)]
                )
                for t in tasks
            }
        )

    def encode(self, images):
        x, taps = images, []
        for seg in self.trunk.segments:
            x = seg(x)
            taps.append(x)
        return _Feats([bn(c) for bn, c in zip(self.taps, taps, strict=True)], images.shape[-2:])

    def decode(self, name, feats, targets=None):
        e1, e2 = self.heads[name]
        t1, t2 = feats.taps
        y = e1(t1) + F.interpolate(e2(t2), size=feats.size, mode="bilinear", align_corners=False)
        if name.startswith("detection"):  # random sampling, as torchvision's RPN does
            keep = torch.randperm(y[0].numel())[: y[0].numel() // 3]
            return {"loss": torch.stack([yi.flatten()[keep].pow(2).mean() for yi in y])}
        return y

    def forward(self, images, tasks=None, targets=None):
        feats = self.encode(images)
        return {n: self.decode(n, feats, targets) for n in tasks}


def standin_loss(spec, out, batch):
    """Per-sample loss [B]: squared error to the target, or the 'detection' loss."""
    pred = out[spec.name]
    if isinstance(pred, dict):
        return pred["loss"]
    tgt = batch["targets"][spec.target]
    return (pred - tgt).pow(2).mean(dim=(1, 2, 3))


def standin_tasks(detection=True):
    tasks = [
        TaskSpec("normals", "normals", "regression", 3, loss="x", metric="x", gamma=2.0),
        TaskSpec("saliency", "saliency", "binary", 1, loss="x", metric="x", gamma=0.5),
    ]
    if detection:
        tasks.append(TaskSpec("detection", "detection", "detection", 3, loss="x", metric="x"))
    return tasks


def standin_batch(B=3, H=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    has = {t: torch.zeros(B, dtype=torch.bool) for t in TARGETS}
    has["normals"][:] = torch.tensor([True, False, True])[:B]
    has["saliency"][:] = torch.tensor([False, True, True])[:B]
    has["detection"][:] = torch.tensor([True, True, False])[:B]
    return {
        "images": torch.rand(B, 3, H, H, generator=g, dtype=torch.float64),
        "has_label": has,
        "targets": {
            "normals": torch.randn(B, 3, H, H, generator=g, dtype=torch.float64),
            "saliency": torch.rand(B, 1, H, H, generator=g, dtype=torch.float64),
            "boxes": [torch.zeros(0, 4)] * B,
            "labels": [torch.zeros(0, dtype=torch.int64)] * B,
        },
    }


def _grads(model):
    return {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}


def _bn_state(model):
    return {n: b.clone() for n, b in model.named_buffers()}


def _run(mode_fn, model, batch, seed=0, **kw):
    torch.manual_seed(seed)
    losses = mode_fn(model, batch, **kw)
    return losses, _grads(model), _bn_state(model), torch.get_rng_state()


def assert_same_step(model, batch, fn_a, fn_b, **kw):
    """Run ``fn_a`` on ``model`` and ``fn_b`` on a copy, with the same seed; compare grads,
    BatchNorm buffers, losses and the random state left behind."""
    m_a, m_b = model, copy.deepcopy(model)
    la, ga, ba, ra = _run(fn_a, m_a, batch, **kw)
    lb, gb, bb, rb = _run(fn_b, m_b, batch, **kw)
    assert la.keys() == lb.keys()
    for k in la:
        assert la[k] == pytest.approx(lb[k], rel=1e-9, abs=1e-12), k
    assert la.total == pytest.approx(lb.total, rel=1e-9)
    assert ga.keys() == gb.keys()
    n_grads = 0
    for k in ga:
        assert (ga[k] is None) == (gb[k] is None), k
        if ga[k] is not None:
            n_grads += 1
            torch.testing.assert_close(ga[k], gb[k], rtol=1e-9, atol=1e-12, msg=k)
    assert n_grads > 0
    for k in ba:
        torch.testing.assert_close(ba[k], bb[k], rtol=1e-9, atol=1e-12, msg=k)
    assert torch.equal(ra, rb), "the global random state differs after the step"
    return m_a, m_b


STANDARD = objective.standard_backward


@pytest.mark.parametrize("detection", [True, False])
@pytest.mark.parametrize("fn", [multitask_backward_lowmem, multitask_backward_checkpoint])
def test_standin_grads_and_bn_equal_standard(detection, fn):
    torch.manual_seed(0)
    model = StandIn(standin_tasks(detection)).double().train()
    assert_same_step(model, standin_batch(), STANDARD, fn, loss_fn=standin_loss)


def test_standin_with_groupnorm_in_the_segments_equals_standard():
    """A trunk normalised with GroupNorm inside its blocks (no running statistics)."""
    torch.manual_seed(0)
    model = StandIn(standin_tasks(), norm="group").double().train()
    assert any(isinstance(m, nn.GroupNorm) for m in model.trunk.segments.modules())
    assert_same_step(
        model, standin_batch(), STANDARD, multitask_backward_lowmem, loss_fn=standin_loss
    )


def test_release_values_frees_what_no_backward_reads():
    """A BatchNorm output is read by nothing in the backward (BN saves its input): its storage
    is released and the backward from it still gives the same gradient; the saved input (and
    a tensor without grad_fn) are kept."""
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(2, 3, 3, padding=1).double(), nn.BatchNorm2d(3).double()
    x = torch.rand(2, 2, 5, 5, dtype=torch.float64)
    g = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    bn(conv(x)).backward(g)
    ref = conv.weight.grad.clone()
    conv.zero_grad(set_to_none=True)
    needed = {}
    with saved_storages(needed):
        c = conv(x)
        b = bn(c)
    freed = release_values([b, c, x], needed, protect=[x])
    assert freed == b.numel() * 8
    assert b.untyped_storage().nbytes() == 0  # released
    assert c.untyped_storage().nbytes() == c.numel() * 8  # saved by BN: kept
    assert x.untyped_storage().nbytes() == x.numel() * 8  # an input: never touched
    b.backward(g)
    torch.testing.assert_close(conv.weight.grad, ref)


def test_standin_dropout_is_replayed():
    """Dropout inside a recomputed segment: the recomputed masks must equal the forward's."""
    torch.manual_seed(0)
    model = StandIn(standin_tasks(False), dropout=0.5).double().train()
    m_other = copy.deepcopy(model)
    m_std, m_low = assert_same_step(
        model, standin_batch(), STANDARD, multitask_backward_lowmem, loss_fn=standin_loss
    )
    # the test can fail: a different mask gives a different gradient
    torch.manual_seed(1)
    STANDARD(m_other, standin_batch(), loss_fn=standin_loss)
    w = "trunk.segments.0.0.weight"
    g_std = dict(m_std.named_parameters())[w].grad
    assert not torch.allclose(dict(m_other.named_parameters())[w].grad, g_std)


def test_standin_bn_stats_updated_exactly_once():
    torch.manual_seed(0)
    model = StandIn(standin_tasks()).double().train()
    batch = standin_batch()
    multitask_backward_lowmem(model, batch, loss_fn=standin_loss)
    multitask_backward_lowmem(model, batch, loss_fn=standin_loss)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 4
    assert all(int(m.num_batches_tracked) == 2 for m in bns)


def test_recomputation_without_freeze_would_update_twice():
    """The trap itself (pytorch/pytorch#96136): plain checkpointing updates BN stats twice."""
    from torch.utils.checkpoint import checkpoint

    bn = nn.BatchNorm2d(2).double()
    x = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    checkpoint(bn, x, use_reentrant=False).sum().backward()
    assert int(bn.num_batches_tracked) == 2
    bn2 = nn.BatchNorm2d(2).double()
    with checkpointed_modules([bn2]):
        bn2(x).sum().backward()
    assert int(bn2.num_batches_tracked) == 1


def test_frozen_batchnorm_stats_keeps_output_and_stats():
    bn = nn.BatchNorm2d(3).train()
    x = torch.randn(4, 3, 5, 5)
    before = _bn_state(bn)
    buffers = dict(bn.named_buffers())
    with frozen_batchnorm_stats(bn):
        y = bn(x)
    for k, v in bn.named_buffers():
        assert v is buffers[k], k  # the real buffers are back
        assert torch.equal(v, before[k]), k  # and were not updated
    torch.testing.assert_close(y, bn(x))  # batch statistics in both


def test_checkpointed_modules_restores_forward():
    seg = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU())
    with checkpointed_modules(seg):
        assert "forward" in seg[0].__dict__ and "forward" in seg[1].__dict__
    assert "forward" not in seg[0].__dict__ and "forward" not in seg[1].__dict__


def test_unknown_memory_mode_is_one_clear_error():
    model = StandIn(standin_tasks())
    with pytest.raises(ValueError, match="unknown memory mode 'tiny'.*'low'.*'standard'"):
        backward.multitask_backward(model, standin_batch(), memory="tiny")


def test_memory_low_dispatches_here():
    torch.manual_seed(0)
    model = StandIn(standin_tasks()).double().train()
    ref = copy.deepcopy(model)
    torch.manual_seed(0)
    backward.multitask_backward(model, standin_batch(), memory="low", loss_fn=standin_loss)
    torch.manual_seed(0)
    multitask_backward_lowmem(ref, standin_batch(), loss_fn=standin_loss)
    for (n, p), q in zip(model.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=n)


def test_model_without_segments_is_a_clear_error():
    model = StandIn(standin_tasks())
    model.trunk = nn.Module()
    with pytest.raises(TypeError, match="trunk.segments"):
        multitask_backward_lowmem(model, standin_batch(), loss_fn=standin_loss)


# --------------------------------------------------------------------------------------------
# the real UberNet
# --------------------------------------------------------------------------------------------


def random_samples(n, size, labelled, num_classes=6, num_parts=6, seed=0):
    """``n`` samples of ``size`` x ``size`` with random targets; ``labelled[i]`` the targets
    sample ``i`` carries (the others are absent, as docs/internals.md says)."""
    g = torch.Generator().manual_seed(seed)
    H = W = size
    out = []
    for i in range(n):
        s = {
            "image": torch.rand(3, H, W, generator=g),
            "has_label": {t: t in labelled[i] for t in TARGETS},
        }
        s["meta"] = {"dataset": "random", "split": "train", "index": i}
        if "boundaries" in labelled[i]:
            s["boundaries"] = (torch.rand(H, W, generator=g) < 0.1).to(torch.uint8)
        if "saliency" in labelled[i]:
            s["saliency"] = (torch.rand(H, W, generator=g) < 0.4).to(torch.uint8)
        if "normals" in labelled[i]:
            s["normals"] = F.normalize(torch.randn(3, H, W, generator=g), dim=0)
        if "semantic" in labelled[i]:
            s["semantic"] = torch.randint(0, num_classes + 1, (H, W), generator=g)
        if "parts" in labelled[i]:
            s["parts"] = torch.randint(0, num_parts + 1, (H, W), generator=g)
        if "semantic_boundaries" in labelled[i]:
            s["semantic_boundaries"] = (torch.rand(num_classes, H, W, generator=g) < 0.05).to(
                torch.uint8
            )
        if "detection" in labelled[i]:
            xy = torch.rand(2, 2, generator=g) * (size / 2)
            s["boxes"] = torch.cat([xy, xy + size / 3], dim=1)
            s["labels"] = torch.tensor([1, 3])
            s["difficult"] = torch.zeros(2, dtype=torch.bool)
        out.append(s)
    return out


def real_batch(size, n=2, seed=0, dtype=torch.float64):
    from ubernet_lite.data.collate import collate

    labelled = [
        {"semantic", "normals", "boundaries", "detection"},  # partially labelled batch
        {"saliency", "parts", "semantic_boundaries", "boundaries"},
    ][:n]
    batch = collate(random_samples(n, size, labelled, seed=seed))
    batch["images"] = batch["images"].to(dtype)
    batch["targets"]["normals"] = batch["targets"]["normals"].to(dtype)
    return batch


def _real_model(preset, detection, seed=0, **overrides):
    from ubernet_lite.config import UberNetConfig
    from ubernet_lite.model import UberNet
    from ubernet_lite.tasks import TASKS

    tasks = [t for t in TASKS.values() if detection or t.kind != "detection"]
    cfg = getattr(UberNetConfig, preset)(tasks=tasks, **overrides)
    torch.manual_seed(seed)
    return UberNet(cfg).double().train()


@pytest.mark.parametrize("detection", [True, False])
def test_lite_grads_and_bn_equal_standard(detection):
    model = _real_model("lite", detection)
    batch = real_batch(48)
    _, m_low = assert_same_step(model, batch, STANDARD, multitask_backward_lowmem)
    taps = [m for m in m_low.taps.modules() if isinstance(m, nn.BatchNorm2d)]
    # three pyramid levels each run the shared B_i once: 3 updates per forward
    assert all(int(m.num_batches_tracked) == len(model.scales) for m in taps)


def test_lite_plain_checkpointing_equals_standard():
    assert_same_step(
        _real_model("lite", True), real_batch(48), STANDARD, multitask_backward_checkpoint
    )


def test_paper_preset_grads_and_bn_equal_standard():
    """One small case of the paper preset (full-width VGG-16, 3-level pyramid, all seven tasks):
    one image at the smallest size the pyramid accepts, fewer RPN / RoI samples than the preset
    (the sampler sizes change no layer), float64."""
    overrides = dict(
        box_batch_size_per_image=16,
        rpn_batch_size_per_image=32,
        rpn_pre_nms_top_n_train=100,
        rpn_post_nms_top_n_train=50,
    )
    model = _real_model("paper", True, **overrides)
    assert model.trunk.tap_channels == (64, 128, 256, 512, 512, 1024)
    batch = real_batch(model.min_input_size, n=1)
    assert_same_step(model, batch, STANDARD, multitask_backward_lowmem)
