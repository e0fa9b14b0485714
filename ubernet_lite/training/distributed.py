"""One model trained on N processes with ``torch.distributed`` (``torchrun``), Table 1 kept global.

```bash
torchrun --nproc_per_node 4 -m ubernet_lite train --preset paper --micro-batch 8 ...
```

Every process (rank) draws the *same* global micro-batch from the same stream (the union's
sampler is a pure function of the seed and the epoch) and takes its share of it
(:func:`shard`), so a run's samples do not depend on N and ``--micro-batch`` stays the global
micro-batch. Each rank back-propagates its share (:func:`distributed_backward`); the optimiser
(``AsyncSGD(..., distributed=True)``) then

* adds up the labelled-sample counts of the micro-batch over the ranks (one all-reduce of a few
  integers, :func:`global_counts`): the counter c_p of Table 1 counts the global micro-batch;
* accumulates each rank's *local* summed gradient dw_p, and when the global c_p reaches B_p
  all-reduces (sums) the group's accumulator once, divides by the global c_p and updates;
  every rank applies the same update, so the replicas stay equal.

The tap BatchNorms B_i normalise with the statistics of the global micro-batch
(:class:`SyncTapBatchNorm`, an all-reduce of the per-channel sums in the forward and, through
autograd, of their gradients in the backward), so that in exact arithmetic N processes compute
the gradient of the same objective (Eq. 1-2, summed over the global micro-batch) as one.

**Why not ``DistributedDataParallel``?** Its reducer is built for one ``backward()`` per step
whose gradients are averaged and applied to every parameter at once. Here (1) the low-memory
schedule (Sec. 4) runs several backward calls per step (one per branch, then one per pyramid
level through the trunk), and a tap gradient is complete only after all of them; (2) parameter
groups update at different times (a task's group when its own labelled-sample count reaches its
B_p, the trunk every 30 samples), so gradients must be *accumulated* locally for several steps
and reduced only at the group's update, not after every backward; (3) Table 1 divides a sum by
the number of labelled samples seen, not by the number of processes (DDP's mean would weight a
rank with one labelled sample like a rank with ten). DDP's ``no_sync`` and gradient-bucket hooks
could emulate parts of this, but each group's reduce would still be tied to backward calls. So:
plain collectives at the points where Table 1 needs them, one all-reduce per group update,
and the BatchNorm statistics synchronised explicitly. Lazy evaluation stays per rank (a rank
runs only the branches its share is labelled for); to keep the collectives of the tap
BatchNorms' backward in the same order on every rank, the backward is cut at the taps and the
trunk's backward is seeded with every tap's gradient (zeros where no local branch read it), so
every rank runs the same trunk backward whatever its share's labels, even an empty share.

Initialisation: ``init_from_env`` reads torchrun's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``
(NCCL on CUDA devices, gloo on the CPU). Checkpoints are written by rank 0 and record the
``world_size``; each rank's local accumulators and RNG states are gathered into them
(:func:`gather_rank_states`), so a resume with the same N continues exactly.
"""

from __future__ import annotations

import os
from contextlib import nullcontext

import torch
import torch.distributed as dist
from torch import nn

from ..model.ubernet import TaskOutputs
from .lowmem import (
    _backward_into_trunk,
    _level_groups,
    checkpointed_segments,
    cut_features,
    multitask_backward_lowmem,
)
from .objective import (
    TaskLosses,
    detection_targets,
    labelled_tasks,
    masked_objective,
    model_tasks,
    summarize,
)

__all__ = [
    "SyncTapBatchNorm",
    "all_reduce_sum_",
    "broadcast_module",
    "distributed_backward",
    "gather_rank_states",
    "global_counts",
    "init_from_env",
    "is_distributed",
    "rank",
    "reduce_losses",
    "shard",
    "sync_tap_batchnorms",
    "world_size",
]


