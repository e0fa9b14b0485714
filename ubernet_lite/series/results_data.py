"""The test data of notebooks 00 and 10: the synthetic test split, or each task's real test set.

:func:`results_data` gives one of two classes with the same methods: one ``evaluate``, the
samples the trivial baselines are fitted on, the figure images and the captions.

```python
test = results_data("real", image_size=64, eval_images=32, data_root="~/data/ubernet")
rows = test.evaluate(run.model, num_thresholds=99)   # {task: {column: value}}
images = test.images([0, 3, 5])                       # [3, 3, 64, 64] for the figure
```
"""

from __future__ import annotations

import torch
from torch.utils.data import Subset

from ..config import UberNetConfig, make_config
from ..data import SynthWorld
from ..data.real import real_transforms
from ..metrics import evaluate
from ..tasks import SYNTH_CLASSES, VOC_CLASSES
from ..training.real_data import evaluate_test_sets, real_test_subsets, real_training_union


class ResultsData:
    """What notebooks 00 and 10 evaluate on and draw (:class:`SyntheticResults` or
    :class:`RealResults`; build it with :func:`results_data`).

    Attributes:
        data: ``"synthetic"`` or ``"real"``.
        size: the side of the images the network sees: the synthetic images' size, or the shorter
            side real test images are resized to (``ShortestSidePredictor``); figure images are
            ``size x size``.
        cfg: the VOC-class (real) or synthetic config of the series' tasks.
        test: synthetic: the first ``eval_images`` images of the test split (a ``Subset``);
            real: ``{task: the first eval_images images of its test set labelled for it}``.
        class_names: the object classes (figure legends).
        source: ``"synthetic test split"`` or ``"real test sets"``.

    Methods: :meth:`evaluate` (``{task: {column: value}}``), :meth:`baseline_samples` (the
    training samples a :class:`~ubernet_lite.baselines.TrivialBaseline` is fitted on),
    :meth:`sample` / :meth:`images` (figure images), :meth:`describe` / :meth:`caption`.
    """

    data: str
    source: str
    class_names: tuple[str, ...]

    def __init__(self, size: int, cfg: UberNetConfig, test):
        self.size, self.cfg, self.test = int(size), cfg, test

    def images(self, indices) -> torch.Tensor:
        """float [N, 3, size, size]: the images of :meth:`sample` for ``indices``."""
        indices = list(indices)
        if not indices:
            raise ValueError("images: expected at least one index")
        return torch.stack([self.sample(i)["image"] for i in indices])

    @staticmethod
    def _check_images(images: int) -> None:
        if images < 1:
            raise ValueError(f"baseline images must be >= 1, got {images}")


class SyntheticResults(ResultsData):
    """The synthetic world's test split: :attr:`test` its first images, :attr:`world` all of it."""

    data, source, class_names = "synthetic", "synthetic test split", tuple(SYNTH_CLASSES)

    def __init__(self, size: int, cfg: UberNetConfig, test, world):
        super().__init__(size, cfg, test)
        self.world = world

    def evaluate(
        self, model, tasks=None, device: str = "cpu", num_thresholds: int = 99,
        progress: bool = False, workers: int = 1,
    ) -> dict[str, dict[str, float]]:  # fmt: skip
        """``ul.metrics.evaluate`` of ``model`` (or a ``TrivialBaseline``) on :attr:`test`;
        ``tasks`` defaults to the model's tasks; ``workers``: processes for the boundary
        matching (the same numbers as one)."""
        return evaluate(
            model, self.test, tasks=tasks, device=device, num_thresholds=num_thresholds,
            progress=progress, workers=workers,
        )  # fmt: skip

    def baseline_samples(self, images: int):
        """The first ``images`` images of the synthetic train split (all labels), a generator."""
        self._check_images(images)
        train = SynthWorld(split="train", size=self.size, seed=0)
        return (train[i] for i in range(min(images, len(train))))

    def __len__(self) -> int:
        """Images :meth:`sample` picks from: the evaluated test images."""
        return len(self.test)

    def sample(self, index: int) -> dict:
        """Image ``index`` of the test split (also beyond the evaluated ones)."""
        return self.world[index]

    def describe(self) -> str:
        """One line: how many test images, at what size."""
        return f"test images: {len(self.test)} of {len(self.world)}, {self.size} px"

    def caption(self) -> str:
        """Where the numbers come from, for a results table's caption."""
        return f"Synthetic test split, first {len(self.test)} images at {self.size} px"


