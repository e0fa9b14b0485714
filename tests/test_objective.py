"""The masked objective (Eq. 1-2), lazy evaluation and ``multitask_backward``'s dispatcher."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch import nn

import ubernet_lite as ul
from ubernet_lite.tasks import TARGETS, TASKS
from ubernet_lite.training import backward
from ubernet_lite.training import objective as obj

TASK_NAMES = ("semantic", "normals", "saliency", "detection")


class Outputs(dict):
    """Train-mode output of the stand-in: ``out[name]`` and ``out.scales[name]``."""

    scales: dict


class TinyNet(nn.Module):
    """A stand-in obeying the model contract: ``.cfg.tasks``, ``.heads[name]``, lazy ``tasks=``."""

    def __init__(self, names=TASK_NAMES, dtype=torch.float64):
        super().__init__()
        self.cfg = ul.config.UberNetConfig.lite(tasks=list(names))
        self.trunk = nn.Conv2d(3, 4, 3, padding=1)
        self.heads = nn.ModuleDict({n: nn.Conv2d(4, 1, 1) for n in names})
        self.calls = Counter()
        self.to(dtype)

    def forward(self, images, tasks=None, targets=None):
        f = torch.tanh(self.trunk(images))
        out = Outputs()
        out.scales = {}
        for n in tasks or list(self.heads):
            self.calls[n] += 1
            out[n] = self.heads[n](f)
            out.scales[n] = [out[n]]
        return out


def toy_loss(spec, out, batch):
    """Per-sample [B]: squared error of the head to the image's mean colour (NaN if unlabelled)."""
    y = out[spec.name]
    target = batch["images"].mean(1, keepdim=True)
    loss = ((y - target) ** 2).mean(dim=(1, 2, 3))
    # an unlabelled sample's loss is garbage: the objective must not let it through
    return torch.where(
        obj.label_mask(batch, spec.target), loss, torch.full_like(loss, float("nan"))
    )


def make_batch(masks: dict[str, list[bool]], size: int = 6, seed: int = 0, dtype=torch.float64):
    """A collated-style batch whose ``has_label`` is given per target (others all False)."""
    B = len(next(iter(masks.values())))
    g = torch.Generator().manual_seed(seed)
    has = {t: torch.tensor(masks.get(t, [False] * B)) for t in TARGETS}
    return {
        "images": torch.rand(B, 3, size, size, generator=g, dtype=torch.float64).to(dtype),
        "image_sizes": [(size, size)] * B,
        "has_label": has,
        "targets": {
            "boxes": [torch.tensor([[0.0, 0.0, 2.0, 2.0]]) for _ in range(B)],
            "labels": [torch.tensor([1]) for _ in range(B)],
        },
        "meta": [{} for _ in range(B)],
    }


def test_objective_is_masked_gamma_weighted_sum():
    model = TinyNet().train()
    specs = [TASKS["semantic"].replace(gamma=2.0), TASKS["normals"]]
    batch = make_batch({"semantic": [True, False, True], "normals": [False, False, True]})
    out = model(batch["images"], tasks=["semantic", "normals"])
    total, per = obj.masked_objective(specs, out, batch, loss_fn=toy_loss)
    y = batch["images"].mean(1, keepdim=True)
    raw = {n: ((out[n] - y) ** 2).mean(dim=(1, 2, 3)) for n in ("semantic", "normals")}
    expected = 2.0 * (raw["semantic"][0] + raw["semantic"][2]) + raw["normals"][2]  # Eq. 1-2
    assert torch.isfinite(total)
    torch.testing.assert_close(total, expected)
    assert per["semantic"][1] == 0 and per["normals"][0] == 0


def test_grad_is_sum_over_samples():
    """.grad after one micro-batch equals the sum of the per-sample gradients (Table 1's dw)."""
    model = TinyNet().train()
    masks = {"semantic": [True, True, False], "normals": [True, False, True]}
    batch = make_batch(masks)
    backward.multitask_backward(model, batch, loss_fn=toy_loss)
    together = [p.grad.clone() if p.grad is not None else None for p in model.parameters()]
    summed = [torch.zeros_like(p) for p in model.parameters()]
    for i in range(3):
        one = make_batch({t: [m[i]] for t, m in masks.items()})
        one["images"] = batch["images"][i : i + 1]
        backward.multitask_backward(model, one, loss_fn=toy_loss)
        for s, p in zip(summed, model.parameters(), strict=True):
            if p.grad is not None:
                s += p.grad
    for t, s in zip(together, summed, strict=True):
        torch.testing.assert_close(t if t is not None else torch.zeros_like(s), s)


def test_lazy_evaluation_runs_only_labelled_heads():
    """(c) heads of tasks without labels in a micro-batch never run."""
    model = TinyNet().train()
    stream = [
        {"semantic": [True, False]},
        {"normals": [False, True], "detection": [True, True]},
        {"semantic": [False, True], "saliency": [True, False]},
    ]
    for k, masks in enumerate(stream):
        losses = backward.multitask_backward(model, make_batch(masks, seed=k), loss_fn=toy_loss)
        assert set(losses) == set(masks)
        assert losses.counts == {t: sum(m) for t, m in masks.items()}
    assert model.calls == Counter(semantic=2, normals=1, detection=1, saliency=1)
    # the heads that did not run have no gradient
    backward.multitask_backward(model, make_batch({"normals": [True]}), loss_fn=toy_loss)
    assert all(p.grad is None for p in model.heads["semantic"].parameters())
    assert all(p.grad is not None for p in model.heads["normals"].parameters())


