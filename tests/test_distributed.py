"""Distributed AsyncSGD: 2 gloo processes on the CPU equal 1 process on the union of their shares.

Float64, dense tasks, no dropout (dropout masks and the RPN's sampling draw from each rank's own
RNG stream, so they cannot match a single process's): after a few Table 1 updates the parameters
and the tap BatchNorms' running statistics of rank 0 of a 2-process run equal those of one
process fed the whole micro-batches, for ``memory="standard"`` and ``memory="low"``. The
micro-batches include shares of 2 + 2, 2 + 1 and 1 + 0 samples (an empty share).
"""

from __future__ import annotations

import dataclasses
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ubernet_lite import UberNet, UberNetConfig, data
from ubernet_lite.training import AsyncSGD, multitask_backward
from ubernet_lite.training.checkpoint import load_checkpoint
from ubernet_lite.training.distributed import (
    SyncTapBatchNorm,
    broadcast_module,
    distributed_backward,
    shard,
    sync_tap_batchnorms,
)

SIZE = 64
TASKS = ("semantic", "normals", "saliency", "boundaries")
#: global micro-batch sizes: shares (2, 2), (2, 1), (1, 0), (2, 2), (2, 1), (2, 2)
SIZES = (4, 3, 1, 4, 3, 4)


def _config() -> UberNetConfig:
    cfg = UberNetConfig.lite()
    tasks = [t for t in cfg.tasks if t.name in TASKS]
    return dataclasses.replace(cfg, tasks=tasks, dropout=0.0, input_size=SIZE)


def _micro_batches(union, targets) -> list[list[int]]:
    sampler = union.sampler(seed=0)  # the trainer's stream: Table 1's i ~ U[1, N] by member
    sampler.set_epoch(0)
    keep = [i for i in sampler if any(union.label_mask(i)[t] for t in targets)]
    out, k = [], 0
    for n in SIZES:
        out.append(keep[k : k + n])
        k += n
    return out


def _double(x):
    if torch.is_tensor(x):
        return x.double() if x.is_floating_point() else x
    if isinstance(x, dict):
        return {k: _double(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_double(v) for v in x]
    return x


def _train(rank: int, world: int, port: int, memory: str, out_path: str) -> None:
    """One process of a ``world``-process run (``world == 1``: the plain reference)."""
    if world > 1:
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
        )
    try:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        cfg = _config()
        model = UberNet(cfg).double()
        model.train()
        if world > 1:
            sync_tap_batchnorms(model)
            broadcast_module(model)
        opt = AsyncSGD(
            model, lr=0.05, momentum=0.9, weight_decay=5e-4,
            batch_sizes={"shared": 4, **dict.fromkeys(TASKS, 2)}, distributed=world > 1,
        )  # fmt: skip
        union = data.diverse_union(split="train", size=SIZE, seed=0, length=60)
        targets = {cfg.task(t).target for t in TASKS}
        empty = torch.zeros(0, 3, SIZE, SIZE, dtype=torch.float64)
        for idx in _micro_batches(union, targets):
            share = shard(idx, rank, world)
            batch = _double(data.collate([union[i] for i in share])) if share else None
            if world > 1:
                distributed_backward(model, batch, memory=memory, images_like=empty)
            else:
                multitask_backward(model, batch, memory=memory)
            opt.step(batch)
        if rank == 0:
            torch.save({"state": model.state_dict(), "updates": opt.num_updates}, out_path)
    finally:
        if world > 1:
            dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("memory", ["standard", "low"])
