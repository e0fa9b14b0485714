"""GPU speed-ups, tested where the CPU allows: bf16 autocast (CPU autocast), channels_last,
the on/off switch, and the CUDA RNG states' save/restore path (with a stand-in ``torch.cuda``)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ubernet_lite import UberNet, UberNetConfig, data
from ubernet_lite.training import multitask_backward
from ubernet_lite.training.accel import (
    Speedups,
    autocast_model,
    cuda_rng_states,
    prepare_images,
    prepare_model,
    set_cuda_rng_states,
)

TASKS = ("semantic", "normals", "boundaries", "detection")


def _model_and_batch():
    cfg = UberNetConfig.lite()
    cfg = dataclasses.replace(cfg, tasks=[t for t in cfg.tasks if t.name in TASKS], dropout=0.0)
    torch.manual_seed(0)
    model = UberNet(cfg).train()
    union = data.diverse_union(split="train", size=64, seed=0, length=40)
    targets = {cfg.task(t).target for t in TASKS}
    idx = [i for i in range(len(union)) if any(union.label_mask(i)[t] for t in targets)]
    picks, seen = [], set()
    for i in idx:  # one sample per labelled target set, so every task runs
        key = tuple(sorted(t for t in targets if union.label_mask(i)[t]))
        if key not in seen:
            seen.add(key)
            picks.append(i)
    return model, data.collate([union[i] for i in picks[:4]])


def test_switch_is_on_for_cuda_off_for_cpu_and_one_flag_turns_it_off():
    assert Speedups.for_device("cuda") == Speedups("cuda", True, True, True)
    assert Speedups.for_device("cuda:1", enabled=False) == Speedups("cuda", False, False, False)
    assert Speedups.for_device("cpu") == Speedups("cpu", False, False, False)
    assert Speedups.for_device("cpu", enabled=True) == Speedups("cpu", True, True, False)


def _grads(model, prefix=""):
    return {
        n: p.grad.clone()
        for n, p in model.named_parameters()
        if p.grad is not None and n.startswith(prefix)
    }


def _cosine(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    x = torch.cat([a[n].flatten() for n in sorted(a)])
    y = torch.cat([b[n].flatten() for n in sorted(a)])
    return float(torch.nn.functional.cosine_similarity(x, y, dim=0))


@pytest.mark.parametrize("memory", ["standard", "low"])
def test_bf16_autocast_on_cpu_keeps_losses_and_grads_float32_and_close(memory):
    """Train mode: losses within 5 %, the branches' and taps' gradients aligned. The trunk's
    gradient is compared in the next test: at random init some tap channels are nearly constant
    (variance 1e-6..1e-4 at the coarse levels, below bf16's resolution of their values), where
    the tap BatchNorm's 1 / sqrt(var + eps) amplifies bf16 rounding, in either direction."""
    model, batch = _model_and_batch()
    torch.manual_seed(1)
    ref = multitask_backward(model, batch, memory=memory)
    ref_grads = _grads(model)
    speed = Speedups.for_device("cpu", enabled=True)
    dtypes = {}
    with autocast_model(model, speed):
        feats = model.encode(batch["images"])
        dtypes["tap"] = feats.taps[0][0].dtype
        dtypes["out"] = model.decode("semantic", feats)["semantic"].dtype
        del feats
        torch.manual_seed(1)
        got = multitask_backward(model, batch, memory=memory)
    assert "encode" not in model.__dict__ and "decode" not in model.__dict__  # unpatched
    assert dtypes == {"tap": torch.bfloat16, "out": torch.float32}
    assert set(got) == set(ref) == set(TASKS)
    for t in TASKS:  # bf16 network, float32 losses: within a few per cent
        assert got[t] == pytest.approx(ref[t], rel=0.05), t
    grads = _grads(model)
    assert set(grads) == set(ref_grads)
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads.values())
    dense = {
        n: g
        for n, g in grads.items()
        if n.startswith(("taps", "heads.semantic", "heads.normals", "heads.boundaries"))
    }
    cos = _cosine({n: ref_grads[n] for n in dense}, dense)
    assert cos > 0.99, cos


def test_bf16_autocast_trunk_gradient_matches_float32_when_well_conditioned():
    """The tap BatchNorms in eval mode (running statistics: variance 1) take the ill-conditioned
    division out; the trunk's bf16 gradient then points where the float32 one does (cosine
    0.98 for the lite trunk's 16 layers at bf16's 8-bit mantissa) with the same norm."""
    model, batch = _model_and_batch()
    model.taps.eval()
    tasks = ["semantic", "normals", "boundaries"]
    multitask_backward(model, batch, tasks=tasks)
    ref = _grads(model, "trunk")
    with autocast_model(model, Speedups.for_device("cpu", enabled=True)):
        multitask_backward(model, batch, tasks=tasks)
    got = _grads(model, "trunk")
    cos = _cosine(ref, got)
    assert cos > 0.97, cos  # bf16 keeps 8 bits of mantissa through 16 layers (0.983 measured)
    ratio = float(torch.cat([g.flatten() for g in got.values()]).norm())
    ratio /= float(torch.cat([g.flatten() for g in ref.values()]).norm())
    assert ratio == pytest.approx(1.0, rel=0.05)


def test_channels_last_gives_the_same_outputs():
    model, batch = _model_and_batch()
    model.eval()
    with torch.no_grad():
        ref = model(batch["images"], tasks=["semantic", "normals"])
        speed = Speedups.for_device("cpu", enabled=True)
        prepare_model(model, speed)
        images = prepare_images(batch["images"], speed)
        assert images.is_contiguous(memory_format=torch.channels_last)
        conv = model.trunk.segments[0].conv1_1.weight
        assert conv.is_contiguous(memory_format=torch.channels_last)
        got = model(images, tasks=["semantic", "normals"])
    for t in ("semantic", "normals"):
        torch.testing.assert_close(got[t], ref[t], rtol=1e-4, atol=1e-5)


class _FakeCuda:
    """A stand-in for ``torch.cuda`` with ``n`` devices, for the CPU-only CI."""

    def __init__(self, n: int, available: bool = True):
        self.n, self.available = n, available
        self.states = [torch.full((8,), i, dtype=torch.uint8) for i in range(n)]

    def is_available(self):
        return self.available

    def is_initialized(self):
        return self.available

    def device_count(self):
        return self.n if self.available else 0

    def get_rng_state_all(self):
        return list(self.states)

    def set_rng_state_all(self, states):
        self.states = [s.clone() for s in states]


def test_cuda_rng_states_round_trip_through_a_checkpoint(tmp_path):
    cuda = _FakeCuda(2)
    saved = cuda_rng_states(cuda)
    torch.save({"cuda": saved}, tmp_path / "rng.pt")
    cuda.states = [torch.zeros(8, dtype=torch.uint8)] * 2  # the generators move on
    set_cuda_rng_states(torch.load(tmp_path / "rng.pt")["cuda"], cuda)
    assert [s.tolist() for s in cuda.states] == [[0] * 8, [1] * 8]
    assert cuda_rng_states(_FakeCuda(0, available=False)) is None
    set_cuda_rng_states(None, cuda)  # a CPU checkpoint leaves CUDA alone
    with pytest.raises(RuntimeError, match="2 CUDA device"):
        set_cuda_rng_states(saved, _FakeCuda(1))
    if not torch.cuda.is_available():  # the real module on a CPU machine: nothing saved
        assert cuda_rng_states() is None
