"""Asynchronous SGD (Table 1) against synchronous SGD (Eq. 3-5), counters and bad input."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import ubernet_lite as ul
from ubernet_lite.tasks import TARGETS
from ubernet_lite.training import AsyncSGD, SyncSGD, multitask_backward
from ubernet_lite.training.async_sgd import partition_parameters, resolve_batch_sizes

NAMES = ("semantic", "normals", "detection")


class Outputs(dict):
    scales: dict


class TinyNet(nn.Module):
    """Stand-in obeying the model contract; no batch-coupled layers, so per-sample grads add up."""

    def __init__(self, names=NAMES, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.cfg = ul.config.UberNetConfig.lite(tasks=list(names))
        self.trunk = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh())
        self.heads = nn.ModuleDict({n: nn.Conv2d(4, 1, 1) for n in names})
        self.double()

    def forward(self, images, tasks=None, targets=None):
        f = self.trunk(images)
        out = Outputs()
        out.scales = {}
        for n in tasks or list(self.heads):
            out[n] = self.heads[n](f)
            out.scales[n] = [out[n]]
        return out


def toy_loss(spec, out, batch):
    target = batch["images"].mean(1, keepdim=True) * (1 + TARGETS.index(spec.target))
    return ((out[spec.name] - target) ** 2).mean(dim=(1, 2, 3))


def make_batch(masks: dict[str, list[bool]], images: torch.Tensor):
    B = images.shape[0]
    return {
        "images": images,
        "image_sizes": [tuple(images.shape[-2:])] * B,
        "has_label": {t: torch.tensor(masks.get(t, [False] * B)) for t in TARGETS},
        "targets": {
            "boxes": [torch.zeros(1, 4) for _ in range(B)],
            "labels": [torch.ones(1, dtype=torch.long) for _ in range(B)],
        },
        "meta": [{}] * B,
    }


def images(n, seed=0):
    return torch.rand(
        n, 3, 5, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def test_groups_partition_the_parameters():
    model = TinyNet()
    groups = partition_parameters(model)
    assert list(groups) == ["shared", *NAMES]
    ids = [id(p) for ps in groups.values() for p in ps]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert {id(p) for p in groups["shared"]} == {id(p) for p in model.trunk.parameters()}


def test_default_batch_sizes_are_the_papers():
    sizes = resolve_batch_sizes(TinyNet(), None)
    assert sizes == {"shared": 30, "semantic": 10, "normals": 10, "detection": 2}
    assert resolve_batch_sizes(TinyNet(), {"normals": 4})["normals"] == 4


@pytest.mark.parametrize(
    "table, match",
    [
        ({"sematic": 10}, "unknown group 'sematic'"),
        ({"shared": 0}, "must be an integer >= 1"),
        ({"detection": -2}, "must be an integer >= 1"),
        ({"normals": 2.5}, "must be an integer >= 1"),
    ],
)
def test_bad_batch_size_table(table, match):
    with pytest.raises(ValueError, match=match):
        AsyncSGD(TinyNet(), batch_sizes=table)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_async_equals_sync_when_fully_labelled(momentum):
    """(a) every sample labelled for every task, every B_p = B: async == sync (float64).

    Async streams single samples (Table 1's streaming mode, B backward passes per update);
    sync sees each minibatch of B at once (Eq. 3-5).
    """
    B, k = 4, 3
    a, s = TinyNet(), TinyNet()
    s.load_state_dict(a.state_dict())
    opt_a = AsyncSGD(
        a,
        lr=0.1,
        weight_decay=0.01,
        momentum=momentum,
        batch_sizes=dict.fromkeys(["shared", *NAMES], B),
    )
    opt_s = SyncSGD(s, lr=0.1, weight_decay=0.01, momentum=momentum)
    for step in range(k):
        x = images(B, seed=step)
        full = {t: [True] * B for t in ("semantic", "normals", "detection")}
        multitask_backward(s, make_batch(full, x), loss_fn=toy_loss)
        opt_s.step(make_batch(full, x))
        for i in range(B):
            one = make_batch({t: [True] for t in full}, x[i : i + 1])
            multitask_backward(a, one, loss_fn=toy_loss)
            updated = opt_a.step(one)
            assert updated == ([] if i < B - 1 else ["shared", *NAMES])
    assert opt_a.num_updates == dict.fromkeys(["shared", *NAMES], k)
    moved = [
        not torch.equal(p, q) for p, q in zip(a.parameters(), TinyNet().parameters(), strict=True)
    ]
    assert all(moved)
    for (n, p), q in zip(a.named_parameters(), s.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12, msg=n)


def test_update_counts_on_a_scripted_stream():
    """(b) streaming single samples, each group updates exactly floor(labelled / B_p) times."""
    g = torch.Generator().manual_seed(1)
    n = 67
    stream = {
        "semantic": (torch.rand(n, generator=g) < 0.3).tolist(),
        "normals": (torch.rand(n, generator=g) < 0.15).tolist(),
        "detection": (torch.rand(n, generator=g) < 0.5).tolist(),
    }
    # one sample with no label at all would be an error: give those a detection label
    for i in range(n):
        if not any(stream[t][i] for t in stream):
            stream["detection"][i] = True
    sizes = {"shared": 30, "semantic": 4, "normals": 3, "detection": 2}
    model = TinyNet()
    opt = AsyncSGD(model, lr=0.05, batch_sizes=sizes)
    head_before = {t: copy.deepcopy(model.heads[t].weight.detach()) for t in NAMES}
    changes = dict.fromkeys(NAMES, 0)
    for i in range(n):
        batch = make_batch({t: [stream[t][i]] for t in stream}, images(1, seed=i))
        multitask_backward(model, batch, loss_fn=toy_loss)
        updated = opt.step(batch)
        for t in NAMES:  # a head's weights move exactly when its group is updated
            now = model.heads[t].weight.detach()
            assert (t in updated) == (not torch.equal(now, head_before[t]))
            changes[t] += t in updated
            head_before[t] = now.clone()
    labelled = {t: sum(stream[t]) for t in stream} | {"shared": n}
    expected = {p: math.floor(labelled[p] / sizes[p]) for p in sizes}
    assert opt.num_updates == expected
    assert opt.counts == {p: labelled[p] - expected[p] * sizes[p] for p in sizes}
    assert changes == {t: expected[t] for t in NAMES}


def test_crossing_b_p_inside_a_micro_batch_divides_by_the_actual_count():
    """A micro-batch pushing c_p past B_p: update at c_p >= B_p with dw / c_p, then restart."""
    model = TinyNet()
    opt = AsyncSGD(model, lr=1.0, weight_decay=0.0, batch_sizes={"semantic": 3, "shared": 100})
    w0 = model.heads["semantic"].weight.detach().clone()
    grads = []
    for step, labels in enumerate([[True, True], [True, False, True]]):
        batch = make_batch({"semantic": labels}, images(len(labels), seed=step))
        multitask_backward(model, batch, loss_fn=toy_loss)
        grads.append(model.heads["semantic"].weight.grad.clone())
        opt.step(batch)
    assert opt.num_updates["semantic"] == 1 and opt.counts["semantic"] == 0
    torch.testing.assert_close(model.heads["semantic"].weight, w0 - (grads[0] + grads[1]) / 4)
    assert opt.counts["shared"] == 5 and opt.num_updates["shared"] == 0


def test_step_consumes_the_gradient():
    model = TinyNet()
    opt = AsyncSGD(model)
    batch = make_batch({"normals": [True]}, images(1))
    multitask_backward(model, batch, loss_fn=toy_loss)
    opt.step(batch)
    assert all(p.grad is None for p in model.parameters())


def test_sync_divides_by_the_whole_minibatch():
    """Eq. 5: the task gradient is divided by B, not by the number of labelled samples."""
    model = TinyNet()
    opt = SyncSGD(model, lr=1.0, weight_decay=0.0)
    batch = make_batch({"semantic": [True, False, False, False]}, images(4))
    multitask_backward(model, batch, loss_fn=toy_loss)
    g = model.heads["semantic"].weight.grad.clone()
    w0 = model.heads["semantic"].weight.detach().clone()
    opt.step(batch)
    torch.testing.assert_close(model.heads["semantic"].weight, w0 - g / 4)


def test_state_dict_round_trip_continues_identically():
    def run(model, opt, steps):
        for i in steps:
            batch = make_batch({"semantic": [i % 2 == 0], "normals": [True]}, images(1, seed=i))
            multitask_backward(model, batch, loss_fn=toy_loss)
            opt.step(batch)

    kw = dict(lr=0.1, momentum=0.9, batch_sizes={"shared": 3, "semantic": 2, "normals": 2})
    a = TinyNet()
    opt_a = AsyncSGD(a, **kw)
    run(a, opt_a, range(5))
    b = TinyNet(seed=5)
    b.load_state_dict(a.state_dict())
    opt_b = AsyncSGD(b, **kw)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    assert opt_b.counts == opt_a.counts and opt_b.counts["shared"] == 2
    run(a, opt_a, range(5, 12))
    run(b, opt_b, range(5, 12))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_state_dict_of_another_layout_is_rejected():
    state = AsyncSGD(TinyNet()).state_dict()
    with pytest.raises(ValueError, match="groups"):
        AsyncSGD(TinyNet(names=("semantic",))).load_state_dict(state)
    with pytest.raises(ValueError, match="B_p"):
        AsyncSGD(TinyNet(), batch_sizes={"normals": 3}).load_state_dict(state)


def test_async_equals_sync_with_the_real_network():
    """(a) on UberNet with its losses, float64: B_p = B, every sample labelled for every task."""
    from ubernet_lite.data import collate
    from ubernet_lite.model import UberNet

    names = ["semantic", "normals", "detection"]
    cfg = ul.UberNetConfig.lite(
        tasks=names, width=1 / 16, fc_channels=32, pyramid_scales=(1.0, 0.5)
    )
    torch.manual_seed(0)
    a = UberNet(cfg).double().train()
    s = UberNet(cfg).double().train()
    s.load_state_dict(a.state_dict())
    B, k = 2, 3
    opt_a = AsyncSGD(a, lr=0.01, momentum=0.9, batch_sizes=dict.fromkeys(["shared", *names], B))
    opt_s = SyncSGD(s, lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    for step in range(k):
        samples = []
        for _ in range(B):
            img = torch.rand(3, 64, 64, generator=g, dtype=torch.float64)
            samples.append(
                {
                    "image": img,
                    "semantic": torch.randint(0, 7, (64, 64), generator=g),
                    "normals": torch.nn.functional.normalize(
                        torch.randn(3, 64, 64, generator=g), dim=0
                    ),
                    "boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0]]),
                    "labels": torch.tensor([2]),
                    "difficult": torch.tensor([False]),
                    "has_label": {t: t in ("semantic", "normals", "detection") for t in TARGETS},
                    "meta": {},
                }
            )
        batch = collate(samples)
        batch["images"] = batch["images"].double()
        for model, opt in ((a, opt_a), (s, opt_s)):
            torch.manual_seed(100 + step)  # the same dropout masks and RPN samples in both
            multitask_backward(model, batch)
            opt.step(batch)
    assert opt_a.num_updates == dict.fromkeys(["shared", *names], k)
    for (n, p), q in zip(a.named_parameters(), s.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12, msg=n)


def test_groups_of_the_real_network():
    """Shared = trunk + tap BatchNorms; one group per task branch (detection: RPN + RoI heads)."""
    from ubernet_lite.model import UberNet

    cfg = ul.UberNetConfig.lite(width=1 / 16, fc_channels=32)
    model = UberNet(cfg)
    groups = partition_parameters(model)
    assert list(groups) == ["shared", *cfg.task_names]
    shared = {id(p) for p in groups["shared"]}
    assert shared == {id(p) for m in (model.trunk, model.taps) for p in m.parameters()}
    for name in cfg.task_names:
        assert {id(p) for p in groups[name]} == {id(p) for p in model.heads[name].parameters()}
    assert AsyncSGD(model).batch_sizes == {
        "shared": 30,
        **{n: (2 if n == "detection" else 10) for n in cfg.task_names},
    }
