"""ubernet_lite: an educational reproduction of UberNet (Kokkinos, CVPR 2017).

```python
import ubernet_lite as ul
cfg   = ul.UberNetConfig.lite()                    # .paper() for the paper's setting
model = ul.UberNet(cfg)
out   = model(images)                              # {task name: prediction}
world = ul.data.SynthWorld(split="train", size=128, seed=0)
union = ul.data.diverse_union(split="train", size=128)
batch = ul.data.collate([union[i] for i in range(4)])
losses = ul.training.multitask_backward(model, batch, memory="low")
opt   = ul.training.AsyncSGD(model, lr=0.01)
opt.step(batch)
rows  = ul.metrics.evaluate(model, world, tasks=["semantic", "boundaries"])
```
"""

from . import (
    baselines,
    data,
    losses,
    metrics,
    model,
    paths,
    results,
    series,
    tasks,
    training,
    viz,
)
from .config import UberNetConfig
from .model import UberNet
from .tasks import TASKS, TaskSpec

__version__ = "0.1.0"

__all__ = [
    "TASKS",
    "TaskSpec",
    "UberNet",
    "UberNetConfig",
    "baselines",
    "data",
    "losses",
    "metrics",
    "model",
    "paths",
    "results",
    "series",
    "tasks",
    "training",
    "viz",
    "__version__",
]
