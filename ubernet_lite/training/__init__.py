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
"""

from .async_sgd import AsyncSGD, SyncSGD, partition_parameters, poly_schedule, resolve_batch_sizes
from .backward import BACKWARD_MODES, multitask_backward, register_backward
from .memory import peak_memory
from .objective import TaskLosses, labelled_tasks, masked_objective, task_objective
from .real_data import ShortestSidePredictor, evaluate_test_sets, real_test_subsets
from .trainer import Trainer, train

__all__ = [
    "AsyncSGD",
    "BACKWARD_MODES",
    "SyncSGD",
    "ShortestSidePredictor",
    "TaskLosses",
    "Trainer",
    "evaluate_test_sets",
    "labelled_tasks",
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
]
