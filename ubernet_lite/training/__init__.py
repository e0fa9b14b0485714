"""Training on the union of partially labelled data sets (Sec. 3 of the paper).

* :func:`multitask_backward` -- lazy forward of the labelled tasks, the masked objective
  (Eq. 1-2), backward; ``.grad`` holds the gradient summed over the micro-batch (Table 1's dw).
* :class:`AsyncSGD` -- asynchronous SGD of Table 1 (per-group counters and accumulators).
* :class:`SyncSGD` -- the synchronous baseline, SGD on masked minibatches (Eq. 3-5).
* :class:`Trainer` / :func:`train` -- the training loop with logging, evaluation, checkpoints
  (``trainer.py``; its settings, data source, micro-batch stream and checkpoint format in
  ``settings.py``, ``data_source.py``, ``stream.py``, ``checkpoint.py``).
* :func:`peak_memory` and the low-memory backward of Sec. 4 (``multitask_backward(memory="low")``).
* ``real_data`` -- the paper's real data sets: union, test sets, evaluation at the images' size.
* ``attentive`` -- attentive single-tasking: :func:`attentive_backward` (one pass per labelled
  task, the discriminator's reversed gradient), :func:`train_attentive`.
"""

from .async_sgd import AsyncSGD, SyncSGD, partition_parameters, poly_schedule, resolve_batch_sizes
from .attentive import (
    AttentiveHistory,
    AttentiveLosses,
    attentive_backward,
    collect_task_gradients,
    discriminated_tasks,
    discriminator_accuracy,
    evaluate_discriminator,
    make_discriminator,
    train_attentive,
)
from .backward import BACKWARD_MODES, multitask_backward, register_backward
from .memory import peak_memory
from .objective import TaskLosses, labelled_tasks, masked_objective, task_objective
from .real_data import ShortestSidePredictor, evaluate_test_sets, real_test_subsets
from .trainer import Trainer, train

__all__ = [
    "AsyncSGD",
    "AttentiveHistory",
    "AttentiveLosses",
    "BACKWARD_MODES",
    "SyncSGD",
    "ShortestSidePredictor",
    "TaskLosses",
    "Trainer",
    "attentive_backward",
    "collect_task_gradients",
    "discriminated_tasks",
    "discriminator_accuracy",
    "evaluate_discriminator",
    "evaluate_test_sets",
    "labelled_tasks",
    "make_discriminator",
    "masked_objective",
    "multitask_backward",
    "partition_parameters",
    "peak_memory",
    "poly_schedule",
    "real_test_subsets",
    "register_backward",
    "resolve_batch_sizes",
    "task_objective",
    "train",
    "train_attentive",
]
