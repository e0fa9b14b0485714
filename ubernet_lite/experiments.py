"""Training runs that a notebook launches once and reuses: cached under ``outputs/runs/<name>``.

A run is cached with its checkpoint; :func:`cached_run` rebuilds the :class:`Trainer` with the same
config and settings and loads it, so a second execution of a notebook (or a later notebook of the
series asking for the same run) costs a checkpoint read instead of a training run. A checkpoint
written with another config, other settings or another number of steps is never reused: the run
is trained again.

```python
cfg = make_config("lite", tasks="all")
run = cached_run("seven_task", cfg, steps=600, micro_batch=2, image_size=64,
                 batch_sizes=short_run_batch_sizes(cfg))
run.model, run.history, run.cached
```

What the runs are evaluated on (notebooks 00 and 10): :func:`results_data` gives the synthetic test
split, or with ``data="real"`` each task's own real test set, with one ``evaluate``, the samples the
trivial baselines are fitted on and the figure images:

```python
test = results_data("real", image_size=64, eval_images=32, data_root="~/data/ubernet")
rows = test.evaluate(run.model, num_thresholds=99)   # {task: {column: value}}
images = test.images([0, 3, 5])                       # [3, 3, 64, 64] for the figure
```
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from .config import UberNetConfig
from .paths import outputs_dir
from .tasks import TASKS, VOC_CLASSES, VOC_TASKS, get_tasks
from .training.checkpoint import CHECKPOINT, load_checkpoint
from .training.trainer import Trainer

__all__ = [
    "ResultsData",
    "cached_run",
    "make_config",
    "results_data",
    "run_dir",
    "series_dir_name",
    "series_run",
    "short_run_batch_sizes",
    "single_run_name",
    "train_runs",
]


def run_dir(name: str) -> Path:
    """``outputs/runs/<name>`` (created on demand)."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"run name must be a plain folder name, got {name!r}")
    return outputs_dir("runs", name)


def make_config(
    preset: str = "lite", tasks="all", data: str = "synthetic", gammas: dict | None = None
) -> UberNetConfig:
    """The network config of a run: ``preset`` ("lite" | "paper"), a task subset, data's label space.

    Args:
        preset: ``"lite"`` (CPU, narrow widths) or ``"paper"`` (VGG-16, shortest side 621).
        tasks: task names (``"all"``, a comma-separated string or a list).
        data: ``"synthetic"`` (6 classes) or ``"real"`` (PASCAL VOC's 20 classes).
        gammas: per-task loss weights gamma_t of Eq. 1, e.g. ``{"normals": 5.0}`` (Table 9).
    """
    if preset not in ("lite", "paper"):
        raise ValueError(f"preset must be 'lite' or 'paper', got {preset!r}")
    if data not in ("synthetic", "real"):
        raise ValueError(f"data must be 'synthetic' or 'real', got {data!r}")
    registry = VOC_TASKS if data == "real" else TASKS
    specs = get_tasks(tasks, registry)
    for name in gammas or {}:
        if name not in [s.name for s in specs]:
            raise KeyError(f"gammas names task {name!r}, not among {[s.name for s in specs]}")
    specs = [
        s.replace(gamma=float(gammas[s.name])) if s.name in (gammas or {}) else s for s in specs
    ]
    extra = {"num_classes": len(VOC_CLASSES)} if data == "real" else {}
    factory = UberNetConfig.lite if preset == "lite" else UberNetConfig.paper
    return factory(tasks=specs, **extra)