def test_two_gloo_processes_equal_one_process_on_the_union(memory, tmp_path):
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    _train(0, 1, 0, memory, str(one))
    mp.spawn(_train, args=(2, _free_port(), memory, str(two)), nprocs=2, join=True)
    ref, got = torch.load(one), torch.load(two)
    assert ref["updates"] == got["updates"]
    assert all(n > 0 for n in ref["updates"].values()), ref["updates"]  # every group updated
    worst = 0.0
    for k, v in ref["state"].items():
        w = got["state"][k]
        assert w.shape == v.shape and w.dtype == v.dtype, k
        if v.is_floating_point():
            worst = max(worst, float((w - v).abs().max()))
            torch.testing.assert_close(w, v, rtol=1e-9, atol=1e-11, msg=k)
        else:
            assert torch.equal(w, v), k
    torch.manual_seed(0)
    start = UberNet(_config()).double().state_dict()
    moved = max(
        float((ref["state"][k] - start[k]).abs().max())
        for k in start
        if start[k].is_floating_point()
    )
    assert moved > 1e-4  # the updates changed the parameters: the comparison is not vacuous
    print(
        f"\n[{memory}] 2 gloo processes vs 1 process on the union, float64, "
        f"{len(SIZES)} micro-batches of {SIZES}: updates {got['updates']}; "
        f"max |param difference| {worst:.3e}, max |param change| {moved:.3e}"
    )


def test_sync_tap_batchnorm_is_batchnorm_outside_a_process_group():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(4)
    model = type("M", (torch.nn.Module,), {})()
    model.taps = torch.nn.Module()
    model.taps.norms = torch.nn.ModuleList([bn])
    sync_tap_batchnorms(model)
    assert isinstance(model.taps.norms[0], SyncTapBatchNorm)
    x = torch.randn(3, 4, 5, 5)
    torch.testing.assert_close(model.taps.norms[0](x), torch.nn.BatchNorm2d(4)(x))


def test_shard_splits_contiguously():
    idx = list(range(7))
    parts = [shard(idx, r, 3) for r in range(3)]
    assert parts == [[0, 1, 2], [3, 4], [5, 6]]
    assert shard([9], 1, 2) == []


# --------------------------------------------------------------------------------------------
# the Trainer on 2 processes: checkpoint with world_size, exact resume with the same N
# --------------------------------------------------------------------------------------------

TRAINER = dict(
    steps=4, micro_batch=3, tasks="semantic,normals,saliency", image_size=64, union_length=40,
    checkpoint_every=0, progress=False, prefetch=True, batch_sizes={"shared": 4},
)  # fmt: skip


def _trainer_run(rank: int, world: int, port: int, out: str, stop: int, resume: bool) -> None:
    from ubernet_lite.training import Trainer

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        torch.set_num_threads(1)
        if resume:
            trainer = Trainer.resume(f"{out}/checkpoint.pt", out=out, progress=False)
        else:
            trainer = Trainer(UberNetConfig.lite(), out=out, **TRAINER)
        trainer.run(stop)  # saves the checkpoint at the end (rank 0 writes)
    finally:
        dist.destroy_process_group()


def _spawn(*args) -> None:
    mp.spawn(_trainer_run, args=(2, _free_port(), *args), nprocs=2, join=True)


def test_trainer_on_two_processes_checkpoints_world_size_and_resumes_exactly(tmp_path):
    through, split = tmp_path / "through", tmp_path / "split"
    _spawn(str(through), 4, False)
    _spawn(str(split), 2, False)
    half = load_checkpoint(split / "checkpoint.pt")
    assert half["world_size"] == 2 and len(half["ranks"]) == 2 and half["step"] == 2
    _spawn(str(split), 4, True)
    a = load_checkpoint(through / "checkpoint.pt")
    b = load_checkpoint(split / "checkpoint.pt")
    assert a["step"] == b["step"] == 4 and a["world_size"] == 2
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert [r["total"] for r in a["history"]] == [r["total"] for r in b["history"]]
    # the log is the global micro-batch's: every step counts its 3 samples
    assert [r["samples"] for r in a["history"]] == [3, 6, 9, 12]
    from ubernet_lite.training import Trainer

    with pytest.raises(ValueError, match="trained on 2 process"):
        Trainer.resume(through / "checkpoint.pt", progress=False)