# --------------------------------------------------------------------------------------------
# the process group
# --------------------------------------------------------------------------------------------


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """N, the number of processes (1 outside a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def init_from_env(device: str = "cpu") -> tuple[int, int, str]:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1: ``(rank, world_size, device)``.

    NCCL for a CUDA ``device`` (each process on ``cuda:LOCAL_RANK``), gloo on the CPU. Without
    torchrun's environment (or with ``WORLD_SIZE=1``) nothing is initialised: ``(0, 1, device)``.
    """
    n = int(os.environ.get("WORLD_SIZE", "1"))
    if n <= 1:
        return 0, 1, device
    cuda = str(device).startswith("cuda")
    if cuda:
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} asked for, but torch sees no CUDA device")
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def _comm_device() -> torch.device:
    """Where collective buffers live: the current CUDA device for NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shard(indices: list, rank_: int | None = None, world: int | None = None) -> list:
    """This rank's share of a global micro-batch: contiguous, sizes differing by at most one.

    ``shard(list(range(5)), r, 2)`` -> ``[0, 1, 2]`` for r = 0 and ``[3, 4]`` for r = 1. A share
    is empty when the micro-batch has fewer samples than processes.
    """
    r = rank() if rank_ is None else rank_
    n = world_size() if world is None else world
    k, extra = divmod(len(indices), n)
    start = r * k + min(r, extra)
    return list(indices[start : start + k + (r < extra)])


def global_counts(counts: dict[str, int]) -> dict[str, int]:
    """``{key: count}`` summed over the ranks (one all-reduce; identity outside a group)."""
    if not is_distributed():
        return dict(counts)
    keys = list(counts)
    t = torch.tensor([int(counts[k]) for k in keys], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist(), strict=True))


def reduce_losses(losses: TaskLosses, tasks) -> TaskLosses:
    """The log of a distributed step: each task's mean loss over its labelled samples of the
    *global* micro-batch, the summed objective and the global counts (one all-reduce)."""
    if not is_distributed():
        return losses
    tasks = list(tasks)
    n = {t: losses.counts.get(t, 0) for t in tasks}
    vals = [losses.get(t, 0.0) * n[t] if n[t] else 0.0 for t in tasks]
    vals += [float(n[t]) for t in tasks] + [float(losses.total), float(losses.batch_size)]
    buf = torch.tensor(vals, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(buf)
    out = buf.tolist()
    k = len(tasks)
    sums, counts = out[:k], [int(c) for c in out[k : 2 * k]]
    means = {t: sums[i] / counts[i] for i, t in enumerate(tasks) if counts[i]}
    return TaskLosses(
        means,
        total=out[2 * k],
        counts={t: c for t, c in zip(tasks, counts, strict=True) if c},
        batch_size=int(out[2 * k + 1]),
    )


def all_reduce_sum_(tensors: list[torch.Tensor]) -> None:
    """Sum ``tensors`` over the ranks in place, in one flat all-reduce."""
    if not is_distributed() or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    k = 0
    for t in tensors:
        t.copy_(flat[k : k + t.numel()].view_as(t))
        k += t.numel()


@torch.no_grad()
def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank (equal replicas at the start)."""
    if not is_distributed():
        return
    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.data, src)


def gather_rank_states(state: dict) -> list[dict] | None:
    """Every rank's ``state`` (tensors moved to the CPU), as a list on rank 0, None elsewhere."""
    if not is_distributed():
        return [state]
    state = _to_cpu(state)
    out = [None] * world_size() if rank() == 0 else None
    dist.gather_object(state, out, dst=0)
    return out


