"""Training attentive single-tasking (:mod:`ubernet_lite.model.attentive`) on the union of partially
labelled data, with asynchronous SGD and the adversarial task discriminator.

One micro-batch, :func:`attentive_backward`:

    for every task t that some sample of the batch is labelled for (lazy evaluation):
        S_t   = {i : delta_{t,i} = 1}                      only the labelled samples (Eq. 2)
        F     = model.encode(images[S_t], task=t)          one pass conditioned on t
        L_t   = gamma_t sum_{i in S_t} L_t^i               the task's term of Eq. 1 (summed)
        with a discriminator D (dense tasks):
            g     = dL_t / dF                              at the shared features F (a tap),
                                                           kept differentiable (double backward)
            g^    = g / ||g||_2 per cell                   (the scale would give the task away)
            L_D,t = sum_{i in S_t} mean_cells CE(D(R_k(g^_i)), t)
        backward(L_t + L_D,t)

so ``.grad`` of the model holds ``sum_t dL_t/dw - k sum_t dL_D,t/dw`` (Table 1's summed dw, with
the discriminator's gradient reversed, x -k, into every layer that shaped the task gradients:
the talk's "Loss D ... * (-k) Reverse the Gradient"), and D's ``.grad`` holds ``dL_D/dD`` (D
learns to tell the tasks apart, the network learns to make their gradients indistinguishable).
Detection's gradients are not discriminated: torchvision's RoI heads are not twice differentiable.

:class:`~ubernet_lite.training.AsyncSGD` then consumes ``.grad`` unchanged: the task groups
(``model.task_parameters(t)``: branch, SE gates, adapters) count only their labelled samples and
update at their own B_p; the trunk counts every sample (B_shared).

The discriminator's accuracy is measured on gradients it has not been trained on: each step
scores D on the batch's gradients *before* D learns from them (test-then-train), and
:func:`evaluate_discriminator` scores it on a held-out data set. Chance is 1 / T.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..data import collate
from ..model.attentive import TaskDiscriminator, normalise_gradient, reverse_gradient
from .async_sgd import AsyncSGD
from .backward import multitask_backward
from .objective import (
    TaskLosses,
    batch_size_of,
    detection_targets,
    label_mask,
    labelled_tasks,
    model_tasks,
    task_objective,
)

# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------


def select_samples(batch: dict, index: torch.Tensor) -> dict:
    """The sub-batch of the samples ``index`` (long [n]) of a collated batch.

    Every tensor whose first dimension is B and every list of length B is indexed; dicts
    (``has_label``, ``targets``) are indexed recursively; anything else is kept, except
    ``collate``'s MIL bags (``mil_targets``): they hold flat indices into the whole batch, so
    the sub-batch leaves them out and the loss gathers its own from its targets.
    """
    b = batch_size_of(batch)
    idx = index.tolist()

    def pick(v):
        if torch.is_tensor(v) and v.dim() >= 1 and v.shape[0] == b:
            return v[index.to(v.device)]
        if isinstance(v, list) and len(v) == b:
            return [v[i] for i in idx]
        if isinstance(v, dict):
            return {k: pick(x) for k, x in v.items()}
        return v

    return {k: pick(v) for k, v in batch.items() if k != "mil_targets"}


def discriminated_tasks(model) -> list[str]:
    """The tasks whose gradients the discriminator tells apart: every dense task of the model."""
    return [n for n, s in model_tasks(model).items() if s.kind != "detection"]


def make_discriminator(model, tap: int = -1, hidden: int | None = None) -> TaskDiscriminator:
    """A :class:`TaskDiscriminator` for the model's dense tasks on tap ``tap`` (default fc7)."""
    channels = model.trunk.tap_channels[tap]
    return TaskDiscriminator(channels, len(discriminated_tasks(model)), hidden)


# --------------------------------------------------------------------------------------------
# One micro-batch
# --------------------------------------------------------------------------------------------


class AttentiveLosses(TaskLosses):
    """:class:`TaskLosses` plus the discriminator's numbers of the step.

    Attributes:
        disc_loss: ``sum_t L_D,t`` (0 without a discriminator).
        disc_samples: number of (sample, task) passes the discriminator saw.
        disc_correct / disc_cells: cells classified right / scored, before D learned from them.
        disc_accuracy: ``disc_correct / disc_cells`` (NaN without a discriminator).
    """

    def __init__(self, *args, disc_loss=0.0, disc_samples=0, disc_correct=0, disc_cells=0, **kw):
        super().__init__(*args, **kw)
        self.disc_loss, self.disc_samples = disc_loss, disc_samples
        self.disc_correct, self.disc_cells = disc_correct, disc_cells

    @property
    def disc_accuracy(self) -> float:
        return self.disc_correct / self.disc_cells if self.disc_cells else float("nan")


