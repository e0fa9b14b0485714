"""Attentive single-tasking (model/attentive.py, training/attentive.py): UberNet when switched off,
task-local SE and adapters, gradient reversal, the discriminator's held-out accuracy, AsyncSGD on
a collated union batch."""

import pytest
import torch

import ubernet_lite as ul
from ubernet_lite.model.attentive import (
    AttentiveUberNet,
    GradientReversal,
    flops_per_image,
    reverse_gradient,
)
from ubernet_lite.tasks import TASKS
from ubernet_lite.training import AsyncSGD, multitask_backward, partition_parameters
from ubernet_lite.training import attentive as ta

DENSE3 = [TASKS["semantic"], TASKS["normals"], TASKS["saliency"]]


def _cfg(tasks=DENSE3, **kw):
    return ul.UberNetConfig.lite(tasks=tasks, dropout=0.0, **kw)


def _world_batch(n=3, size=64, split="train"):
    world = ul.data.SynthWorld(split=split, size=size, length=max(n, 8))
    return ul.data.collate([world[i] for i in range(n)])


def _twins(se, adapters, tasks=DENSE3):
    torch.manual_seed(0)
    uber = ul.UberNet(_cfg(tasks))
    ast = AttentiveUberNet(_cfg(tasks), se=se, adapters=adapters)
    missing = ast.load_state_dict(uber.state_dict(), strict=not (se or adapters)).missing_keys
    assert all(k.startswith(("se.", "adapters.")) for k in missing)
    return uber, ast


# ---------------------------------------------------------------- every mechanism off = UberNet


def test_off_has_ubernets_parameters_and_outputs():
    uber, ast = _twins(se=False, adapters=False)
    assert list(ast.state_dict()) == list(uber.state_dict())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = uber.eval()(x), ast.eval()(x)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=0)


def test_off_trains_as_ubernet_same_gradients():
    uber, ast = _twins(se=False, adapters=False)
    batch = _world_batch()
    la = multitask_backward(uber.train(), batch)
    lb = multitask_backward(ast.train(), batch)
    assert dict(la) == pytest.approx(dict(lb), rel=1e-6)
    for (n, p), q in zip(uber.named_parameters(), ast.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, msg=n)


@pytest.mark.parametrize("se,adapters", [(True, False), (False, True), (True, True)])
def test_fresh_mechanisms_start_at_ubernet(se, adapters):
    uber, ast = _twins(se=se, adapters=adapters)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = uber.eval()(x), ast.eval()(x)
    for name in a:
        torch.testing.assert_close(b[name], a[name])


def test_detection_runs_and_matches_when_off():
    tasks = [TASKS["semantic"], TASKS["detection"]]
    uber, ast = _twins(se=False, adapters=False, tasks=tasks)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = uber.eval()(x), ast.eval()(x)
    torch.testing.assert_close(b["detection"][0]["boxes"], a["detection"][0]["boxes"])
    _, on = _twins(se=True, adapters=True, tasks=tasks)
    with torch.no_grad():
        c = on.eval()(x)
    assert set(c) == {"semantic", "detection"}


# ---------------------------------------------------------------- single-tasking is task-local


