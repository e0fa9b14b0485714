"""Where a training run's data come from: the synthetic union or the paper's real data sets.

:func:`training_data` builds one of two sources from the run's settings (``settings.data``); the
trainer uses only what both have:

* ``union`` -- the union of partially labelled data sets (``label_mask(i)``, ``sampler(seed)``);
* ``dataset`` -- the union as training sees it (augmented, seeded per ``(seed, epoch, index)``);
* ``val_dataset(images)`` -- what :meth:`evaluate` takes;
* ``evaluate(model, val, device, num_thresholds)`` -- ``{task: {metric: value}}``.

| data      | union                                      | evaluation                            |
| --------- | ------------------------------------------ | ------------------------------------- |
| synthetic | ``data.diverse_union`` over SynthWorld     | the first images of SynthWorld's val  |
| real      | ``real_data.real_training_union`` (test    | each task on its own test set, at the |
|           | images left out)                           | images' own size                      |
"""

from __future__ import annotations

from torch.utils.data import Subset

from ..config import UberNetConfig
from ..data import SynthWorld, TransformedDataset, diverse_union, train_transforms
from ..data.real import real_transforms
from ..data.synthetic.views import union_table
from ..metrics import evaluate
from .real_data import check_real_config, evaluate_test_sets, real_test_subsets, real_training_union
from .settings import TrainSettings


class DataSource:
    """The data of one run, opened from its settings ``s`` for the trained ``tasks`` at crop side
    ``size``: :attr:`union` and :attr:`dataset` (see the module docstring)."""

    def __init__(
        self,
        cfg: UberNetConfig,
        tasks: list[str],
        s: TrainSettings,
        size: int,
        world=None,
        eval_images: int = 0,
    ):
        self.cfg, self.tasks, self.settings, self.size = cfg, tasks, s, size
        self.union, self.dataset = self.open(world, eval_images)

    def open(self, world, eval_images: int) -> tuple:
        """``(union, training dataset)``."""
        raise NotImplementedError

    def val_dataset(self, images: int):
        raise NotImplementedError

    def evaluate(self, model, val, device, num_thresholds: int) -> dict:
        """``{task: {metric: value}}`` of ``model`` on ``val`` (:meth:`val_dataset`)."""
        raise NotImplementedError


class SyntheticData(DataSource):
    """The synthetic union (``world`` replaces SynthWorld: tests pass stand-ins), augmented with
    random scale, crop, flip and colour jitter; evaluated on SynthWorld's val split."""

    def open(self, world, eval_images: int) -> tuple:
        s, size = self.settings, self.size
        self.world = world
        union = diverse_union(
            split="train", size=size, seed=s.seed, length=s.union_length, world=world,
            table=union_table(s.union),
        )  # fmt: skip
        if not s.augment:
            return union, union
        return union, TransformedDataset(union, train_transforms(size=size), seed=s.seed)

    def val_dataset(self, images: int):
        """The first ``images`` images of the synthetic val split."""
        seed = self.settings.seed
        if self.world is not None:
            world = self.world(split="val", size=self.size, seed=seed, style="scene")
        else:
            world = SynthWorld(split="val", size=self.size, seed=seed)
        return Subset(world, range(min(images, len(world))))

    def evaluate(self, model, val, device, num_thresholds: int) -> dict:
        return evaluate(
            model, val, tasks=self.tasks, device=device, num_thresholds=num_thresholds,
            progress=False,
        )  # fmt: skip


class RealData(DataSource):
    """The paper's real data sets under ``s.data_root``: the union of the members that carry a
    trained task, resized to a shorter side of ``size`` then scaled, cropped / padded and flipped
    (``data.real.real_transforms``); each task evaluated on its own test set.

    The data sets are opened (file lists only) here, before the model is built: a missing one
    raises ``DatasetNotFoundError`` at once; with ``eval_images`` the test sets must be there too.
    """

    def open(self, world, eval_images: int) -> tuple:
        if world is not None:
            raise ValueError(
                "world= replaces the synthetic world; it cannot be combined with data='real'"
            )
        cfg, s = self.cfg, self.settings
        check_real_config(cfg)
        union = real_training_union({cfg.task(t).target for t in self.tasks}, s.data_root)
        self._val = None
        if eval_images:
            self._val = real_test_subsets(cfg, self.tasks, s.data_root, eval_images)
        return union, TransformedDataset(
            union, real_transforms(self.size, augment=s.augment), seed=s.seed
        )

    def val_dataset(self, images: int) -> dict:
        """``{task: the first images of its test set labelled for it}``."""
        if self._val is None:
            self._val = real_test_subsets(self.cfg, self.tasks, self.settings.data_root, images)
        return self._val

    def evaluate(self, model, val, device, num_thresholds: int) -> dict:
        return evaluate_test_sets(
            model, val, side=self.size, device=device, num_thresholds=num_thresholds
        )


#: ``TrainSettings.data`` -> its source (the keys are :data:`~.settings.DATA_CHOICES`).
SOURCES = {"synthetic": SyntheticData, "real": RealData}


def training_data(cfg: UberNetConfig, tasks: list[str], s: TrainSettings, size: int, world=None,
                  eval_images: int = 0) -> DataSource:  # fmt: skip
    """The :class:`DataSource` of ``s.data`` (a key of :data:`SOURCES`)."""
    return SOURCES[s.data](cfg, tasks, s, size, world=world, eval_images=eval_images)