def _to_cpu(x):
    if torch.is_tensor(x):
        return x.detach().cpu()
    if isinstance(x, dict):
        return {k: _to_cpu(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_cpu(v) for v in x)
    return x


# --------------------------------------------------------------------------------------------
# the tap BatchNorms on the global micro-batch
# --------------------------------------------------------------------------------------------


class _AllReduceSum(torch.autograd.Function):
    """``y = sum over ranks of x``; the backward sums the gradients over the ranks likewise
    (each rank's loss depends on every rank's x through y; the objective is their sum)."""

    @staticmethod
    def forward(ctx, x):
        y = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        return _AllReduceSum.apply(grad)


class SyncTapBatchNorm(nn.BatchNorm2d):
    """``BatchNorm2d`` whose train-mode statistics are those of the global micro-batch.

    ``forward(x)``: [b_r, C, H, W] -> same shape. In train mode inside a process group the
    per-channel sum, the count and then the centred sum of squares are all-reduced (an autograd
    function whose backward all-reduces the gradients),
    so every rank normalises with the mean and (biased) variance over all ranks' samples and
    updates the running statistics with them, as one ``BatchNorm2d`` on the union would. Works
    on the CPU with gloo (``nn.SyncBatchNorm`` is GPU-only) and with an empty share (b_r = 0).
    Computed in float32 at least (inputs of bf16 autocast), output in the input's dtype. Eval
    mode and single processes: plain ``BatchNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        dtype = x.dtype
        xf = x.float() if dtype in (torch.float16, torch.bfloat16) else x
        dims = (0, 2, 3)
        local = torch.cat([xf.sum(dims), xf.new_full((1,), x.numel() // x.shape[1])])
        stats = _AllReduceSum.apply(local)
        count = stats[-1].detach()
        mean = stats[:-1] / count
        centred = xf - mean.view(1, -1, 1, 1)
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / count  # biased, as BN
        with torch.no_grad():
            if self.track_running_stats:
                self.num_batches_tracked.add_(1)
                m = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                unbiased = var * (count / (count - 1).clamp(min=1))
                self.running_mean.mul_(1 - m).add_(mean.detach().to(self.running_mean), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var), alpha=m)
        y = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(dtype)


def sync_tap_batchnorms(model: nn.Module) -> nn.Module:
    """Replace the tap BatchNorms ``model.taps.norms`` by :class:`SyncTapBatchNorm` (in place).

    Parameters and running statistics are kept. The trunk has no BatchNorm (its normalisation
    is none or GroupNorm, per sample), so the taps are the only cross-sample layers.
    """
    norms = getattr(getattr(model, "taps", None), "norms", None)
    if not isinstance(norms, nn.ModuleList):
        raise TypeError(
            f"{type(model).__name__} has no taps.norms; expected an ubernet_lite.UberNet"
        )
    for i, bn in enumerate(norms):
        if isinstance(bn, SyncTapBatchNorm) or not isinstance(bn, nn.BatchNorm2d):
            continue
        new = SyncTapBatchNorm(
            bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats
        ).to(device=bn.weight.device if bn.affine else None)
        new.load_state_dict(bn.state_dict())
        new.train(bn.training)
        if bn.affine:
            new.to(dtype=bn.weight.dtype)
        norms[i] = new
    return model


# --------------------------------------------------------------------------------------------
# one rank's backward
# --------------------------------------------------------------------------------------------


def _empty_share(model, images_like: torch.Tensor, memory: str) -> None:
    """A rank without samples still takes part in the tap BatchNorms' collectives: it runs the
    trunk on an empty batch and back-propagates zero tap gradients, like the other ranks."""
    with checkpointed_segments(model) if memory == "low" else nullcontext():
        feats = model.encode(images_like)
    trunk_tensors, leaves, _ = cut_features(feats)
    groups = _level_groups(feats, len(trunk_tensors)) if memory == "low" else None
    del feats
    _backward_into_trunk(trunk_tensors, leaves, groups, all_taps=True)


def _standard_cut_backward(model, batch: dict, tasks=None, loss_fn=None) -> TaskLosses:
    """``memory="standard"`` for a rank: the plain forward and backward of the labelled
    branches, cut at the taps, then one backward through the trunk seeded with every tap's
    gradient (zeros for a tap no branch read), so that every rank's trunk backward, and the
    tap BatchNorms' collectives in it, run in the same order."""
    specs = model_tasks(model)
    if tasks is not None:
        specs = {n: specs[n] for n in tasks}
    run = labelled_tasks(specs.values(), batch)
    targets = detection_targets(batch) if any(s.kind == "detection" for s in run) else None
    feats = model.encode(batch["images"])
    trunk_tensors, leaves, cut = cut_features(feats)
    del feats
    out = TaskOutputs()
    for spec in run:  # TaskOutputs.update keeps .scales (deep supervision), as forward() does
        out.update(
            model.decode(spec.name, cut, targets=targets if spec.kind == "detection" else None)
        )
    total, per_sample = masked_objective(run, out, batch, loss_fn)
    total.backward()
    del cut, out
    _backward_into_trunk(trunk_tensors, leaves, None, all_taps=True)
    return summarize(per_sample, batch, run, total.detach())


def distributed_backward(
    model,
    batch: dict | None,
    memory: str = "standard",
    tasks=None,
    loss_fn=None,
    images_like: torch.Tensor | None = None,
) -> TaskLosses:
    """This rank's share of ``multitask_backward``: ``.grad`` = dw summed over its samples.

    Args:
        model: an ``UberNet`` whose tap BatchNorms are :class:`SyncTapBatchNorm`.
        batch: this rank's collated share, or None for an empty share.
        memory: ``"standard"`` or ``"low"`` (Sec. 4's schedule, every tap back-propagated).
        tasks, loss_fn: as for ``multitask_backward``.
        images_like: for an empty share, an empty image batch [0, 3, H, W] of the micro-batch's
            size, device and dtype.

    Returns:
        :class:`TaskLosses` of the local share (empty for an empty share). The gradient is the
        one ``multitask_backward`` leaves, computed with the backward cut at the taps.
    """
    model.zero_grad(set_to_none=True)
    if batch is None:
        if images_like is None:
            raise ValueError("an empty share needs images_like, an empty [0, 3, H, W] batch")
        _empty_share(model, images_like, memory)
        return TaskLosses({}, total=0.0, counts={}, batch_size=0)
    if memory == "low":
        return multitask_backward_lowmem(
            model, batch, tasks=tasks, loss_fn=loss_fn, zero_grad=False, all_taps=True
        )
    if memory != "standard":
        raise ValueError(
            f"distributed training supports memory 'standard' or 'low', got {memory!r}"
        )
    return _standard_cut_backward(model, batch, tasks=tasks, loss_fn=loss_fn)
