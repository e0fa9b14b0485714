"""Asynchronous SGD (Table 1) and the synchronous baseline (Eq. 3-5).

Why asynchronous? On a union of partially labelled data sets, a minibatch of B = 10 images may
hold one or no image labelled for a task; the synchronous update of that task's parameters
(Eq. 5, divided by B whatever the number of labelled samples) is then a very noisy, or shrunk,
gradient. Table 1 instead keeps, per parameter group ``p``,

* a counter ``c_p`` of the samples it has seen a gradient from (the shared trunk: every sample;
  a task: only the samples labelled for it), and
* an accumulated gradient ``dw_p`` (the sum of those samples' gradients),

and updates the group once ``c_p`` reaches its effective batch size ``B_p``::

    w_p <- w_p - lr * (lambda * w_p + dw_p / c_p);   c_p <- 0;  dw_p <- 0        (Table 1)

with B_p = 2 for detection, 10 for the other tasks and 30 for the shared trunk (Sec. 3).

**Micro-batches larger than one sample.** Table 1 streams single samples, so ``c_p`` hits B_p
exactly. Here a micro-batch of b samples arrives with its *summed* gradient, which cannot be
split per sample; when it carries ``c_p`` past B_p we update as soon as ``c_p >= B_p`` and
divide by the actual count ``c_p`` (the mean over every sample seen), then restart from 0. With
micro-batches of one sample (the paper's streaming mode) this is Table 1 exactly: a group seeing
n labelled samples makes exactly ``floor(n / B_p)`` updates.

The parameter groups: one per task (the task's branch ``model.heads[name]``, or
``model.task_parameters(name)`` if the model defines it) and one ``"shared"`` group with every
other parameter (the trunk and the tap BatchNorms).

Each group's update is ``torch.optim.SGD`` on the averaged gradient, so ``momentum`` and
``weight_decay`` (the ``lambda`` of Eq. 1 / Table 1) mean what they mean there.

**On N processes** (``distributed=True``, :mod:`ubernet_lite.training.distributed`): each rank
passes its share of the global micro-batch; the counts ``c_p`` are summed over the ranks at
every step, each rank accumulates its local ``dw_p``, and at the moment the global ``c_p``
reaches ``B_p`` the group's accumulator is all-reduced (summed) once and divided by the global
``c_p``: Table 1 on the global micro-batch, every replica applying the same update.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from ..tasks import TaskSpec
from .distributed import all_reduce_sum_, global_counts
from .objective import batch_size_of, label_mask, model_tasks

SHARED = "shared"


# --------------------------------------------------------------------------------------------
# Parameter groups
# --------------------------------------------------------------------------------------------


def _task_module_params(model, spec: TaskSpec) -> list[torch.nn.Parameter]:
    if hasattr(model, "task_parameters"):
        return list(model.task_parameters(spec.name))
    heads = getattr(model, "heads", None)
    if heads is not None and spec.name in heads:
        return list(heads[spec.name].parameters())
    if spec.kind == "detection" and isinstance(getattr(model, "detection", None), torch.nn.Module):
        return list(model.detection.parameters())
    raise ValueError(
        f"cannot find the parameters of task {spec.name!r}: expected model.heads[{spec.name!r}] "
        "(an nn.ModuleDict keyed by task name) or a model.task_parameters(name) method"
    )


def partition_parameters(model, tasks: Iterable[str] | None = None) -> dict[str, list]:
    """Split a model's trainable parameters into ``{"shared": [...], task: [...]}``.

    A task's group is its branch's parameters; ``"shared"`` is every other parameter (trunk and
    tap BatchNorms). Raises if two tasks claim the same parameter.
    """
    specs = model_tasks(model)
    names = list(specs) if tasks is None else list(tasks)
    groups: dict[str, list] = {}
    owner: dict[int, str] = {}
    for name in names:
        if name not in specs:
            raise KeyError(f"unknown task {name!r}; the model has {list(specs)}")
        params = [p for p in _task_module_params(model, specs[name]) if p.requires_grad]
        for p in params:
            if id(p) in owner:
                raise ValueError(f"parameter shared by tasks {owner[id(p)]!r} and {name!r}")
            owner[id(p)] = name
        groups[name] = params
    all_task = {id(p) for n in specs for p in _task_module_params(model, specs[n])}
    shared = [p for p in model.parameters() if p.requires_grad and id(p) not in all_task]
    return {SHARED: shared, **groups}


def resolve_batch_sizes(model, batch_sizes: dict[str, int] | None, tasks=None) -> dict[str, int]:
    """Effective batch sizes B_p per group: defaults from the config, overridden by the table.

    Defaults (Sec. 3): ``cfg.shared_batch_size`` (30) for ``"shared"``, ``spec.batch_size``
    (2 for detection, 10 otherwise) for each task.
    """
    specs = model_tasks(model)
    names = list(specs) if tasks is None else list(tasks)
    sizes = {SHARED: int(getattr(model.cfg, "shared_batch_size", 30))}
    sizes.update({n: int(specs[n].batch_size) for n in names})
    for key, value in (batch_sizes or {}).items():
        if key not in sizes:
            raise ValueError(
                f"batch_sizes names an unknown group {key!r}; expected 'shared' or a task of the "
                f"model: {names}"
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"batch_sizes[{key!r}] must be an integer >= 1 (B_p), got {value!r}")
        sizes[key] = value
    return sizes


@dataclass
class _Group:
    """One parameter group of Table 1: its counter c_p, accumulator dw_p and optimiser."""

    name: str
    params: list
    target: str | None  # None for the shared trunk: it counts every sample
    batch_size: int
    sgd: torch.optim.SGD
    acc: list = field(default_factory=list)
    count: int = 0
    updates: int = 0


def _schedule(lr_schedule, samples_seen: int) -> float:
    return 1.0 if lr_schedule is None else float(lr_schedule(samples_seen))


class _ScheduledLR:
    """The optimisers' shared clock: ``lr`` times ``lr_schedule(samples_seen)``."""

    lr: float
    lr_schedule: Callable[[int], float] | None
    samples_seen: int

    def current_lr(self) -> float:
        """The learning rate at the samples streamed so far (what the next update uses)."""
        return self.lr * _schedule(self.lr_schedule, self.samples_seen)


