"""ubernet_lite: an educational reproduction of UberNet (Kokkinos, CVPR 2017)."""

from . import paths, tasks
from .config import UberNetConfig
from .tasks import TASKS, TaskSpec

__version__ = "0.1.0"

__all__ = ["UberNetConfig", "TaskSpec", "TASKS", "tasks", "paths", "__version__"]
