"""Label values are checked once per sample, in ``collate`` (issue 16: label validation leaves
the hot loop), and the MIL loss's bags are prepared there too (issue 14); the training
objective's losses then read only shapes and the class count, and the public loss functions
called directly still check every value."""

from __future__ import annotations

import importlib

import pytest
import torch

import ubernet_lite as ul
from ubernet_lite import losses as L
from ubernet_lite.config import make_config
from ubernet_lite.data import SynthWorld, collate
from ubernet_lite.tasks import TASKS

# the module, not the function of the same name that ubernet_lite.data exports
collate_module = importlib.import_module("ubernet_lite.data.collate")


@pytest.fixture(scope="module")
def samples():
    world = SynthWorld(split="train", size=64, seed=0)
    return [world[i] for i in range(2)]


def _outputs(spec, b, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    preds = [torch.randn(b, spec.out_channels, h, w, generator=g) for _ in range(4)]

    class Out(dict):
        pass

    out = Out({spec.name: preds[0]})
    out.scales = {spec.name: preds[1:]}
    return out


def _uncollated(batch: dict) -> dict:
    """``batch`` without what ``collate`` records for the losses (checked values, MIL bags)."""
    return {k: v for k, v in batch.items() if k not in ("checked_labels", "mil_targets")}


def test_collate_records_the_checked_targets(samples):
    batch = collate(samples)
    checked = batch["checked_labels"]
    assert set(checked) == {"boundaries", "saliency", "semantic", "parts", "semantic_boundaries"}
    for t in ("semantic", "parts"):
        tg = batch["targets"][t]
        assert checked[t] == int(tg[tg != 255].max())
    assert checked["boundaries"] == 1


@pytest.mark.parametrize(
    ("target", "value", "message"),
    [
        (
            "boundaries",
            3,
            r"collate: sample 1: boundaries: binary target values must be 0, 1 or 255",
        ),
        ("semantic_boundaries", 7, r"collate: sample 1: semantic_boundaries: binary target values"),
        ("saliency", 2, r"collate: sample 1: saliency: binary target values must be 0, 1 or 255"),
        ("semantic", -1, r"collate: sample 1: semantic: labels must be in 0\.\.K-1 or 255"),
    ],
)
def test_collate_rejects_bad_values_in_one_line(samples, target, value, message):
    bad = dict(samples[1])
    t = bad[target].clone()
    t.view(-1)[5] = value
    bad[target] = t
    with pytest.raises(ValueError, match=message) as info:
        collate([samples[0], bad])
    assert "\n" not in str(info.value)


def test_the_objective_does_not_reread_checked_values(samples):
    """After collate, task_loss trusts the per-sample check (a value corrupted afterwards is not
    seen: no pass over the target, no host sync); without the record it checks as before."""
    batch = collate(samples)
    spec = TASKS["boundaries"]
    batch["targets"]["boundaries"].view(-1)[0] = 9  # behind collate's back
    out = _outputs(spec, 2, 64, 64)
    L.task_loss(spec, out, batch)  # no error: the values are not read again
    unchecked = _uncollated(batch)
    with pytest.raises(ValueError, match="binary target values"):
        L.task_loss(spec, out, unchecked)


def test_the_class_count_is_still_checked_from_the_largest_label(samples):
    batch = collate(samples)
    spec = TASKS["semantic"].replace(out_channels=2)  # fewer classes than the labels use
    assert batch["checked_labels"]["semantic"] >= 2
    out = _outputs(spec, 2, 64, 64)
    with pytest.raises(
        ValueError, match=r"semantic: labels must be in 0\.\.1 or 255 .*found a label"
    ):
        L.task_loss(spec, out, batch)


@pytest.mark.parametrize(
    "name", ["boundaries", "semantic_boundaries", "saliency", "semantic", "parts", "normals"]
)
def test_checked_and_unchecked_losses_agree(samples, name):
    batch = collate(samples)
    spec = TASKS[name]
    out = _outputs(spec, 2, 64, 64, seed=1)
    unchecked = _uncollated(batch)
    torch.testing.assert_close(L.task_loss(spec, out, batch), L.task_loss(spec, out, unchecked))


@pytest.mark.parametrize("name", ["boundaries", "semantic_boundaries"])
def test_collated_mil_bags_give_the_losses_own_values_and_gradients(samples, name):
    """The bags ``collate`` prepares (``batch["mil_targets"]``) are those the loss would prepare
    itself: the same loss and the same gradient, in float64, bit for bit."""
    batch = collate(samples)
    spec = TASKS[name]
    assert set(batch["mil_targets"]) == {"boundaries", "semantic_boundaries"}
    out = _outputs(spec, 2, 64, 64, seed=2)
    grads = []
    for b in (batch, _uncollated(batch)):
        preds = [
            out[name].double().requires_grad_(),
            *(p.double().requires_grad_() for p in out.scales[name]),
        ]
        o = type(out)({name: preds[0]})
        o.scales = {name: preds[1:]}
        loss = L.task_loss(spec, o, b)
        loss.sum().backward()
        grads.append((loss.detach(), [p.grad for p in preds]))
    (l1, g1), (l2, g2) = grads
    assert torch.equal(l1, l2)
    assert all(torch.equal(a, b) for a, b in zip(g1, g2, strict=True))


def test_collated_mil_bags_are_not_used_for_another_radius(samples):
    batch = collate(samples)
    spec = TASKS["boundaries"]
    out = _outputs(spec, 2, 64, 64, seed=3)
    wide = L.task_loss(spec, out, batch, radius=2)
    assert torch.equal(wide, L.task_loss(spec, out, _uncollated(batch), radius=2))
    assert not torch.equal(wide, L.task_loss(spec, out, batch))


def test_public_losses_still_check_values():
    logits = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match=r"semantic: labels must be in 0\.\.2 or 255"):
        L.cross_entropy(logits, torch.full((1, 4, 4), 3))
    with pytest.raises(ValueError, match=r"boundaries: binary target values must be 0, 1 or 255"):
        L.mil_boundary(logits[:, :1], torch.full((1, 4, 4), 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"saliency: binary target values"):
        L.binary_cross_entropy(logits[:, :1], torch.full((1, 4, 4), 5, dtype=torch.uint8))


def test_evaluation_batches_skip_the_mil_bags(samples, monkeypatch):
    """Only a training loss reads the MIL bags: ``collate(mil_bags=False)`` (what ``evaluate``
    asks for) prepares none, and ``evaluate`` never calls ``mil_targets``."""
    assert collate(samples, mil_bags=False)["mil_targets"] == {}
    assert set(collate(samples)["mil_targets"]) == {"boundaries", "semantic_boundaries"}

    def refuse(*args, **kwargs):
        raise AssertionError("evaluate prepared MIL bags")

    monkeypatch.setattr(collate_module, "mil_targets", refuse)
    model = ul.model.UberNet(make_config("lite", tasks=["boundaries"])).eval()
    res = ul.metrics.evaluate(model, samples, num_thresholds=3, progress=False)
    assert 0 <= res["boundaries"]["ODS"] <= 1
