"""Low-memory multi-task backpropagation (Sec. 4, Figs. 3-4 of the paper).

Plain backpropagation keeps every activation of the trunk and of every task branch until the
backward pass: ``2 N (L_C + T L_T)`` memory for a trunk of ``L_C`` layers and ``T`` branches of
``L_T`` layers (Fig. 3). UberNet's schedule (Fig. 4) makes it independent of ``T``:

(a) the trunk's forward keeps only the *anchor* activations at the borders of its segments
    (``model.trunk.segments``; the six VGG blocks, each ending at a tap ``C_i``); everything
    inside a segment is dropped and recomputed in the backward pass
    (``torch.utils.checkpoint``, non-reentrant, random state replayed);
(b) the taps are cut from the graph at the branch point: every tensor of
    ``PyramidFeatures.tensors()`` (the tap BatchNorms' outputs ``B_i(C_i)`` of every pyramid
    level, and the detection features) becomes a leaf ``detach().requires_grad_()``;
(c) the task branches run one at a time: forward, masked loss (Eq. 1-2), backward into the
    leaves' ``.grad`` (which accumulate over tasks, since the objective is a sum) and into the
    branch's own parameters; the branch's activations are freed before the next task starts.
    Detection runs first (it reads a single tap, so its large RPN / RoI-head backward runs
    before the dense branches have filled every tap's gradient), and a dense task's
    deep-supervision losses (fused output and every scale's output, Sec. 2) are back-propagated
    one output at a time, so only one output's loss activations are alive;
(d) the values of the taps are released (only the branches read them; the trunk's backward
    needs the anchors and what autograd saved, :func:`release_values`), then the backward
    through the trunk, seeded with the accumulated tap gradients, one pyramid level at a time,
    coarsest first (the levels share only weights): each level's weight gradients land in
    ``.grad`` before the next level starts, and the tap gradients are handed to autograd
    (:class:`_SeedGradients`) so that each is freed once its BatchNorm backward has used it.

What stays alive (the low-memory peak): the anchors (the raw taps ``C_i`` of every level, which
are the segments' inputs), the tap values ``B_i(C_i)`` during the branch phase, the tap
gradients, and one branch (during the branch phase) or one recomputed segment with its
backward's temporaries (during the trunk's backward).

The objective, its masking (delta_{t,i}, Eq. 2), gammas and the sum over samples are those of
:mod:`ubernet_lite.training.objective` (:func:`~.objective.task_objective`), so ``.grad`` equals
the standard backward's up to floating-point summation order.

BatchNorm. The tap BatchNorms ``B_i`` live in ``model.encode`` *outside* the checkpointed
segments: they run once, in the forward, and their running statistics are updated once. A
BatchNorm *inside* a checkpointed segment would run twice (forward and recomputation) and update
its statistics twice (pytorch/pytorch#96136): :func:`frozen_batchnorm_stats` switches the stat
updates off during the recomputation only (it is the checkpoint's recomputation context), so the
statistics are updated exactly once per forward, as in ``memory="standard"``.

Dropout. ``preserve_rng_state=True`` replays the RNG state of the forward during recomputation,
so the recomputed dropout masks equal the forward's (and the global RNG is left as the forward
left it: the branches' random sampling, e.g. the RPN's, sees the same stream as in standard mode).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .objective import (
    LossFn,
    TaskLosses,
    batch_size_of,
    detection_targets,
    labelled_tasks,
    model_tasks,
    summarize,
    task_objective,
)

__all__ = [
    "checkpointed_segments",
    "cut_features",
    "frozen_batchnorm_stats",
    "multitask_backward_checkpoint",
    "multitask_backward_lowmem",
    "release_values",
    "saved_storages",
]


# --------------------------------------------------------------------------------------------
# BatchNorm statistics during recomputation
# --------------------------------------------------------------------------------------------


@contextmanager
def frozen_batchnorm_stats(module: nn.Module) -> Iterator[None]:
    """Inside the context, BatchNorm layers of ``module`` compute as usual but keep no stat update.

    Train-mode BatchNorm normalises with the batch statistics and updates ``running_mean``,
    ``running_var`` and ``num_batches_tracked`` in place. Inside the context those buffers are
    swapped for scratch copies, which take the update and are thrown away on exit; the real
    buffers are untouched. The computation itself is unchanged (same saved tensors, same
    output), which :func:`torch.utils.checkpoint.checkpoint` verifies when it recomputes.
    Used as the recomputation context of the checkpoint (pytorch/pytorch#96136).
    """
    names = ("running_mean", "running_var", "num_batches_tracked")
    saved = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            kept = {n: getattr(m, n) for n in names if getattr(m, n, None) is not None}
            saved.append((m, kept))
            for n, buf in kept.items():
                setattr(m, n, buf.clone())  # the scratch copy that takes the update
    try:
        yield
    finally:
        for m, kept in saved:
            for n, buf in kept.items():
                setattr(m, n, buf)


# --------------------------------------------------------------------------------------------
# (a) checkpointed trunk segments
# --------------------------------------------------------------------------------------------


def _storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def _note(store: dict, t: torch.Tensor) -> None:
    """Record ``t``'s storage in ``store`` (storage key -> bytes)."""
    storage = t.untyped_storage()
    store[storage.data_ptr()] = storage.nbytes()


def _checkpointed_forward(module: nn.Module, forward, *args, _anchors=None, **kwargs):
    """``forward(*args)`` under non-reentrant checkpointing, BN stats frozen while recomputing.

    ``_anchors``: a dict that receives the storages of the tensor inputs (the kept anchors).
    """
    if not torch.is_grad_enabled():  # nothing will be recomputed: plain forward
        return forward(*args, **kwargs)
    if _anchors is not None:
        for a in args:
            if torch.is_tensor(a):
                _note(_anchors, a)
    return checkpoint(
        forward,
        *args,
        use_reentrant=False,  # reentrant mode gives no grad to a segment whose input needs none
        preserve_rng_state=True,  # replay dropout masks in the recomputation
        context_fn=lambda: (nullcontext(), frozen_batchnorm_stats(module)),
        **kwargs,
    )


@contextmanager
def checkpointed_modules(modules, anchors: dict | None = None) -> Iterator[None]:
    """Inside the context, calling any of ``modules`` runs it under activation checkpointing.

    Each module keeps only its inputs (the *anchors*) for the backward pass; its internal
    activations (and max-pool's int64 indices) are dropped and recomputed when the backward
    pass reaches it. The modules' ``forward`` is wrapped for the duration of the context only.
    ``anchors``: a dict that receives the storages of the kept inputs (storage key -> bytes).
    """
    modules = list(modules)
    patched = []
    try:
        for m in modules:
            own = m.__dict__.get("forward")  # an instance-level forward, if someone set one
            m.forward = functools.partial(
                _checkpointed_forward, m, own or type(m).forward.__get__(m), _anchors=anchors
            )
            patched.append((m, own))
        yield
    finally:
        for m, own in patched:
            if own is None:
                del m.forward
            else:
                m.forward = own


def trunk_segments(model) -> nn.Sequential:
    """``model.trunk.segments`` with a clear error when the model has none."""
    segments = getattr(getattr(model, "trunk", None), "segments", None)
    if not isinstance(segments, nn.Sequential) or len(segments) == 0:
        raise TypeError(
            f"{type(model).__name__} has no trunk.segments; the low-memory backward needs "
            "model.trunk.segments, the trunk as an nn.Sequential of blocks (docs/design.md)"
        )
    return segments


def checkpointed_segments(model, anchors: dict | None = None):
    """Context: ``model.encode`` keeps only the borders of ``model.trunk.segments`` (Fig. 4a).

    With the six VGG blocks as segments, the kept anchors are the block inputs, i.e. the image
    and the taps C_1..C_5; the 2-4 layers inside each block (and max-pool's int64 indices) are
    recomputed once in the backward pass. ``anchors`` receives their storages (key -> bytes).
    """
    return checkpointed_modules(trunk_segments(model), anchors)


@contextmanager
def saved_storages(store: dict) -> Iterator[None]:
    """Context: ``store`` receives the storage (key -> bytes) of every tensor autograd saves for
    backward (outside checkpointed regions, whose own saved tensors are dropped and recomputed).
    """

    def pack(t):
        _note(store, t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield


# --------------------------------------------------------------------------------------------
# (b) the cut at the branch point
# --------------------------------------------------------------------------------------------


def cut_features(feats):
    """Cut ``PyramidFeatures`` from the trunk's graph: ``(trunk_tensors, leaves, cut_feats)``.

    ``trunk_tensors`` is ``feats.tensors()`` (still attached to the trunk's graph), ``leaves``
    their detached copies (same storage and version counter: branches must not modify them in
    place; ``requires_grad`` as the originals) and ``cut_feats`` the features rebuilt on the
    leaves, ``feats.with_tensors(leaves)``.
    """
    trunk_tensors = list(feats.tensors())
    leaves = [t.detach().requires_grad_(t.requires_grad) for t in trunk_tensors]
    return trunk_tensors, leaves, feats.with_tensors(leaves)


def _level_groups(feats, n: int) -> list[list[int]]:
    """Indices into ``feats.tensors()`` grouped by pyramid level (detection map with level 0).

    The levels run the trunk separately (tied weights, no shared activations), so each can be
    back-propagated on its own. Features without per-level ``taps`` give one group.
    """
    taps = getattr(feats, "taps", None)
    if not isinstance(taps, list) or not all(isinstance(t, list) for t in taps):
        return [list(range(n))]
    groups, k = [], 0
    for level in taps:
        groups.append(list(range(k, k + len(level))))
        k += len(level)
    if k > n or not groups:
        return [list(range(n))]
    groups[0] += list(range(k, n))  # the detection map is the finest level's
    return groups


def release_values(tensors, keep, protect=()) -> int:
    """Free the storage of the cut tensors whose *values* the trunk's backward does not need.

    After the branches have run, the trunk's backward needs only the gradients at the cut and
    the tensors that autograd saved (``keep``: storage keys from :func:`saved_storages` and
    the checkpoint anchors). A tap B_i(C_i) is read by the branches only (BatchNorm's backward
    saves its input C_i, not its output), so its storage is released in place (``resize_(0)``;
    the tensor keeps its shape and ``grad_fn``, which is all ``backward`` reads of a root).
    Tensors without ``grad_fn`` (inputs, leaves) and those sharing storage with ``protect`` are
    never touched. Returns the bytes released.
    """
    keep = set(keep) | {_storage_key(p) for p in protect if torch.is_tensor(p)}  # keys
    freed = 0
    for t in tensors:
        if t is None or t.grad_fn is None:
            continue
        storage = t.untyped_storage()
        if storage.data_ptr() in keep or storage.nbytes() == 0:
            continue
        freed += storage.nbytes()
        storage.resize_(0)
    return freed


class _SeedGradients(torch.autograd.Function):
    """The root of one trunk backward: hands over the accumulated tap gradients and forgets them.

    ``torch.autograd.backward(tensors, grads)`` keeps its ``grads`` referenced until the whole
    backward has finished, so every tap gradient of a level would stay alive next to the
    gradients flowing through the trunk. This node returns the gradients from a one-shot box;
    afterwards only autograd's buffers hold them, and each is freed as soon as the tap's
    BatchNorm backward has consumed it.
    """

    @staticmethod
    def forward(ctx, box, *tensors):
        ctx.box = box
        return tensors[0].new_zeros(())

    @staticmethod
    def backward(ctx, _grad):
        grads = ctx.box.pop()
        return (None, *grads)


def _backward_into_trunk(trunk_tensors, leaves, groups=None, all_taps: bool = False) -> None:
    """(d): back-propagate the tap gradients accumulated at the leaves through the trunk.

    One backward per pyramid level (``groups``), coarsest level first: the levels share only
    the trunk's weights, so a level's weight gradients land in ``.grad`` before the next level
    starts (one call for all levels would hold every level's weight gradients in autograd's
    buffers until the last level is done: a parameter-sized extra set, 78 MiB for VGG-16), and
    when the finest (largest) level runs, the coarser levels' anchors and gradients are gone.
    The leaves' ``.grad`` are handed over (:class:`_SeedGradients`) and set to None.
    ``all_taps``: seed a tap that no branch read with zeros instead of leaving it out, so that
    every process of a distributed run makes the same backward calls (``distributed.py``).
    """
    groups = [list(range(len(leaves)))] if groups is None else groups
    for group in reversed(groups):
        if all_taps:
            for i in group:
                if leaves[i].grad is None and trunk_tensors[i].requires_grad:
                    leaves[i].grad = torch.zeros_like(leaves[i])
        idx = [
            i
            for i in group
            # a tap that no branch used keeps grad None; a trunk without grad needs no backward
            if leaves[i].grad is not None and trunk_tensors[i].requires_grad
        ]
        if not idx:
            continue
        box = [[leaves[i].grad for i in idx]]
        roots = [trunk_tensors[i] for i in idx]
        for i in idx:
            leaves[i].grad = None
            trunk_tensors[i] = None
        seed = _SeedGradients.apply(box, *roots)
        del roots
        seed.backward()


# --------------------------------------------------------------------------------------------
# one branch
# --------------------------------------------------------------------------------------------


def _select_tasks(model, batch: dict, tasks) -> list:
    all_specs = model_tasks(model)
    if tasks is not None:
        unknown = [t for t in tasks if t not in all_specs]
        if unknown:
            raise KeyError(f"unknown task(s) {unknown}; the model has {list(all_specs)}")
        all_specs = {n: all_specs[n] for n in tasks}
    batch_size_of(batch)
    return labelled_tasks(all_specs.values(), batch)  # lazy evaluation (Sec. 4, last paragraph)


def _check_model(model) -> None:
    for attr in ("encode", "decode"):
        if not callable(getattr(model, attr, None)):
            raise TypeError(
                f"{type(model).__name__} has no .{attr}(); the low-memory backward needs "
                "model.encode(images) -> PyramidFeatures and model.decode(name, feats, targets)"
            )
    trunk_segments(model)


def _supervised_outputs(spec, out, loss_fn) -> list[torch.Tensor] | None:
    """The outputs whose losses add up to the task's loss, when they can be taken one at a time.

    The default loss (``losses.task_loss``) of a dense task is a sum over the fused output and
    every pyramid scale's output (deep supervision, Sec. 2): ``L = L(fused) + sum_s L(scale s)``.
    Its terms can then be back-propagated one after the other, so that only one output's loss
    activations are alive at a time (the MIL boundary loss keeps ~10 full-resolution maps per
    output). ``None`` for a custom ``loss_fn`` (not known to be additive) and for detection.
    """
    if loss_fn is not None or spec.kind == "detection":
        return None
    scales = getattr(out, "scales", {}).get(spec.name)
    fused = out.get(spec.name) if isinstance(out, dict) else None
    if not scales or not torch.is_tensor(fused):
        return None
    return [fused, *scales]


def _branch_step(model, spec, cut, batch, targets, loss_fn):
    """(c) one task: branch forward, masked loss (Eq. 1-2), backward into the leaves' ``.grad``
    (accumulated over tasks) and the branch's parameters. Returns ``(term, per_sample)``,
    detached: nothing of the branch's graph survives the call."""
    # a TaskOutputs: out[name] as model() gives it, out.scales[name] in train mode
    out = model.decode(spec.name, cut, targets=targets if spec.kind == "detection" else None)
    outputs = _supervised_outputs(spec, out, loss_fn)
    if outputs is None:
        term, per_sample = task_objective(spec, out, batch, loss_fn)
        del out
        if term.requires_grad:
            term.backward()
        return term.detach(), per_sample
    del out
    # deep supervision, one output's loss at a time: cut at the outputs, then one backward of
    # the branch from all of them (Eq. 1: gamma_t sum_i delta_{t,i} sum_k L_t(y_k^i))
    total, per_sample, grads = None, None, []
    for y in outputs:
        leaf = y.detach().requires_grad_(y.requires_grad)
        term, ps = task_objective(spec, {spec.name: leaf}, batch, loss_fn)
        if term.requires_grad:
            term.backward()
        term = term.detach()
        total = term if total is None else total + term
        per_sample = ps if per_sample is None else per_sample + ps
        grads.append(leaf.grad)
        del term, leaf
    pairs = [(y, g) for y, g in zip(outputs, grads, strict=True) if g is not None]
    del outputs, grads
    if pairs:
        torch.autograd.backward([y for y, _ in pairs], [g for _, g in pairs])
    return total, per_sample


# --------------------------------------------------------------------------------------------
# the two backward schedules
# --------------------------------------------------------------------------------------------


def multitask_backward_lowmem(
    model,
    batch: dict,
    tasks=None,
    loss_fn: LossFn | None = None,
    zero_grad: bool = True,
    all_taps: bool = False,
) -> TaskLosses:
    """``multitask_backward(model, batch, memory="low")``: Sec. 4's low-memory schedule.

    Same arguments, return value and ``.grad`` as the standard backward
    (:func:`ubernet_lite.training.objective.standard_backward`): the gradient of the masked
    objective (Eq. 1-2) summed over the micro-batch's samples, for the labelled tasks only.

    Args:
        model: an ``UberNet`` with ``encode``, ``decode`` and ``trunk.segments``.
        batch: collated micro-batch (``images`` [B, 3, H, W], ``has_label``, ``targets``).
        tasks: restrict training to these task names (default: every task of the model).
        loss_fn: per-sample loss ``(spec, out, batch) -> [B]`` (default ``losses.task_loss``).
        zero_grad: clear ``.grad`` first (``set_to_none``), as the standard backward does.
        all_taps: back-propagate every tap through the trunk (zeros where no branch read it),
            so that all processes of a distributed run make the same trunk backward calls.

    Returns:
        :class:`~ubernet_lite.training.objective.TaskLosses`.
    """
    _check_model(model)
    specs = _select_tasks(model, batch, tasks)
    if zero_grad:
        model.zero_grad(set_to_none=True)
    targets = detection_targets(batch) if any(s.kind == "detection" for s in specs) else None

    # (a) trunk forward, keeping only the segment borders; tap BNs run (and update stats) once
    needed: dict = {}  # storages the trunk's backward reads: anchors and saved tensors
    with checkpointed_segments(model, needed), saved_storages(needed):
        feats = model.encode(batch["images"])
    # (b) cut at the branch point
    trunk_tensors, leaves, cut = cut_features(feats)
    groups = _level_groups(feats, len(trunk_tensors))
    del feats

    # (c) one branch at a time; its graph is freed by its own backward. Detection first: it
    # reads one tap only, so its large RPN / RoI-head backward runs before the dense branches
    # have filled every tap's gradient (no branch draws random numbers after the trunk except
    # the RPN's sampler, so the random stream is the standard one)
    total, per_sample = None, {}
    for spec in sorted(specs, key=lambda s: s.kind != "detection"):
        term, per_sample[spec.name] = _branch_step(model, spec, cut, batch, targets, loss_fn)
        total = term if total is None else total + term
    del cut
    # the taps' values were for the branches only: keep their gradients, free the values
    release_values(trunk_tensors, needed, protect=[batch["images"]])

    # (d) one backward through the (checkpointed) trunk, level by level
    _backward_into_trunk(trunk_tensors, leaves, groups, all_taps=all_taps)
    return summarize(per_sample, batch, specs, total)


def multitask_backward_checkpoint(
    model, batch: dict, tasks=None, loss_fn: LossFn | None = None, zero_grad: bool = True
) -> TaskLosses:
    """Plain activation checkpointing of the whole network, all tasks in one graph.

    The baseline of the memory benchmark (Chen et al. [12] applied without the multi-task
    schedule): the trunk's segments *and* every task branch (``decode``) are checkpointed, but
    the branches' outputs and the losses of all tasks stay in one graph and one ``backward()``
    runs at the end, so the memory of the kept predictions and loss activations grows with the
    number of tasks. Same arguments, return value and ``.grad`` as the standard backward.
    """
    _check_model(model)
    specs = _select_tasks(model, batch, tasks)
    if zero_grad:
        model.zero_grad(set_to_none=True)
    targets = detection_targets(batch) if any(s.kind == "detection" for s in specs) else None

    with checkpointed_segments(model):
        feats = model.encode(batch["images"])
    trunk_tensors = list(feats.tensors())

    total, per_sample = None, {}
    for spec in specs:

        def branch(*ts, _name=spec.name, _t=targets if spec.kind == "detection" else None):
            return model.decode(_name, feats.with_tensors(list(ts)), targets=_t)

        out = _checkpointed_forward(model, branch, *trunk_tensors)
        term, per_sample[spec.name] = task_objective(spec, out, batch, loss_fn)
        total = term if total is None else total + term
    if total.requires_grad:
        total.backward()
    return summarize(per_sample, batch, specs, total.detach())