def _perturb(params, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(0.5 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("se,adapters", [(True, False), (False, True)])
def test_task_b_modulation_changes_only_task_b(se, adapters):
    _, ast = _twins(se=se, adapters=adapters)
    ast.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before = ast(x)
        _perturb(ast.modulation_parameters("normals"))
        after = ast(x)
    torch.testing.assert_close(after["semantic"], before["semantic"], rtol=0, atol=0)
    torch.testing.assert_close(after["saliency"], before["saliency"], rtol=0, atol=0)
    assert (after["normals"] - before["normals"]).abs().max() > 1e-3


@pytest.mark.parametrize("se,adapters", [(True, False), (False, True), (True, True)])
def test_pass_for_a_leaves_b_modulation_gradients_zero(se, adapters):
    _, ast = _twins(se=se, adapters=adapters)
    ast.train()
    out = ast(torch.rand(2, 3, 64, 64), tasks=["semantic"])
    out["semantic"].square().mean().backward()
    a_grads = [p.grad for p in ast.modulation_parameters("semantic")]
    assert any(g is not None and g.abs().sum() > 0 for g in a_grads)
    for other in ("normals", "saliency"):
        for p in ast.modulation_parameters(other):
            assert p.grad is None or p.grad.abs().sum() == 0, other


def test_mechanism_parameters_and_flops():
    uber, ast = _twins(se=True, adapters=True)
    counts = ast.describe(print_fn=None)
    assert counts["se"] > 0 and counts["adapters"] > 0
    assert counts["se"] < 0.2 * counts["trunk"]  # SE: a small fraction of the trunk
    f_uber, f_ast = flops_per_image(uber, 64), flops_per_image(ast, 64)
    assert f_ast > 2.5 * f_uber  # one trunk pass per task (3 tasks) instead of one in all


# ---------------------------------------------------------------- gradient reversal


@pytest.mark.parametrize("k", [0.0, 0.3, 1.0, 2.5])
def test_gradient_reversal_is_minus_k_identity_float64(k):
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    y = GradientReversal.apply(x, k)
    assert torch.equal(y, x)  # identity forward
    # Numerical Jacobian of the forward (central differences) vs the analytic backward.
    n, eps = x.numel(), 1e-6
    numeric = torch.zeros(n, n, dtype=torch.float64)
    flat = x.detach().flatten()
    for j in range(n):
        e = torch.zeros(n, dtype=torch.float64)
        e[j] = eps
        plus = GradientReversal.apply((flat + e).view_as(x), k).flatten()
        minus = GradientReversal.apply((flat - e).view_as(x), k).flatten()
        numeric[:, j] = (plus - minus) / (2 * eps)
    analytic = torch.autograd.functional.jacobian(lambda t: GradientReversal.apply(t, k), x)
    analytic = analytic.reshape(n, n)
    torch.testing.assert_close(numeric, torch.eye(n, dtype=torch.float64))
    torch.testing.assert_close(analytic, -k * numeric, rtol=0, atol=1e-9)
    # and double backward (what the discriminator's loss goes through) is linear as well
    v = torch.randn_like(x)
    (g,) = torch.autograd.grad(reverse_gradient(x, k), x, v, create_graph=True)
    torch.testing.assert_close(g, -k * v)


def test_reversal_rejects_negative_k():
    with pytest.raises(ValueError, match="k >= 0"):
        reverse_gradient(torch.zeros(1), -1.0)


def test_discriminator_gradient_reaches_the_network_reversed():
    """model .grad = dL_task/dw - k dL_D/dw: linear in k, and D's .grad does not depend on k."""
    _, ast = _twins(se=True, adapters=True, tasks=DENSE3[:2])
    ast.train().double()  # float64: the difference of two gradients is checked to 1e-6
    torch.manual_seed(3)
    disc = ta.make_discriminator(ast).double()
    batch = _world_batch(2)
    batch["images"] = batch["images"].double()
    grads, dgrads = {}, {}
    for k in (0.0, 1.0, 2.0):
        ta.attentive_backward(ast, batch, disc, k=k)
        grads[k] = [p.grad.clone() for p in ast.trunk.parameters()]
        dgrads[k] = [p.grad.clone() for p in disc.parameters()]
    diff1 = [a - b for a, b in zip(grads[1.0], grads[0.0], strict=True)]
    diff2 = [a - b for a, b in zip(grads[2.0], grads[0.0], strict=True)]
    assert sum(float(d.abs().sum()) for d in diff1) > 0  # D's gradient reaches the trunk
    for d1, d2 in zip(diff1, diff2, strict=True):
        torch.testing.assert_close(d2, 2 * d1, rtol=1e-6, atol=1e-12)
    for a, b in zip(dgrads[0.0], dgrads[2.0], strict=True):
        torch.testing.assert_close(a, b)


# ---------------------------------------------------------------- the discriminator's accuracy


def test_discriminator_learns_above_chance_on_heldout_gradients():
    """With the network fixed (k = 0), D tells semantic from normals gradients on held-out data."""
    torch.manual_seed(0)
    model = AttentiveUberNet(_cfg([TASKS["semantic"], TASKS["normals"]]), se=False, adapters=False)
    world = ul.data.SynthWorld(split="train", size=64, length=8)
    val = ul.data.SynthWorld(split="val", size=64, length=4)
    train_g = ta.collect_task_gradients(model, world, batch_size=4)
    val_g = ta.collect_task_gradients(model, val, batch_size=4)
    names = ta.discriminated_tasks(model)
    disc = ta.make_discriminator(model)
    opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
    x = torch.cat([train_g[n] for n in names])
    y = torch.cat([torch.full((len(train_g[n]),), i) for i, n in enumerate(names)])
    for _ in range(100):
        logits = disc(x)
        loss = torch.nn.functional.cross_entropy(
            logits, y[:, None, None].expand(-1, *logits.shape[2:])
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = ta.discriminator_accuracy(disc, val_g, names)
    assert acc["chance"] == 0.5
    assert acc["all"] > 0.75, acc


def test_train_loop_reports_heldout_discriminator_accuracy():
    torch.manual_seed(0)
    model = AttentiveUberNet(_cfg(), se=True, adapters=True)
    disc = ta.make_discriminator(model)
    world = ul.data.SynthWorld(split="train", size=64, length=8)
    val = ul.data.SynthWorld(split="val", size=64, length=2)
    hist = ta.train_attentive(
        model, world, steps=3, batch_size=2, discriminator=disc, k=0.5, heldout=val,
        eval_every=2, heldout_samples=2,
        batch_sizes={"shared": 3, "semantic": 1, "normals": 1, "saliency": 1},
    )  # fmt: skip
    assert [s for s, _ in hist.heldout] == [2, 3]
    for _, acc in hist.heldout:
        assert 0.0 <= acc["all"] <= 1.0 and acc["chance"] == pytest.approx(1 / 3)
        assert set(acc) >= {"semantic", "normals", "saliency", "all", "chance"}
    assert len(hist.disc_accuracy) == 3 and len(hist.losses) == 3
    assert hist.updates["shared"] >= 1


# ---------------------------------------------------------------- union batches and AsyncSGD


def _partial_batch():
    world = ul.data.SynthWorld(split="train", size=64, length=4)
    samples = [world[i] for i in range(4)]
    labelled = [{"semantic"}, {"normals"}, {"semantic", "normals"}, set()]
    for s, keep in zip(samples, labelled, strict=True):
        s["has_label"] = {t: (t in keep) for t in s["has_label"]}
        s["has_label"]["saliency"] = False
    return ul.data.collate(samples)


def test_passes_only_on_labelled_samples():
    _, ast = _twins(se=True, adapters=True)
    ast.train()
    seen = []
    original = ast.encode
    ast.encode = lambda images, task=None: (
        seen.append((task, images.shape[0])) or original(images, task)
    )
    losses = ta.attentive_backward(ast, _partial_batch())
    assert sorted(seen) == [("normals", 2), ("semantic", 2)]  # saliency: no labelled sample
    assert losses.counts == {"semantic": 2, "normals": 2}
    assert all(p.grad is None for p in ast.task_parameters("saliency"))


def test_async_sgd_groups_and_updates_on_a_union_batch():
    _, ast = _twins(se=True, adapters=True)
    ast.train()
    groups = partition_parameters(ast)
    shared = {id(p) for p in groups["shared"]}
    for name in ("semantic", "normals", "saliency"):
        mod = {id(p) for p in ast.modulation_parameters(name)}
        assert mod and mod <= {id(p) for p in groups[name]} and not mod & shared
    opt = AsyncSGD(
        ast, lr=0.1, batch_sizes={"shared": 4, "semantic": 2, "normals": 3, "saliency": 1}
    )
    before = {n: [p.detach().clone() for p in ast.modulation_parameters(n)] for n in ast.task_names}
    batch = _partial_batch()
    ta.attentive_backward(ast, batch)
    updated = opt.step(batch)
    assert sorted(updated) == ["semantic", "shared"]  # normals: c = 2 < B_p = 3; saliency: none
    assert opt.counts["normals"] == 2

    def moved(n):
        now = ast.modulation_parameters(n)
        return any(not torch.equal(a, b) for a, b in zip(before[n], now, strict=True))

    assert moved("semantic") and not moved("normals") and not moved("saliency")


def test_se_gates_start_at_one_and_are_per_task():
    _, ast = _twins(se=True, adapters=False)
    x = torch.rand(2, 3, 64, 64)
    gates = ast.se_gates(x, "semantic")
    assert [tuple(g.shape) for g in gates] == [(2, c) for c in ast.trunk.tap_channels]
    assert all(torch.equal(g, torch.ones_like(g)) for g in gates)  # 2 sigmoid(0) = 1
    _perturb(ast.modulation_parameters("normals"))
    assert all(torch.equal(g, torch.ones_like(g)) for g in ast.se_gates(x, "semantic"))
    assert any((g - 1).abs().max() > 1e-3 for g in ast.se_gates(x, "normals"))
    _, no_se = _twins(se=False, adapters=True)
    with pytest.raises(ValueError, match="no SE gates"):
        no_se.se_gates(x, "semantic")


def test_conditioned_model_needs_a_task_per_pass():
    _, ast = _twins(se=True, adapters=False)
    with pytest.raises(ValueError, match="one task per pass"):
        ast.trunk_taps(torch.rand(1, 3, 64, 64), None)


def test_draw_batch_skips_batches_without_the_models_labels():
    union = ul.data.diverse_union(split="train", size=64, length=40)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        batch = ta._draw_batch(union, 2, gen, {"saliency"})
        assert bool(batch["has_label"]["saliency"].any())
    world = ul.data.SynthWorld(split="train", size=64, length=4)
    samples = [world[i] for i in range(4)]
    for s in samples:
        s["has_label"] = dict.fromkeys(s["has_label"], False)
    with pytest.raises(ValueError, match="no label"):
        ta._draw_batch(samples, 2, gen, {"semantic"}, tries=3)


# ---------------------------------------------------------------- notebook 11's cached runs


def _fresh_run(seed=0):
    torch.manual_seed(seed)
    model = AttentiveUberNet(_cfg(), se=True, adapters=False)
    return model, ta.make_discriminator(model)


def test_cached_attentive_run_trains_once_then_loads(monkeypatch, tmp_path):
    monkeypatch.setenv("UBERNET_OUTPUTS", str(tmp_path))
    world = ul.data.SynthWorld(split="train", size=64, length=8)
    val = ul.data.SynthWorld(split="val", size=64, length=2)
    kw = dict(batch_size=2, heldout=val, heldout_samples=2, data_key={"size": 64, "seed": 0})
    model, disc = _fresh_run()
    first = ul.series.cached_attentive_run("ast", model, world, 2, discriminator=disc, **kw)
    assert not first.cached and (tmp_path / "runs" / "ast" / "attentive.pt").is_file()
    assert not first.model.training and len(first.history.losses) == 2
    model2, disc2 = _fresh_run()
    second = ul.series.cached_attentive_run("ast", model2, world, 2, discriminator=disc2, **kw)
    assert second.cached and second.seconds == first.seconds
    assert second.history.heldout == first.history.heldout
    assert second.history.losses == first.history.losses
    for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(disc.state_dict().values(), disc2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # another number of steps, other initial weights or another data key: another key ...
    key = ul.series.attentive.run_key(*_fresh_run(), 2, kw["data_key"], batch_size=2)
    for steps, seed, data_key in ((3, 0, kw["data_key"]), (2, 1, kw["data_key"]), (2, 0, {})):
        m, d = _fresh_run(seed)
        assert ul.series.attentive.run_key(m, d, steps, data_key, batch_size=2) != key
    assert ul.series.attentive.run_key(*_fresh_run(), 2, kw["data_key"], batch_size=2) == key
    # ... and a run cached with another key is trained again
    m, d = _fresh_run()
    again = ul.series.cached_attentive_run("ast", m, world, 1, discriminator=d, **kw)
    assert not again.cached and len(again.history.losses) == 1


def test_a_sub_batch_gathers_its_own_mil_bags():
    """``collate``'s MIL bags index the whole batch; a sub-batch (``select_samples``) drops them,
    and its boundary losses are those of the same samples collated alone."""
    world = ul.data.SynthWorld(split="train", size=64, seed=0)
    samples = [world[i] for i in range(3)]
    batch = ul.data.collate(samples)
    sub = ta.select_samples(batch, torch.tensor([2]))
    assert "mil_targets" not in sub
    alone = ul.data.collate(samples[2:])
    g = torch.Generator().manual_seed(0)
    for name in ("boundaries", "semantic_boundaries"):
        spec = TASKS[name]
        pred = torch.randn(1, spec.out_channels, 64, 64, generator=g)
        assert torch.equal(
            ul.losses.task_loss(spec, pred, sub), ul.losses.task_loss(spec, pred, alone)
        )