def encode_for(model, images: torch.Tensor, task: str):
    """``model.encode(images, task=task)`` for an AttentiveUberNet, ``model.encode(images)`` for
    a plain UberNet (whose trunk does not depend on the task)."""
    if hasattr(model, "conditioned"):
        return model.encode(images, task=task)
    return model.encode(images)


def _features_for_discriminator(feats, tap: int) -> torch.Tensor:
    return feats.taps[0][tap]  # the finest level's shared tap B(C_tap): [n, C, h8, w8]


def attentive_backward(
    model,
    batch: dict,
    discriminator: nn.Module | None = None,
    k: float = 1.0,
    tap: int = -1,
    tasks: Sequence[str] | None = None,
    loss_fn=None,
    zero_grad: bool = True,
) -> AttentiveLosses:
    """One pass per labelled task on its labelled samples, backward (see the module docstring).

    Args:
        model: an :class:`~ubernet_lite.model.attentive.AttentiveUberNet` in train mode (or a
            plain UberNet: the same passes, its trunk unconditioned).
        batch: a collated micro-batch (``ubernet_lite.data.collate``) on the model's device.
        discriminator: a :class:`TaskDiscriminator` (:func:`make_discriminator`), or None.
        k: the gradient reversal factor (the network receives ``-k dL_D/dw``).
        tap: which tap's gradient D reads (index into C_1..C_6, default -1: fc7).
        tasks: restrict training to these tasks (default: every task of the model).
        loss_fn: per-sample loss (default ``ubernet_lite.losses.task_loss``).
        zero_grad: clear the model's (and D's) ``.grad`` first.

    Returns:
        :class:`AttentiveLosses`; the model's ``.grad`` is the summed dw for AsyncSGD, D's
        ``.grad`` the gradient of ``sum_t L_D,t``.
    """
    specs = model_tasks(model)
    if tasks is not None:
        unknown = [t for t in tasks if t not in specs]
        if unknown:
            raise KeyError(f"unknown task(s) {unknown}; the model has {list(specs)}")
        specs = {n: specs[n] for n in tasks}
    run = labelled_tasks(specs.values(), batch)
    d_names = discriminated_tasks(model)
    if discriminator is not None and getattr(discriminator, "num_tasks", len(d_names)) != len(
        d_names
    ):
        raise ValueError(
            f"the discriminator tells {discriminator.num_tasks} tasks apart, the model has "
            f"{len(d_names)} dense tasks {d_names}; build it with make_discriminator(model)"
        )
    if zero_grad:
        model.zero_grad(set_to_none=True)
        if discriminator is not None:
            discriminator.zero_grad(set_to_none=True)
    means, counts, total = {}, {}, 0.0
    d_loss, d_samples, d_correct, d_cells = 0.0, 0, 0, 0
    for spec in run:
        index = label_mask(batch, spec.target).nonzero().flatten()  # S_t
        sub = select_samples(batch, index)
        targets = detection_targets(sub) if spec.kind == "detection" else None
        feats = encode_for(model, sub["images"], spec.name)  # conditioned on t
        out = model.decode(spec.name, feats, targets)
        term, per_sample = task_objective(spec, out, sub, loss_fn)  # gamma_t sum_i L_t^i
        objective = term
        if discriminator is not None and spec.kind != "detection":
            shared = _features_for_discriminator(feats, tap)
            (g,) = torch.autograd.grad(term, shared, create_graph=True, retain_graph=True)
            logits = discriminator(reverse_gradient(normalise_gradient(g), k))  # D(R_k(g^))
            label = torch.full(
                (logits.shape[0], *logits.shape[2:]), d_names.index(spec.name), device=g.device
            )
            ce = F.cross_entropy(logits, label, reduction="none")  # [n, h, w]
            loss_d = ce.flatten(1).mean(1).sum()  # L_D,t: mean over cells, sum over samples
            with torch.no_grad():  # scored before D learns from these gradients
                d_correct += int((logits.argmax(1) == label).sum())
                d_cells += label.numel()
            d_loss += float(loss_d.detach())
            d_samples += len(index)
            objective = term + loss_d
        objective.backward()
        means[spec.name] = float(per_sample.sum()) / max(len(index), 1)
        counts[spec.name] = len(index)
        total += float(term.detach())
    return AttentiveLosses(
        means,
        total=total,
        counts=counts,
        batch_size=batch_size_of(batch),
        disc_loss=d_loss,
        disc_samples=d_samples,
        disc_correct=d_correct,
        disc_cells=d_cells,
    )


