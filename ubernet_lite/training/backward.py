"""``multitask_backward``: one training step's forward + backward, in one of the memory modes.

The one registry of modes, :data:`BACKWARD_MODES` (mode -> ``fn(model, batch, **kw) ->
TaskLosses``), serves the trainer (``TrainSettings.memory``), the CLI and the memory benchmark:

| mode           | function                                   | memory of one step (Sec. 4)        |
| -------------- | ------------------------------------------ | ---------------------------------- |
| ``standard``   | :func:`.objective.standard_backward`       | ``2N(L_C + T L_T)`` (Fig. 3)       |
| ``checkpoint`` | :func:`.lowmem.multitask_backward_checkpoint` | plain activation checkpointing  |
| ``low``        | :func:`.lowmem.multitask_backward_lowmem`  | ``2 sqrt(L_C) + L_T`` (Fig. 4)     |

Other modes can be added with :func:`register_backward`.
"""

from __future__ import annotations

from collections.abc import Callable

from .lowmem import multitask_backward_checkpoint, multitask_backward_lowmem
from .objective import TaskLosses, standard_backward

#: ``memory`` mode -> backward function ``fn(model, batch, **kw) -> TaskLosses``.
BACKWARD_MODES: dict[str, Callable[..., TaskLosses]] = {
    "standard": standard_backward,
    "checkpoint": multitask_backward_checkpoint,
    "low": multitask_backward_lowmem,
}


def register_backward(mode: str, fn: Callable[..., TaskLosses]) -> None:
    """Add (or replace) a ``memory`` mode of :func:`multitask_backward`."""
    BACKWARD_MODES[mode] = fn


def get_backward(mode: str) -> Callable[..., TaskLosses]:
    """The backward function of a ``memory`` mode, with a clear error for unknown modes."""
    if mode not in BACKWARD_MODES:
        raise ValueError(f"unknown memory mode {mode!r}; expected one of {sorted(BACKWARD_MODES)}")
    return BACKWARD_MODES[mode]


def multitask_backward(model, batch: dict, memory: str = "standard", **kwargs) -> TaskLosses:
    """Forward the labelled tasks, the masked objective (Eq. 1-2), backward.

    Args:
        model: an ``UberNet`` (train mode).
        batch: a collated micro-batch (``ubernet_lite.data.collate``) on the model's device.
        memory: ``"standard"`` (plain autograd), ``"checkpoint"`` (plain activation
            checkpointing) or ``"low"`` (Sec. 4's low-memory backward), or any mode of
            :data:`BACKWARD_MODES`.
        **kwargs: passed to the mode's function (``tasks=``, ``loss_fn=``, ``zero_grad=``).

    Returns:
        :class:`~.objective.TaskLosses` ``{task: mean loss over its labelled samples}`` with
        ``.total``, ``.counts``; ``.grad`` holds the gradient summed over the micro-batch's
        samples (Table 1's ``dw``), which :class:`~ubernet_lite.training.AsyncSGD` consumes.
    """
    return get_backward(memory)(model, batch, **kwargs)
