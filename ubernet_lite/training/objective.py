"""The masked multi-task objective (Eq. 1-2) and the standard backward of one training step.

UberNet trains on the *union* of data sets that each label only some tasks. A sample ``i``
contributes to task ``t`` only when it carries ground truth for it (delta_{t,i} = 1, Eq. 2):

    L(w) = sum_t gamma_t * sum_i delta_{t,i} * L_t(f_t^i, y_t^i)          (Eq. 1-2, summed)

Two choices of this module, both taken from the paper's Table 1:

* the losses are **summed** over the micro-batch's samples, not averaged: the gradient left in
  ``.grad`` is Table 1's ``dw`` (sum of per-sample gradients). The optimisers
  (:mod:`ubernet_lite.training.async_sgd`) divide by their own sample counts (B_p for async SGD,
  B for the synchronous baseline, Eq. 4-5);
* the regularisers R(w) of Eq. 1 are *not* part of this objective: they are the optimisers'
  weight decay (``lambda * w`` in Eq. 3 and Table 1).

*Lazy evaluation*: only the branches of tasks that at least one sample of the micro-batch is
labelled for are run forward (and hence backward); the others cost nothing.

:func:`standard_backward` is the plain forward + backward of one micro-batch; the low-memory
backward of Sec. 4 (:mod:`.lowmem`) reuses this module's pieces, and
``multitask_backward(model, batch, memory=...)`` (:mod:`.backward`) dispatches between them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from ..losses import task_loss
from ..tasks import TARGETS, TaskSpec

#: A per-sample loss: ``loss_fn(spec, out, batch) -> float [B]`` (``ubernet_lite.losses.task_loss``).
LossFn = Callable[[TaskSpec, dict, dict], torch.Tensor]


class TaskLosses(dict):
    """What ``multitask_backward`` returns: ``{task: mean loss over its labelled samples}``.

    Only tasks run on the micro-batch appear. The values are floats, the unweighted task loss
    ``L_t`` averaged over the samples labelled for the task (what the loss curves plot).

    Attributes:
        total: the value of the masked objective (Eq. 1-2, summed over samples, gamma-weighted).
        counts: ``{task: number of samples of the micro-batch labelled for it}``.
        batch_size: B, the number of samples in the micro-batch.
    """

    def __init__(self, *args, total: float = 0.0, counts=None, batch_size: int = 0, **kw):
        super().__init__(*args, **kw)
        self.total = total
        self.counts = dict(counts or {})
        self.batch_size = batch_size


# --------------------------------------------------------------------------------------------
# Which tasks, which samples
# --------------------------------------------------------------------------------------------


def model_tasks(model) -> dict[str, TaskSpec]:
    """``{name: TaskSpec}`` of the tasks a model has (from ``model.cfg.tasks``)."""
    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(cfg, "tasks"):
        raise TypeError(
            f"{type(model).__name__} has no .cfg.tasks; expected an ubernet_lite.UberNet "
            "(or a model with a .cfg holding the list of TaskSpec)"
        )
    return {spec.name: spec for spec in cfg.tasks}


def batch_size_of(batch: dict) -> int:
    """B, the number of samples of a collated batch (``batch["images"]`` is [B, 3, H, W])."""
    images = batch.get("images") if isinstance(batch, dict) else None
    if not torch.is_tensor(images) or images.dim() != 4:
        raise ValueError(
            "expected a collated batch (ubernet_lite.data.collate) with 'images' float [B, 3, H, W]"
        )
    return int(images.shape[0])


def label_mask(batch: dict, target: str) -> torch.Tensor:
    """delta_{t,i} of Eq. 2 for every sample: bool [B], ``batch["has_label"][target]``."""
    has_label = batch.get("has_label")
    if not isinstance(has_label, dict):
        raise ValueError(
            "expected batch['has_label'] = {target: bool [B]} (ubernet_lite.data.collate)"
        )
    if target not in has_label:
        raise ValueError(
            f"batch['has_label'] has no entry for target {target!r}; expected one per target in {TARGETS}"
        )
    return torch.as_tensor(has_label[target], dtype=torch.bool).reshape(-1)


def label_counts(batch: dict, specs: Iterable[TaskSpec]) -> dict[str, int]:
    """``{task: number of samples of the batch labelled for it}`` (sum_i delta_{t,i})."""
    return {s.name: int(label_mask(batch, s.target).sum()) for s in specs}


def labelled_tasks(specs: Iterable[TaskSpec], batch: dict) -> list[TaskSpec]:
    """The tasks that at least one sample of the batch is labelled for (lazy evaluation).

    Raises ``ValueError`` when there is none: such a batch carries no gradient at all.
    """
    specs = list(specs)
    run = [s for s in specs if bool(label_mask(batch, s.target).any())]
    if not run:
        labelled = [t for t in TARGETS if bool(label_mask(batch, t).any())] if specs else []
        raise ValueError(
            "this batch has no labels for any task of the model "
            f"(tasks {[s.name for s in specs]}; targets labelled in the batch: {labelled or 'none'}); "
            "every batch needs at least one sample with has_label[spec.target] true"
        )
    return run


def detection_targets(batch: dict) -> list[dict | None]:
    """The model's detection targets: per sample ``{"boxes", "labels"}``, or None if unlabelled."""
    mask = label_mask(batch, "detection")
    tg = batch.get("targets", {})
    if bool(mask.any()) and ("boxes" not in tg or "labels" not in tg):
        raise ValueError("batch has detection labels but no targets['boxes'] / targets['labels']")
    return [
        {"boxes": tg["boxes"][i], "labels": tg["labels"][i]} if bool(m) else None
        for i, m in enumerate(mask)
    ]