# --------------------------------------------------------------------------------------------
# Held-out gradients
# --------------------------------------------------------------------------------------------


def task_gradients(model, batch: dict, tap: int = -1, tasks=None) -> dict[str, torch.Tensor]:
    """The normalised gradients ``g^ = dL_t/dF / ||.||`` of every labelled dense task, detached.

    Runs in the model's current mode (use eval mode for held-out data: no dropout, BatchNorm's
    running statistics; the losses then read the fused prediction only).

    Returns:
        ``{task: float [n_t, C, h8, w8]}`` over the batch's samples labelled for the task.
    """
    names = discriminated_tasks(model) if tasks is None else list(tasks)
    specs = model_tasks(model)
    out_g = {}
    for name in names:
        spec = specs[name]
        index = label_mask(batch, spec.target).nonzero().flatten()
        if len(index) == 0:
            continue
        sub = select_samples(batch, index)
        with torch.enable_grad():
            feats = encode_for(model, sub["images"], name)
            term, _ = task_objective(spec, model.decode(name, feats), sub)
            (g,) = torch.autograd.grad(term, _features_for_discriminator(feats, tap))
        out_g[name] = normalise_gradient(g).detach()
    return out_g


def collect_task_gradients(
    model, dataset, batch_size: int = 4, tap: int = -1, tasks=None, max_samples: int | None = None
) -> dict[str, torch.Tensor]:
    """:func:`task_gradients` over (the first ``max_samples`` of) a data set, in eval mode.

    Returns ``{task: float [N_t, C, h8, w8]}``; the model is left in the mode it was in.
    """
    n = len(dataset) if max_samples is None else min(len(dataset), max_samples)
    if n == 0:
        raise ValueError("collect_task_gradients: empty data set")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    parts: dict[str, list[torch.Tensor]] = {}
    try:
        for start in range(0, n, batch_size):
            batch = collate([dataset[i] for i in range(start, min(start + batch_size, n))])
            batch = {**batch, "images": batch["images"].to(device)}
            for name, g in task_gradients(model, batch, tap, tasks).items():
                parts.setdefault(name, []).append(g.cpu())
    finally:
        model.train(was_training)
    return {name: torch.cat(gs) for name, gs in parts.items()}


@torch.no_grad()
def discriminator_accuracy(
    discriminator: nn.Module, grads: dict[str, torch.Tensor], names: Sequence[str]
) -> dict[str, float]:
    """Per-cell accuracy of D on gradients ``{task: [N, C, h, w]}``: ``{"all": ..., task: ...,
    "chance": 1 / T}``; ``names`` orders D's classes (:func:`discriminated_tasks`)."""
    was_training = discriminator.training
    discriminator.eval()
    device = next(discriminator.parameters()).device
    res, correct, cells = {}, 0, 0
    for name, g in grads.items():
        pred = discriminator(g.to(device)).argmax(1)
        right = int((pred == names.index(name)).sum())
        res[name] = right / pred.numel()
        correct, cells = correct + right, cells + pred.numel()
    discriminator.train(was_training)
    res["all"] = correct / cells if cells else float("nan")
    res["chance"] = 1.0 / len(names)
    return res


def evaluate_discriminator(
    model, discriminator, dataset, batch_size: int = 4, tap: int = -1, max_samples=None
) -> dict[str, float]:
    """D's accuracy on the gradients of a held-out data set (e.g. ``SynthWorld(split="val")``)."""
    grads = collect_task_gradients(model, dataset, batch_size, tap, max_samples=max_samples)
    return discriminator_accuracy(discriminator, grads, discriminated_tasks(model))


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


