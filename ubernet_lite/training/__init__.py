"""Training on the union of partially labelled data sets (Sec. 3 of the paper).

* :func:`multitask_backward` -- lazy forward of the labelled tasks, the masked objective
  (Eq. 1-2), backward; ``.grad`` holds the gradient summed over the micro-batch (Table 1's dw).
* :class:`AsyncSGD` -- asynchronous SGD of Table 1 (per-group counters and accumulators).
* :class:`SyncSGD` -- the synchronous baseline, SGD on masked minibatches (Eq. 3-5).
* :class:`Trainer` / :func:`train` -- the training loop with logging, evaluation, checkpoints.
"""

from importlib.util import find_spec

from .async_sgd import AsyncSGD, SyncSGD, partition_parameters, poly_schedule, resolve_batch_sizes
from .objective import (
    BACKWARD_MODES,
    TaskLosses,
    labelled_tasks,
    masked_objective,
    multitask_backward,
    register_backward,
    task_objective,
)
from .trainer import Trainer, train

__all__ = [
    "AsyncSGD",
    "BACKWARD_MODES",
    "SyncSGD",
    "TaskLosses",
    "Trainer",
    "labelled_tasks",
    "masked_objective",
    "multitask_backward",
    "partition_parameters",
    "poly_schedule",
    "register_backward",
    "resolve_batch_sizes",
    "task_objective",
    "train",
]

if find_spec(__name__ + ".memory") is not None:  # owned by the low-memory backward (Sec. 4)
    from .memory import peak_memory  # noqa: F401

    __all__.append("peak_memory")