def short_run_batch_sizes(cfg: UberNetConfig, size: int = 2) -> dict[str, int]:
    """Effective batch sizes B_p for short CPU runs: ``size`` for the trunk and every task, 1 for
    detection.

    The paper's B_p (30 for the trunk, 10 per task, 2 for detection; Sec. 3) give a run of a few
    hundred micro-batches only a dozen trunk updates; a short run updates after every ``size``
    samples instead. Keys are only the config's tasks (AsyncSGD rejects unknown groups).
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    out = {"shared": int(size)}
    out.update({t.name: (1 if t.kind == "detection" else int(size)) for t in cfg.tasks})
    return out


def _cached_steps(ckpt: Path) -> int | None:
    try:
        return int(load_checkpoint(ckpt)["steps"])
    except (ValueError, KeyError, RuntimeError, OSError):
        return None


def cached_run(
    name: str,
    cfg: UberNetConfig,
    steps: int,
    retrain: bool = False,
    verbose: bool = True,
    on_chunk: Callable[[Trainer], None] | None = None,
    chunk: int = 25,
    train: bool = True,
    **kwargs,
) -> Trainer | None:
    """Train ``cfg`` for ``steps`` micro-batches, or load the identical run cached under ``name``.

    Args:
        name: the run's folder under ``outputs/runs``.
        cfg: the network's config (tasks and gammas included: they are part of the cache key).
        steps: micro-batches of the run.
        retrain: ignore (and delete) a cached run.
        verbose: print whether the run was loaded or trained.
        on_chunk: called as ``on_chunk(trainer)`` every ``chunk`` steps and at the end of
            training (e.g. to redraw a live loss plot); the checkpoint is also written then, so
            an interrupted run continues from its last chunk.
        chunk: steps between ``on_chunk`` calls.
        train: ``False`` only looks the run up: returns None where it would have to train.
        **kwargs: go to :class:`~ubernet_lite.training.Trainer` (``tasks``, ``micro_batch``,
            ``lr``, ``batch_sizes``, ``image_size``, ``memory``, ``optimizer``, ``device``,
            ``progress``, ``eval_images``, ``data``, ``data_root`` ...).

    Returns:
        the trainer in eval mode (``trainer.model``, ``trainer.history``); ``trainer.cached``
        says whether the run was loaded rather than trained.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    out = run_dir(name)
    ckpt = out / CHECKPOINT
    trainer = Trainer(cfg, out=out, steps=steps, **kwargs)
    if retrain and out.exists():
        shutil.rmtree(out)
        out.mkdir(parents=True)
    elif ckpt.is_file():
        cached_steps = _cached_steps(ckpt)
        try:
            if cached_steps != int(steps):
                raise ValueError(f"it ran for {cached_steps} steps, not {steps}")
            trainer.load(ckpt)
        except ValueError as err:  # another config, settings or length: train again
            if verbose and train:
                print(f"[{name}] cached run differs ({err}); training again")
            trainer = Trainer(cfg, out=out, steps=steps, **kwargs)
        else:
            if trainer.step >= steps:
                trainer.cached = True
                if verbose:
                    print(f"[{name}] loaded the cached run ({trainer.step} steps) from {ckpt}")
                trainer.model.eval()
                return trainer
            if verbose and train:
                print(f"[{name}] continuing the cached run from step {trainer.step}")
    if not train:
        trainer.close()
        return None
    if on_chunk is None:
        trainer.run()
    else:
        _run_in_chunks(trainer, steps, on_chunk, chunk)
    trainer.cached = False
    trainer.model.eval()
    return trainer


def _run_in_chunks(trainer: Trainer, steps: int, on_chunk, chunk: int) -> None:
    """``trainer.run()`` with one progress bar and ``on_chunk(trainer)`` every ``chunk`` steps."""
    from .progress import progress_bar

    bar = progress_bar(total=steps, initial=trainer.step, desc="train", enabled=trainer.progress)
    try:
        while trainer.step < steps:
            row = trainer.train_step()
            bar.update(1)
            bar.set_postfix(loss=f"{row['total']:.3g}")
            if trainer.step % chunk == 0 or trainer.step == steps:
                if trainer.out is not None:
                    trainer.save()
                on_chunk(trainer)
    finally:
        bar.close()
    progress, trainer.progress = trainer.progress, False
    try:
        trainer.run()  # nothing left to train: stops the prefetcher, evaluates, saves, logs
    finally:
        trainer.progress = progress