@dataclass
class AttentiveHistory:
    """What :func:`train_attentive` records.

    Attributes:
        losses: per step ``{task: mean loss}`` (the step's :class:`AttentiveLosses` as a dict).
        disc_accuracy: per step D's test-then-train accuracy (NaN without D).
        heldout: ``(step, evaluate_discriminator(...))`` at every ``eval_every`` steps and the end.
        updates: the optimiser's ``num_updates`` at the end.
    """

    losses: list[dict] = field(default_factory=list)
    disc_accuracy: list[float] = field(default_factory=list)
    heldout: list[tuple[int, dict]] = field(default_factory=list)
    updates: dict = field(default_factory=dict)


def _draw_batch(dataset, batch_size: int, gen: torch.Generator, targets, tries: int = 100) -> dict:
    """A random micro-batch with at least one label for the model's targets (a union's member
    may carry none of them: such a batch has no gradient and is drawn again)."""
    for _ in range(tries):
        idx = torch.randint(len(dataset), (batch_size,), generator=gen).tolist()
        batch = collate([dataset[i] for i in idx])
        if any(bool(batch["has_label"][t].any()) for t in targets):
            return batch
    raise ValueError(
        f"{tries} random micro-batches carried no label for the model's targets {sorted(targets)}; "
        "train on a data set that labels them"
    )


def train_attentive(
    model,
    dataset,
    steps: int,
    batch_size: int = 4,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_sizes: dict[str, int] | None = None,
    discriminator: nn.Module | None = None,
    k: float = 1.0,
    disc_lr: float = 1e-3,
    tap: int = -1,
    heldout=None,
    eval_every: int = 0,
    heldout_samples: int | None = 16,
    seed: int = 0,
    log=None,
) -> AttentiveHistory:
    """Train with :class:`~ubernet_lite.training.AsyncSGD` on random micro-batches of ``dataset``.

    An AttentiveUberNet with SE/adapters (or any discriminator) trains with
    :func:`attentive_backward`; with every mechanism off and no discriminator the model is
    UberNet and trains with UberNet's own :func:`~ubernet_lite.training.multitask_backward`.
    The discriminator (if any) learns with Adam (``disc_lr``) on its mean gradient per pass.

    Args:
        dataset: sample dicts (a ``DiverseUnion`` or ``SynthWorld``), drawn with replacement;
            a micro-batch without any label for the model's tasks is drawn again.
        heldout / eval_every / heldout_samples: where, how often and on how many samples D's
            held-out accuracy is measured (:func:`evaluate_discriminator`), plus once at the end.
        log: optional ``f(step, losses)`` called after every step.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(
            f"train_attentive needs steps >= 1 and batch_size >= 1, got {steps}, {batch_size}"
        )
    opt = AsyncSGD(
        model, lr=lr, momentum=momentum, weight_decay=weight_decay, batch_sizes=batch_sizes
    )
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=disc_lr) if discriminator else None
    plain = not getattr(model, "conditioned", False) and discriminator is None
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    hist = AttentiveHistory()
    model.train()
    targets = {s.target for s in model_tasks(model).values()}
    for step in range(1, steps + 1):
        batch = _draw_batch(dataset, batch_size, gen, targets)
        batch = {**batch, "images": batch["images"].to(device)}
        if plain:
            losses = multitask_backward(model, batch)
        else:
            losses = attentive_backward(model, batch, discriminator, k=k, tap=tap)
        opt.step(batch)
        if d_opt is not None and losses.disc_samples:
            for p in discriminator.parameters():
                if p.grad is not None:
                    p.grad /= losses.disc_samples  # mean over the (sample, task) passes
            d_opt.step()
            d_opt.zero_grad(set_to_none=True)
        hist.losses.append(dict(losses))
        hist.disc_accuracy.append(getattr(losses, "disc_accuracy", float("nan")))
        if log is not None:
            log(step, losses)
        last = step == steps
        if (
            discriminator is not None
            and heldout is not None
            and (last or (eval_every and step % eval_every == 0))
        ):
            acc = evaluate_discriminator(
                model, discriminator, heldout, batch_size, tap, max_samples=heldout_samples
            )
            hist.heldout.append((step, acc))
            model.train()
    hist.updates = opt.num_updates
    return hist


__all__ = [
    "AttentiveHistory",
    "AttentiveLosses",
    "attentive_backward",
    "collect_task_gradients",
    "discriminated_tasks",
    "discriminator_accuracy",
    "evaluate_discriminator",
    "make_discriminator",
    "select_samples",
    "task_gradients",
    "train_attentive",
]