# --------------------------------------------------------------------------------------------
# Eq. 1-2
# --------------------------------------------------------------------------------------------


def task_objective(
    spec: TaskSpec, out: dict, batch: dict, loss_fn: LossFn | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One task's term of Eq. 1: ``gamma_t * sum_i delta_{t,i} L_t^i``.

    Args:
        spec: the task.
        out: the model's train-mode output (``out[name]`` fused, ``out.scales[name]``).
        batch: the collated batch.
        loss_fn: per-sample loss, default ``ubernet_lite.losses.task_loss`` -> float [B].

    Returns:
        ``(term, per_sample)``: ``term`` a scalar with grad; ``per_sample`` float [B], the
        unweighted ``L_t^i`` with 0 where delta_{t,i} = 0 (detached).
    """
    loss_fn = loss_fn or task_loss
    delta = label_mask(batch, spec.target)  # Eq. 2: delta_{t,i}
    per_sample = loss_fn(spec, out, batch)
    if per_sample.dim() != 1 or per_sample.shape[0] != delta.shape[0]:
        raise ValueError(
            f"loss of task {spec.name!r} must be per sample, float [B={delta.shape[0]}]; "
            f"got shape {tuple(per_sample.shape)}"
        )
    delta = delta.to(per_sample.device)
    # where(), not a product: an unlabelled sample's loss may be NaN and 0 * NaN = NaN
    masked = torch.where(delta, per_sample, torch.zeros_like(per_sample))
    return spec.gamma * masked.sum(), masked.detach()  # Eq. 1: gamma_t * sum_i delta L


def masked_objective(
    specs: Iterable[TaskSpec], out: dict, batch: dict, loss_fn: LossFn | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The masked multi-task objective of Eq. 1-2, summed over the batch's samples.

    Args:
        specs: the tasks whose outputs are in ``out``.
        out: the model's train-mode output.
        batch: the collated batch with ``has_label``.

    Returns:
        ``(total, per_sample)``: ``total`` the scalar objective (without the regularisers,
        which are the optimiser's weight decay); ``per_sample[name]`` float [B], masked.
    """
    total, per_sample = None, {}
    for spec in specs:
        term, per_sample[spec.name] = task_objective(spec, out, batch, loss_fn)
        total = term if total is None else total + term
    if total is None:
        raise ValueError("masked_objective needs at least one task")
    return total, per_sample


def summarize(per_sample: dict[str, torch.Tensor], batch: dict, specs, total) -> TaskLosses:
    """Turn per-sample masked losses into a :class:`TaskLosses` (mean over labelled samples)."""
    specs = {s.name: s for s in specs}
    counts = {n: int(label_mask(batch, specs[n].target).sum()) for n in per_sample}
    # one read-back for every task's sum and the total (a single host sync on a GPU)
    parts = [v.detach().sum() for v in per_sample.values()]
    if parts:
        total_t = torch.as_tensor(total).detach().to(parts[0]).reshape(())
        sums = torch.stack([*parts, total_t]).tolist()
    else:
        sums = [float(total)]
    means = {n: s / max(counts[n], 1) for n, s in zip(per_sample, sums, strict=False)}
    return TaskLosses(means, total=sums[-1], counts=counts, batch_size=batch_size_of(batch))


# --------------------------------------------------------------------------------------------
# The standard backward pass
# --------------------------------------------------------------------------------------------


def standard_backward(
    model, batch: dict, tasks=None, loss_fn: LossFn | None = None, zero_grad: bool = True
) -> TaskLosses:
    """Lazy forward of the labelled tasks, masked objective (Eq. 1-2), one ``backward()``.

    Args:
        model: an ``UberNet`` in train mode.
        batch: collated batch on the model's device (``images`` [B, 3, H, W], ``has_label``,
            ``targets``).
        tasks: restrict training to these task names (default: every task of the model).
        loss_fn: per-sample loss (default ``ubernet_lite.losses.task_loss``).
        zero_grad: clear ``.grad`` first, so it holds exactly this micro-batch's ``dw``.

    Returns:
        :class:`TaskLosses`; ``.grad`` holds the gradient summed over the samples (Table 1's dw).
        Parameters of tasks not run keep ``.grad = None``.
    """
    all_specs = model_tasks(model)
    if tasks is not None:
        unknown = [t for t in tasks if t not in all_specs]
        if unknown:
            raise KeyError(f"unknown task(s) {unknown}; the model has {list(all_specs)}")
        all_specs = {n: all_specs[n] for n in tasks}
    batch_size_of(batch)
    specs = labelled_tasks(all_specs.values(), batch)  # lazy evaluation
    names = [s.name for s in specs]
    if zero_grad:
        model.zero_grad(set_to_none=True)
    targets = detection_targets(batch) if any(s.kind == "detection" for s in specs) else None
    out = model(batch["images"], tasks=names, targets=targets)
    total, per_sample = masked_objective(specs, out, batch, loss_fn)
    total.backward()
    return summarize(per_sample, batch, specs, total.detach())
