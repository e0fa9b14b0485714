"""What defines a training run besides the network's config: :class:`TrainSettings`.

A checkpoint stores these settings, and a resume compares them (see :mod:`.checkpoint`).
"""

from __future__ import annotations

import dataclasses
import math

from ..data.synthetic.views import union_table
from .init import INITS, TRUNK_FILE

#: The training data choices of :class:`TrainSettings` (see :mod:`.data_source`).
DATA_CHOICES = ("synthetic", "real")
#: Settings that say where data are, not what the run does: not compared when loading.
LOCATION_SETTINGS = ("data_root",)


@dataclasses.dataclass
class TrainSettings:
    """Everything besides the network's config that shapes a training run's trajectory.

    Attributes:
        tasks: task names to train (``"all"`` = every task of the config).
        micro_batch: samples per forward/backward (the memory knob; async SGD decouples it from
            the effective batch sizes B_p).
        optimizer: ``"async"`` (Table 1) or ``"sync"`` (Eq. 3-5).
        lr, momentum, weight_decay: SGD's epsilon, momentum, lambda.
        batch_sizes: B_p overrides for async SGD (``{"shared": 30, "detection": 2, ...}``).
        schedule: ``"poly"`` (DeepLab's poly decay over the run's samples) or ``"constant"``.
        memory: ``multitask_backward``'s mode (``"standard"`` or ``"low"``).
        image_size: training crop side (default ``cfg.input_size``).
        union_length: images in the synthetic union (unused with real data).
        union: the synthetic union's table, a name of
            :data:`ubernet_lite.data.synthetic.views.UNION_TABLES` (``"default"``: the slides'
            table; ``"course"``: the course scale's views and shares).
        augment: random scale, crop, flip and colour jitter.
        seed: the one seed of the run (model init, data, augmentation, dropout).
        data: ``"synthetic"`` (the synthetic union) or ``"real"`` (the paper's real data sets).
        data_root: the real data sets' root (None: ``$UBERNET_DATA``, else ``~/data/ubernet``).
            A location, not a property of the run: checkpoints compare equal across roots, and
            ``Trainer.resume(path, data_root=...)`` may move it.
        init: the trunk's initialisation, ``"random"``, ``"imagenet"`` (VGG-16 from
            torchvision's cache, Sec. 3; full-width trunks only: the paper preset) or
            ``"trunk:<path>"`` (a trunk state dict saved with ``torch.save``: the series' shared
            pretrained trunk, ``series.resolve_init``).
    """

    tasks: list[str] | str = "all"
    micro_batch: int = 2
    optimizer: str = "async"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_sizes: dict | None = None
    schedule: str = "poly"
    memory: str = "standard"
    image_size: int | None = None
    union_length: int = 1000
    union: str = "default"
    augment: bool = True
    seed: int = 0
    data: str = "synthetic"
    data_root: str | None = None
    init: str = "random"

    @classmethod
    def from_kwargs(cls, settings: dict) -> TrainSettings:
        """``TrainSettings(**settings)``, checked, with a clear error for an unknown name."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(settings) - set(names))
        if unknown:
            raise TypeError(
                f"unknown training setting(s) {unknown}; expected fields of TrainSettings: {names}"
            )
        s = cls(**settings)
        s.check()
        return s

    def check(self) -> None:
        if self.data not in DATA_CHOICES:
            raise ValueError(f"data must be one of {DATA_CHOICES}, got {self.data!r}")
        if self.init not in INITS and not str(self.init).startswith(TRUNK_FILE):
            raise ValueError(
                f"init must be one of {INITS} or '{TRUNK_FILE}<path>', got {self.init!r}"
            )
        if self.optimizer not in ("async", "sync"):
            raise ValueError(f"optimizer must be 'async' or 'sync', got {self.optimizer!r}")
        if self.schedule not in ("poly", "constant"):
            raise ValueError(f"schedule must be 'poly' or 'constant', got {self.schedule!r}")
        if self.micro_batch < 1:
            raise ValueError(f"micro_batch must be >= 1, got {self.micro_batch}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not (math.isfinite(self.momentum) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if self.image_size is not None and (
            isinstance(self.image_size, bool)
            or not isinstance(self.image_size, int)
            or self.image_size < 1
        ):
            raise ValueError(
                f"image_size must be a positive integer (or None: the config's), got "
                f"{self.image_size!r}"
            )
        union_table(self.union)  # a name of UNION_TABLES (ValueError naming them)
        if self.union_length < 1:
            raise ValueError(f"union_length must be >= 1, got {self.union_length}")