class AsyncSGD(_ScheduledLR):
    """Asynchronous SGD of Table 1: each group updates once it has seen B_p samples.

    Args:
        model: an ``UberNet`` (anything with ``.cfg.tasks`` and per-task ``.heads``).
        lr: the learning rate epsilon.
        weight_decay: lambda of Eq. 1 / Table 1 (the l2 regulariser), applied at every update.
        momentum: optional heavy-ball momentum (0 = Table 1 exactly).
        batch_sizes: overrides of B_p, e.g. ``{"shared": 30, "detection": 2, "semantic": 10}``.
        lr_schedule: optional ``f(samples_seen) -> multiplier`` of ``lr`` (one clock for every
            group: the number of samples streamed so far), e.g. :func:`poly_schedule`.
        tasks: the tasks to train (default: every task of the model).
        distributed: the batches passed to :meth:`step` are this rank's shares of global
            micro-batches: counts are summed over the process group and each group's
            accumulated gradient is all-reduced (summed) at its update (see the module note).

    Usage::

        losses = multitask_backward(model, batch)   # .grad = dw summed over the micro-batch
        updated = opt.step(batch)                    # list of the groups updated now
    """

    def __init__(
        self,
        model,
        lr: float = 0.01,
        weight_decay: float = 5e-4,
        momentum: float = 0.0,
        batch_sizes: dict[str, int] | None = None,
        lr_schedule: Callable[[int], float] | None = None,
        tasks: Iterable[str] | None = None,
        distributed: bool = False,
    ):
        if lr <= 0 or weight_decay < 0 or not 0 <= momentum < 1:
            raise ValueError(
                f"expected lr > 0, weight_decay >= 0, 0 <= momentum < 1; got {lr}, {weight_decay}, {momentum}"
            )
        self.distributed = bool(distributed)
        specs = model_tasks(model)
        tasks = list(specs) if tasks is None else list(tasks)
        sizes = resolve_batch_sizes(model, batch_sizes, tasks)
        self.lr, self.weight_decay, self.momentum = lr, weight_decay, momentum
        self.lr_schedule = lr_schedule
        self.samples_seen = 0
        self.groups: dict[str, _Group] = {}
        for name, params in partition_parameters(model, tasks).items():
            sgd = torch.optim.SGD(
                params or [torch.zeros(0)], lr=lr, momentum=momentum, weight_decay=weight_decay
            )
            self.groups[name] = _Group(
                name=name,
                params=params,
                target=None if name == SHARED else specs[name].target,
                batch_size=sizes[name],
                sgd=sgd,
                acc=[torch.zeros_like(p) for p in params],
            )

    # ---- bookkeeping ------------------------------------------------------------------------

    @property
    def batch_sizes(self) -> dict[str, int]:
        """B_p per group."""
        return {n: g.batch_size for n, g in self.groups.items()}

    @property
    def counts(self) -> dict[str, int]:
        """c_p per group: samples accumulated since the group's last update."""
        return {n: g.count for n, g in self.groups.items()}

    @property
    def num_updates(self) -> dict[str, int]:
        """How many times each group has been updated."""
        return {n: g.updates for n, g in self.groups.items()}

    def samples_in(self, batch: dict | None) -> dict[str, int]:
        """Samples of the batch each group counts: all B for shared, sum_i delta_{t,i} for t
        (None: an empty share of a distributed micro-batch)."""
        if batch is None:
            return dict.fromkeys(self.groups, 0)
        b = batch_size_of(batch)
        return {
            n: b if g.target is None else int(label_mask(batch, g.target).sum())
            for n, g in self.groups.items()
        }

    def zero_grad(self) -> None:
        for g in self.groups.values():
            for p in g.params:
                p.grad = None

    # ---- Table 1 ----------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, batch: dict | None) -> list[str]:
        """Consume the micro-batch's ``.grad`` (Table 1's summed ``dw``), update ready groups.

        Args:
            batch: the micro-batch whose gradient is in ``.grad`` (its ``has_label`` gives each
                task group's number of samples); distributed: this rank's share (None if empty).

        Returns:
            the names of the groups updated by this call. ``.grad`` is cleared (consumed).
        """
        local = self.samples_in(batch)
        seen = global_counts(local) if self.distributed else local  # c_p counts all ranks
        if seen[SHARED] == 0:
            raise ValueError("AsyncSGD.step got an empty batch")
        self.samples_seen += seen[SHARED]
        lr = self.current_lr()
        updated = []
        for name, g in self.groups.items():
            n = seen[name]
            if local[name] > 0:
                for acc, p in zip(g.acc, g.params, strict=True):
                    if p.grad is not None:
                        acc.add_(p.grad)  # dw_p <- dw_p + gw_p (this rank's samples)
            g.count += n  # c_p <- c_p + (samples, over every rank)
            for p in g.params:
                p.grad = None
            if g.count >= g.batch_size:  # Table 1: c_p = B_p (>= for micro-batches, see above)
                if self.distributed:
                    all_reduce_sum_(g.acc)  # dw_p summed over the ranks, once per update
                for acc, p in zip(g.acc, g.params, strict=True):
                    p.grad = acc / g.count
                for pg in g.sgd.param_groups:
                    pg["lr"] = lr
                g.sgd.step()  # w <- w - lr * (lambda w + dw / c)   (+ momentum if asked)
                for acc, p in zip(g.acc, g.params, strict=True):
                    p.grad = None
                    acc.zero_()
                g.count = 0
                g.updates += 1
                updated.append(name)
        return updated

    # ---- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Counters, accumulators, momentum buffers and hyper-parameters of every group."""
        return {
            "kind": "AsyncSGD",
            "samples_seen": self.samples_seen,
            "hyper": {"lr": self.lr, "weight_decay": self.weight_decay, "momentum": self.momentum},
            "groups": {
                n: {
                    "batch_size": g.batch_size,
                    "count": g.count,
                    "updates": g.updates,
                    "acc": [a.clone() for a in g.acc],
                    "sgd": g.sgd.state_dict(),
                }
                for n, g in self.groups.items()
            },
        }

    def local_state(self) -> dict:
        """What differs between the ranks of a distributed run: the local accumulators dw_p
        (counters, momentum and parameters are equal on every rank)."""
        return {"acc": {n: [a.clone() for a in g.acc] for n, g in self.groups.items()}}

    def load_local_state(self, state: dict) -> None:
        """Restore :meth:`local_state` (after :meth:`load_state_dict`)."""
        for n, g in self.groups.items():
            for acc, a in zip(g.acc, state["acc"][n], strict=True):
                acc.copy_(a)

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; a mismatching group layout gets a clear error."""
        if state.get("kind") != "AsyncSGD":
            raise ValueError(f"not an AsyncSGD state (kind {state.get('kind')!r})")
        if set(state["groups"]) != set(self.groups):
            raise ValueError(
                f"optimiser state has groups {sorted(state['groups'])}, this one {sorted(self.groups)}"
            )
        for n, g in self.groups.items():
            s = state["groups"][n]
            shapes = [tuple(a.shape) for a in s["acc"]]
            if shapes != [tuple(p.shape) for p in g.params]:
                raise ValueError(
                    f"optimiser state of group {n!r} does not fit this model's parameters"
                )
            if s["batch_size"] != g.batch_size:
                raise ValueError(
                    f"optimiser state of group {n!r} has B_p = {s['batch_size']}, this one {g.batch_size}"
                )
        self.samples_seen = int(state["samples_seen"])
        self.lr = state["hyper"]["lr"]
        self.weight_decay = state["hyper"]["weight_decay"]
        self.momentum = state["hyper"]["momentum"]
        for n, g in self.groups.items():
            s = state["groups"][n]
            g.count, g.updates = int(s["count"]), int(s["updates"])
            for acc, a in zip(g.acc, s["acc"], strict=True):
                acc.copy_(a)
            g.sgd.load_state_dict(s["sgd"])


class SyncSGD(_ScheduledLR):
    """The synchronous baseline, plain SGD on masked minibatches (Eq. 3-5).

    Every group is updated at every step with the masked gradient averaged over the *whole*
    minibatch, ``dw_p = (1/B) sum_i ...`` (Eq. 4-5), whatever the number of samples labelled
    for the task, and weight decay (Eq. 3) applies to every group at every step.

    Args:
        model: the model; lr, weight_decay, momentum, lr_schedule, tasks as for :class:`AsyncSGD`.
        distributed: batches are ranks' shares: B is the global micro-batch's size and the
            gradients are all-reduced (summed) at every step.
    """

    def __init__(
        self,
        model,
        lr: float = 0.01,
        weight_decay: float = 5e-4,
        momentum: float = 0.0,
        lr_schedule: Callable[[int], float] | None = None,
        tasks: Iterable[str] | None = None,
        distributed: bool = False,
    ):
        if lr <= 0 or weight_decay < 0 or not 0 <= momentum < 1:
            raise ValueError(
                f"expected lr > 0, weight_decay >= 0, 0 <= momentum < 1; got {lr}, {weight_decay}, {momentum}"
            )
        self.distributed = bool(distributed)
        if tasks is None:
            self.params = [p for p in model.parameters() if p.requires_grad]
        else:  # the shared trunk and the trained tasks' branches only
            self.params = [p for ps in partition_parameters(model, tasks).values() for p in ps]
        self.lr, self.lr_schedule = lr, lr_schedule
        self.sgd = torch.optim.SGD(self.params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.samples_seen = 0
        self.updates = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, batch: dict | None) -> None:
        """Eq. 3 with Eq. 4-5: ``w <- w - lr (lambda w + (1/B) sum_i dw_i)``; consumes ``.grad``."""
        b = 0 if batch is None else batch_size_of(batch)
        if self.distributed:  # B of the global micro-batch, dw summed over the ranks
            b = global_counts({"b": b})["b"]
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            all_reduce_sum_([p.grad for p in self.params])
        self.samples_seen += b
        for p in self.params:
            p.grad = torch.zeros_like(p) if p.grad is None else p.grad / b  # Eq. 4-5: 1/B
        for pg in self.sgd.param_groups:
            pg["lr"] = self.current_lr()
        self.sgd.step()  # Eq. 3
        self.zero_grad()
        self.updates += 1

    def local_state(self) -> dict:
        """Nothing differs between ranks: gradients are reduced at every step."""
        return {}

    def load_local_state(self, state: dict) -> None:
        pass

    def state_dict(self) -> dict:
        return {
            "kind": "SyncSGD",
            "samples_seen": self.samples_seen,
            "updates": self.updates,
            "sgd": self.sgd.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != "SyncSGD":
            raise ValueError(f"not a SyncSGD state (kind {state.get('kind')!r})")
        self.samples_seen, self.updates = int(state["samples_seen"]), int(state["updates"])
        self.sgd.load_state_dict(state["sgd"])


def poly_schedule(total_samples: int, power: float = 0.9) -> Callable[[int], float]:
    """DeepLab's "poly" learning-rate policy: ``(1 - seen / total) ** power`` (floored at 0)."""
    if total_samples < 1:
        raise ValueError(f"total_samples must be >= 1, got {total_samples}")
    return lambda seen: max(0.0, 1.0 - seen / total_samples) ** power
