"""Seconds per training step (micro-batch 4, one thread, course union) of the seven-task network
and of each single-task network, as used for the course budget (docs/course_recipe.md).

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python experiments/step_costs.py 96
"""

import sys
import time

import torch

from ubernet_lite.config import make_config
from ubernet_lite.series.runs import short_run_batch_sizes
from ubernet_lite.training import Trainer

torch.set_num_threads(1)
size = int(sys.argv[1]) if len(sys.argv) > 1 else 96
tasks = sys.argv[2].split(";") if len(sys.argv) > 2 else ["all", *make_config("lite").task_names]
for task in tasks:
    cfg = make_config("lite", tasks=task)
    tr = Trainer(
        cfg, out=None, steps=1000, progress=False, micro_batch=4, image_size=size,
        union="course", batch_sizes=short_run_batch_sizes(cfg, 4),
    )  # fmt: skip
    for _ in range(3):
        tr.train_step()
    n, t = 12, time.perf_counter()
    for _ in range(n):
        tr.train_step()
    print(f"{size} px {task:20s} {(time.perf_counter() - t) / n:.3f} s/step", flush=True)
    tr.close()