def series_run(
    name: str,
    preset: str = "lite",
    data: str = "synthetic",
    tasks="all",
    gammas: dict | None = None,
    steps: int = 600,
    image_size: int | None = 64,
    micro_batch: int = 2,
    memory: str = "standard",
    optimizer: str = "async",
    device: str = "cpu",
    lr: float = 0.01,
    short_batches: int | None = 2,
    **kwargs,
) -> Trainer:
    """The runs of notebooks 00, 09 and 10, one definition so that they share one cache.

    The defaults are the quick CPU run (64 px, 600 micro-batches of 2, B_p = 2 via
    :func:`short_run_batch_sizes`); ``preset="paper", image_size=None, short_batches=None``
    with more ``steps`` is the paper's setting (the paper's B_p, input size 621).
    ``data="real"`` trains on the paper's real data sets (a VOC-class config, 20 classes) under
    ``data_root=...`` (a keyword going to the Trainer; default ``$UBERNET_DATA`` or
    ``~/data/ubernet``); a missing set raises ``DatasetNotFoundError`` naming it and its
    ``data_scripts/download_<set>.py``. A cached run of other data is never reused (``data`` is
    one of the settings the cache compares; the data root is not).

    The run lives in ``outputs/runs/<name>`` for the default preset and data (lite, synthetic)
    and in ``outputs/runs/<name>-<preset>-<data>`` otherwise (:func:`series_dir_name`), so that a
    paper-scale or real-data series never overwrites the quick synthetic runs' cache.
    """
    if data not in ("synthetic", "real"):
        raise ValueError(f"data must be 'synthetic' or 'real', got {data!r}")
    kwargs["data"] = data
    cfg = make_config(preset, tasks=tasks, data=data, gammas=gammas)
    if short_batches:
        kwargs.setdefault("batch_sizes", short_run_batch_sizes(cfg, short_batches))
    return cached_run(
        series_dir_name(name, preset, data),
        cfg,
        steps=steps,
        image_size=image_size,
        micro_batch=micro_batch,
        memory=memory,
        optimizer=optimizer,
        device=device,
        lr=lr,
        **kwargs,
    )


def series_dir_name(name: str, preset: str = "lite", data: str = "synthetic") -> str:
    """The cache folder name of :func:`series_run`'s run ``name``: ``name`` itself for the lite
    preset on synthetic data, else ``f"{name}-{preset}-{data}"``."""
    return name if (preset, data) == ("lite", "synthetic") else f"{name}-{preset}-{data}"


def _train_worker(job: tuple[str, dict, int]) -> str:
    """Train one :func:`series_run` in a worker process (``threads`` torch threads)."""
    import torch

    name, kwargs, threads = job
    torch.set_num_threads(threads)
    series_run(name, **{**kwargs, "verbose": False, "progress": False})
    return name


