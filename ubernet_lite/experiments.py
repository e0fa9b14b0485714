"""Training runs that a notebook launches once and reuses: cached under ``outputs/runs/<name>``.

A run is cached with its checkpoint; :func:`cached_run` rebuilds the :class:`Trainer` with the same
config and settings and loads it, so a second execution of a notebook (or a later notebook of the
series asking for the same run) costs a checkpoint read instead of a training run. A checkpoint
written with another config, other settings or another number of steps is never reused: the run
is trained again.

```python
cfg = make_config("lite", tasks="all")
run = cached_run("seven_task", cfg, steps=200, micro_batch=2, image_size=64,
                 batch_sizes=short_run_batch_sizes(cfg))
run.model, run.history, run.cached
```
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .config import UberNetConfig
from .paths import outputs_dir
from .tasks import TASKS, VOC_CLASSES, VOC_TASKS, get_tasks
from .training.trainer import CHECKPOINT, Trainer, load_checkpoint

__all__ = [
    "cached_run",
    "make_config",
    "run_dir",
    "series_run",
    "short_run_batch_sizes",
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
            ``progress``, ``eval_images`` ...).

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
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, initial=trainer.step, desc="train", disable=not trainer.progress)
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
    steps: int = 200,
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

    The defaults are the quick CPU run (64 px, 200 micro-batches of 2, B_p = 2 via
    :func:`short_run_batch_sizes`); ``preset="paper", image_size=None, short_batches=None``
    with more ``steps`` is the paper's setting (the paper's B_p, input size 621).
    ``data="real"`` needs a Trainer that trains on the real union: the error says so.
    """
    import dataclasses
    import inspect

    from .training.trainer import TrainSettings

    if data == "real":
        fields = {f.name for f in dataclasses.fields(TrainSettings)}
        if "data" not in fields and "data" not in inspect.signature(Trainer).parameters:
            raise NotImplementedError(
                "data='real': the Trainer trains on the synthetic union only so far; training on "
                "the real data sets needs the Trainer's data option (ubernet_lite/training/"
                "trainer.py). Use data='synthetic' meanwhile."
            )
        kwargs["data"] = "real"
    cfg = make_config(preset, tasks=tasks, data=data, gammas=gammas)
    if short_batches:
        kwargs.setdefault("batch_sizes", short_run_batch_sizes(cfg, short_batches))
    return cached_run(
        name,
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
    from tqdm.auto import tqdm

    todo = [
        n
        for n, kw in runs.items()
        if series_run(n, **{**kw, "train": False, "verbose": False}) is None
    ]
    if not todo:
        return []
    jobs = [(n, runs[n], threads) for n in todo]
    bar = tqdm(total=len(jobs), desc="training runs", unit="run")
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