def test_detection_targets_only_for_labelled_samples():
    batch = make_batch({"detection": [True, False, True]})
    tg = obj.detection_targets(batch)
    assert tg[1] is None and tg[0]["boxes"].shape == (1, 4) and tg[2]["labels"].tolist() == [1]


def test_returned_losses_are_means_over_labelled_samples():
    model = TinyNet().train()
    batch = make_batch({"semantic": [True, False, True, True]})
    losses = backward.multitask_backward(model, batch, loss_fn=toy_loss)
    with torch.no_grad():
        out = model(batch["images"], tasks=["semantic"])
    raw = ((out["semantic"] - batch["images"].mean(1, keepdim=True)) ** 2).mean(dim=(1, 2, 3))
    assert losses["semantic"] == pytest.approx(float(raw[[0, 2, 3]].mean()))
    assert losses.total == pytest.approx(float(raw[[0, 2, 3]].sum()))
    assert losses.batch_size == 4


def test_batch_without_labels_is_a_clear_error():
    model = TinyNet()
    with pytest.raises(ValueError, match="no labels for any task"):
        backward.multitask_backward(
            model, make_batch({"semantic": [False, False]}), loss_fn=toy_loss
        )
    # labelled only for a target the model has no task for
    with pytest.raises(ValueError, match="boundaries"):
        backward.multitask_backward(model, make_batch({"boundaries": [True]}), loss_fn=toy_loss)


def test_unknown_memory_mode_lists_the_modes():
    with pytest.raises(ValueError, match=r"unknown memory mode 'huge'.*standard"):
        backward.multitask_backward(TinyNet(), make_batch({"semantic": [True]}), memory="huge")


def test_register_backward_adds_a_mode():
    seen = []
    backward.register_backward(
        "spy", lambda model, batch, **kw: seen.append(kw) or obj.TaskLosses()
    )
    try:
        backward.multitask_backward(
            TinyNet(), make_batch({"semantic": [True]}), memory="spy", tasks=None
        )
        assert seen == [{"tasks": None}]
        assert "standard" in backward.BACKWARD_MODES and "low" in backward.BACKWARD_MODES
    finally:
        backward.BACKWARD_MODES.pop("spy")


def test_non_per_sample_loss_is_rejected():
    with pytest.raises(ValueError, match=r"per sample"):
        backward.multitask_backward(
            TinyNet(),
            make_batch({"semantic": [True, True]}),
            loss_fn=lambda s, o, b: o[s.name].sum(),
        )


# --------------------------------------------------------------------------------------------
# with the real network and losses
# --------------------------------------------------------------------------------------------


def real_batch(masks: dict[str, list[bool]], size: int = 64, seed: int = 0):
    """A collated batch of random samples carrying exactly the labels of ``masks``."""
    from ubernet_lite.data import collate

    B = len(next(iter(masks.values())))
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(B):
        has = {t: bool(masks.get(t, [False] * B)[i]) for t in TARGETS}
        img = torch.rand(3, size, size, generator=g)
        s = {"image": img, "has_label": has, "meta": {}}
        if has["semantic"]:
            s["semantic"] = torch.randint(0, 7, (size, size), generator=g)
        if has["normals"]:
            s["normals"] = nn.functional.normalize(torch.randn(3, size, size, generator=g), dim=0)
        if has["saliency"]:
            s["saliency"] = (img[0] > 0.5).to(torch.uint8)
        if has["detection"]:
            s.update(boxes=torch.tensor([[4.0, 6.0, 40.0, 50.0]]), labels=torch.tensor([2]))
            s["difficult"] = torch.tensor([False])
        samples.append(s)
    return collate(samples)


def small_ubernet(names=TASK_NAMES):
    from ubernet_lite.model import UberNet

    torch.manual_seed(0)
    cfg = ul.UberNetConfig.lite(
        tasks=list(names), width=1 / 16, fc_channels=32, pyramid_scales=(1.0, 0.5)
    )
    return UberNet(cfg).train()


def test_lazy_evaluation_with_the_real_network():
    """(c) on UberNet: forward hooks count the branch calls; unlabelled branches never run."""
    model = small_ubernet()
    calls = Counter()
    for name, head in model.heads.items():
        head.register_forward_hook(lambda *a, _n=name: calls.update([_n]))
    batch = real_batch({"semantic": [True, False], "detection": [False, True]})
    losses = backward.multitask_backward(model, batch)
    assert calls == Counter(semantic=1, detection=1)
    assert set(losses) == {"semantic", "detection"} and losses.counts == {
        "semantic": 1,
        "detection": 1,
    }
    for name in ("normals", "saliency"):
        assert all(p.grad is None for p in model.heads[name].parameters())
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in model.heads["semantic"].parameters()
    )
    assert all(p.grad is not None for p in model.trunk.parameters() if p.requires_grad)


def test_unlabelled_sample_does_not_change_the_gradient_with_the_real_network():
    """delta_{t,i} = 0: a sample unlabelled for the task adds nothing to the gradient (eval-mode
    BatchNorm, so that the samples of the batch do not interact)."""
    model = small_ubernet(["normals"]).eval()  # eval: BatchNorm uses running stats, no dropout
    a = real_batch({"normals": [True, False]}, seed=1)
    backward.multitask_backward(model, a)
    g_a = [p.grad.clone() for p in model.heads["normals"].parameters()]
    one = real_batch({"normals": [True]}, seed=1)
    backward.multitask_backward(model, one)
    for g, p in zip(g_a, model.heads["normals"].parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-6)