def train_runs(runs: dict[str, dict], workers: int = 2, threads: int = 1) -> list[str]:
    """Train the :func:`series_run` runs ``{name: kwargs}`` that are not cached yet, ``workers``
    at a time in subprocesses (one torch thread each by default).

    Small networks use a CPU core far better in separate processes than through intra-op threads,
    so on a 2-core machine two runs at a time take about half the wall time of one after another.
    Afterwards ``series_run(name, **kwargs)`` loads each run from the cache. Returns the names of
    the runs that were trained.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    import torch

    from .progress import progress_bar

    todo = [
        n
        for n, kw in runs.items()
        if series_run(n, **{**kw, "train": False, "verbose": False}) is None
    ]
    if not todo:
        return []
    jobs = [(n, runs[n], threads) for n in todo]
    bar = progress_bar(total=len(jobs), desc="training runs", unit="run")
    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            bar.set_postfix(run=job[0])
            _train_worker((job[0], job[1], torch.get_num_threads()))
            bar.update(1)
    else:
        ctx = get_context("spawn")  # a fresh interpreter: no forked OpenMP or kernel state
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx) as pool:
            for name in pool.map(_train_worker, jobs):
                bar.set_postfix(run=name)
                bar.update(1)
    bar.close()
    return todo


# --------------------------------------------------------------------------------------------
# The test data of notebooks 00 and 10: the synthetic test split or the real test sets
# --------------------------------------------------------------------------------------------


def single_run_name(run_name: str, task: str, data: str = "synthetic") -> str:
    """The cache name of notebook 10's single-task run of ``task`` beside the run ``run_name``.

    The default synthetic run (``"seven_task"``) keeps the historical names ``single_<task>``;
    any other run name or real data get ``<run_name>_single_<task>``, so that a real or
    differently named series never overwrites the synthetic single-task caches.
    """
    if run_name == "seven_task" and data == "synthetic":
        return f"single_{task}"
    return f"{run_name}_single_{task}"


class ResultsData:
    """What notebooks 00 and 10 evaluate on and draw: the synthetic test split, or each task's
    real test set (``data="real"``, ``training.real_data.real_test_subsets``).

    Build it with :func:`results_data`. Attributes:
        data: ``"synthetic"`` or ``"real"``.
        size: the side of the images the network sees: the synthetic images' size, or the shorter
            side real test images are resized to (``ShortestSidePredictor``); figure images are
            ``size x size``.
        cfg: the VOC-class (real) or synthetic config of the series' tasks.
        test: synthetic: the first ``eval_images`` images of the test split (a ``Subset``);
            real: ``{task: the first eval_images images of its test set labelled for it}``.
        world: the whole synthetic test split (None with real data).
        class_names: the object classes (figure legends).

    Methods: :meth:`evaluate` (``{task: {column: value}}``), :meth:`baseline_samples` (the
    training samples a :class:`~ubernet_lite.baselines.TrivialBaseline` is fitted on),
    :meth:`sample` / :meth:`images` (figure images), :meth:`describe` / :meth:`caption`.
    """

    def __init__(self, data, size, cfg, test, world=None, root=None, class_names=()):
        self.data, self.size, self.cfg, self.test = data, int(size), cfg, test
        self.world, self.root, self.class_names = world, root, tuple(class_names)
        self._pool: list[tuple] | None = None

    # ---- evaluation ----------------------------------------------------------------------

    def evaluate(
        self,
        model,
        tasks=None,
        device: str = "cpu",
        num_thresholds: int = 99,
        progress: bool = False,
    ) -> dict[str, dict[str, float]]:
        """``{task: {column: value}}`` of ``model`` (or a ``TrivialBaseline``) on the test data.

        Synthetic: ``ul.metrics.evaluate`` on :attr:`test`. Real: every task on its own test set
        through ``training.real_data.evaluate_test_sets`` (the network sees each image at a
        shorter side of :attr:`size`; metrics at the image's own size). ``tasks`` defaults to
        the model's tasks.
        """
        if self.data == "synthetic":
            from .metrics import evaluate

            return evaluate(
                model,
                self.test,
                tasks=tasks,
                device=device,
                num_thresholds=num_thresholds,
                progress=progress,
            )
        from .training.real_data import evaluate_test_sets

        names = list(tasks) if tasks is not None else list(model.cfg.task_names)
        missing = [t for t in names if t not in self.test]
        if missing:
            raise KeyError(f"no real test set for tasks {missing}; this has {list(self.test)}")
        sets = {t: self.test[t] for t in names}
        return evaluate_test_sets(
            model,
            sets,
            side=self.size,
            device=device,
            num_thresholds=num_thresholds,
            progress=progress,
        )

    def baseline_samples(self, images: int):
        """The training samples the trivial constants are fitted on (a generator of samples).

        Synthetic: the first ``images`` images of the synthetic train split (all labels).
        Real: for each task, the first ``images`` samples of the real training union (the
        trainer's, test images left out) that carry it, at their own sizes; a sample drawn for
        some tasks keeps only those tasks in ``has_label``, so that every task's constant sees
        exactly its first ``images`` samples.
        """
        if images < 1:
            raise ValueError(f"baseline images must be >= 1, got {images}")
        if self.data == "synthetic":
            from .data import SynthWorld

            train = SynthWorld(split="train", size=self.size, seed=0)
            return (train[i] for i in range(min(images, len(train))))
        return self._real_baseline_samples(images)

    def _real_baseline_samples(self, images: int):
        from .training.real_data import real_training_union

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

    # ---- figure images ---------------------------------------------------------------------

    def _figure_pool(self) -> list[tuple]:
        """Real: ``(dataset, index)`` of the test images, the tasks' sets interleaved (the first
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
        """Images :meth:`sample` picks from (synthetic: the evaluated test images)."""
        return len(self.test) if self.data == "synthetic" else len(self._figure_pool())

    def sample(self, index: int) -> dict:
        """A test sample for a figure, ``size x size``: synthetic, image ``index`` of the test
        split; real, image ``index`` (modulo their number) of the tasks' test images taken in
        turn, resized to a shorter side of ``size`` and centre-cropped (labels with it)."""
        if self.data == "synthetic":
            return self.world[index]
        from .data.real import real_transforms

        pool = self._figure_pool()
        dataset, i = pool[int(index) % len(pool)]
        return real_transforms(self.size, augment=False)(dataset[i])

    def images(self, indices) -> torch.Tensor:
        """float [N, 3, size, size]: the images of :meth:`sample` for ``indices``."""
        indices = list(indices)
        if not indices:
            raise ValueError("images: expected at least one index")
        return torch.stack([self.sample(i)["image"] for i in indices])

    # ---- text ----------------------------------------------------------------------------

    def describe(self) -> str:
        """One line: how many test images, at what size."""
        if self.data == "synthetic":
            return f"test images: {len(self.test)} of {len(self.world)}, {self.size} px"
        parts = [f"{t} {len(s)} ({s.dataset.name} {s.dataset.split})" for t, s in self.test.items()]
        return f"test images: {', '.join(parts)}; shorter side {self.size} px"

    def caption(self) -> str:
        """Where the numbers come from, for a results table's caption."""
        if self.data == "synthetic":
            return f"Synthetic test split, first {len(self.test)} images at {self.size} px"
        sets = "; ".join(
            f"{t}: {s.dataset.name} {s.dataset.split}, first {len(s)} images"
            for t, s in self.test.items()
        )
        return f"Real test sets ({sets}), images at a shorter side of {self.size} px"

    @property
    def source(self) -> str:
        """``"synthetic test split"`` or ``"real test sets"``."""
        return "synthetic test split" if self.data == "synthetic" else "real test sets"


def results_data(
    data: str = "synthetic",
    image_size: int | None = 64,
    eval_images: int | None = None,
    data_root=None,
    preset: str = "lite",
    tasks="all",
) -> ResultsData:
    """The test data of notebooks 00 and 10 (:class:`ResultsData`).

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
    from .tasks import SYNTH_CLASSES

    if data not in ("synthetic", "real"):
        raise ValueError(f"data must be 'synthetic' or 'real', got {data!r}")
    if eval_images is not None and eval_images < 1:
        raise ValueError(f"eval_images must be >= 1 or None, got {eval_images}")
    cfg = make_config(preset, tasks=tasks, data=data)
    if data == "synthetic":
        from torch.utils.data import Subset

        from .data import SynthWorld

        size = image_size or 128
        world = SynthWorld(split="test", size=size, seed=0)
        n = len(world) if eval_images is None else min(eval_images, len(world))
        test = world if eval_images is None else Subset(world, range(n))
        return ResultsData(data, size, cfg, test, world=world, class_names=SYNTH_CLASSES)
    from .training.real_data import real_test_subsets

    size = image_size or cfg.input_size
    test = real_test_subsets(cfg, cfg.task_names, data_root, eval_images)
    return ResultsData(data, size, cfg, test, root=data_root, class_names=VOC_CLASSES)