class RealResults(ResultsData):
    """Each task's own real test set (``training.real_data.real_test_subsets``) under ``root``."""

    data, source, class_names = "real", "real test sets", tuple(VOC_CLASSES)

    def __init__(self, size: int, cfg: UberNetConfig, test: dict, root=None):
        super().__init__(size, cfg, test)
        self.root = root
        self._pool: list[tuple] | None = None

    def evaluate(
        self, model, tasks=None, device: str = "cpu", num_thresholds: int = 99,
        progress: bool = False, workers: int = 1,
    ) -> dict[str, dict[str, float]]:  # fmt: skip
        """Every task on its own test set through ``training.real_data.evaluate_test_sets`` (the
        network sees each image at a shorter side of :attr:`size`; metrics at the image's own
        size). ``tasks`` defaults to the model's tasks; ``workers`` as the synthetic one's."""
        names = list(tasks) if tasks is not None else list(model.cfg.task_names)
        missing = [t for t in names if t not in self.test]
        if missing:
            raise KeyError(f"no real test set for tasks {missing}; this has {list(self.test)}")
        sets = {t: self.test[t] for t in names}
        return evaluate_test_sets(
            model, sets, side=self.size, device=device, num_thresholds=num_thresholds,
            progress=progress, workers=workers,
        )  # fmt: skip

    def baseline_samples(self, images: int):
        """For each task, the first ``images`` samples of the real training union (the
        trainer's, test images left out) that carry it, at their own sizes; a sample drawn for
        some tasks keeps only those tasks in ``has_label``, so that every task's constant sees
        exactly its first ``images`` samples."""
        self._check_images(images)
        return self._baseline_samples(images)

    def _baseline_samples(self, images: int):
        targets = sorted({spec.target for spec in self.cfg.tasks})
        union = real_training_union(set(targets), self.root)
        chosen: dict[int, set[str]] = {}
        for target in targets:
            count = 0
            for i in range(len(union)):
                if count >= images:
                    break
                if union.label_mask(i)[target]:
                    chosen.setdefault(i, set()).add(target)
                    count += 1
        for i in sorted(chosen):
            sample = union[i]
            sample["has_label"] = {
                t: bool(v) and t in chosen[i] for t, v in sample["has_label"].items()
            }
            yield sample

    def _figure_pool(self) -> list[tuple]:
        """``(dataset, index)`` of the test images, the tasks' sets interleaved (the first
        image of each task's set, then the second, ...), each image once."""
        if self._pool is None:
            subsets = list(self.test.values())
            pool, seen = [], set()
            for r in range(max(len(s) for s in subsets)):
                for s in subsets:
                    if r < len(s):
                        key = (id(s.dataset), s.indices[r])
                        if key not in seen:
                            seen.add(key)
                            pool.append((s.dataset, s.indices[r]))
            self._pool = pool
        return self._pool

    def __len__(self) -> int:
        """Images :meth:`sample` picks from: the tasks' test images, each once."""
        return len(self._figure_pool())

    def sample(self, index: int) -> dict:
        """Image ``index`` (modulo their number) of the tasks' test images taken in turn,
        resized to a shorter side of :attr:`size` and centre-cropped (labels with it)."""
        pool = self._figure_pool()
        dataset, i = pool[int(index) % len(pool)]
        return real_transforms(self.size, augment=False)(dataset[i])

    def describe(self) -> str:
        """One line: how many test images of which sets, at what size."""
        parts = [f"{t} {len(s)} ({s.dataset.name} {s.dataset.split})" for t, s in self.test.items()]
        return f"test images: {', '.join(parts)}; shorter side {self.size} px"

    def caption(self) -> str:
        """Where the numbers come from, for a results table's caption."""
        sets = "; ".join(
            f"{t}: {s.dataset.name} {s.dataset.split}, first {len(s)} images"
            for t, s in self.test.items()
        )
        return f"Real test sets ({sets}), images at a shorter side of {self.size} px"


def results_data(
    data: str = "synthetic",
    image_size: int | None = 64,
    eval_images: int | None = None,
    data_root=None,
    preset: str = "lite",
    tasks="all",
) -> ResultsData:
    """The test data of notebooks 00 and 10 (:class:`SyntheticResults` or :class:`RealResults`).

    Args:
        data: ``"synthetic"`` (the synthetic world's test split) or ``"real"`` (each task's test
            set under ``data_root``, ``data.real.TEST_SETS``).
        image_size: the network's input side (None: 128 px for synthetic data, the preset's
            ``input_size`` for real data: 621 for the paper).
        eval_images: the first images evaluated (per task for real data; None: all).
        data_root: the real data sets' root (None: ``$UBERNET_DATA``, else ``~/data/ubernet``).
        preset, tasks: the series' config (its tasks choose the real test sets).

    A missing real set raises ``DatasetNotFoundError`` naming it and its download script.
    """
    if data not in _BUILDERS:
        raise ValueError(f"data must be 'synthetic' or 'real', got {data!r}")
    if eval_images is not None and eval_images < 1:
        raise ValueError(f"eval_images must be >= 1 or None, got {eval_images}")
    cfg = make_config(preset, tasks=tasks, data=data)
    return _BUILDERS[data](cfg, image_size, eval_images, data_root)


def _synthetic(cfg, image_size, eval_images, data_root) -> SyntheticResults:
    size = image_size or 128
    world = SynthWorld(split="test", size=size, seed=0)
    n = len(world) if eval_images is None else min(eval_images, len(world))
    test = world if eval_images is None else Subset(world, range(n))
    return SyntheticResults(size, cfg, test, world)


def _real(cfg, image_size, eval_images, data_root) -> RealResults:
    size = image_size or cfg.input_size
    test = real_test_subsets(cfg, cfg.task_names, data_root, eval_images)
    return RealResults(size, cfg, test, root=data_root)


_BUILDERS = {"synthetic": _synthetic, "real": _real}
