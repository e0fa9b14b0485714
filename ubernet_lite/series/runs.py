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

:func:`series_run` is the one definition of the runs of notebooks 00, 09 and 10 (so that they
share one cache); :func:`single_run_name` names notebook 10's single-task runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from ..config import UberNetConfig, make_config
from ..paths import outputs_dir
from ..progress import progress_bar
from ..training.checkpoint import CHECKPOINT, load_checkpoint
from ..training.trainer import Trainer


def run_dir(name: str) -> Path:
    """``outputs/runs/<name>`` (created on demand)."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"run name must be a plain folder name, got {name!r}")
    return outputs_dir("runs", name)


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
    cfg = make_config(preset, tasks=tasks, data=data, gammas=gammas)  # checks data
    kwargs["data"] = data
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


#: The run settings of each preset (:func:`preset_settings`). lite: the quick CPU run of the
#: notebooks (64 px, 600 micro-batches of 2, B_p = 2). paper: Sec. 3's setting for one GPU: shortest
#: side 621 (``image_size=None``: the config's ``input_size``), Table 1's B_p (``short_batches=None``:
#: 30 for the trunk, 10 per task, 2 for detection, ``resolve_batch_sizes``' defaults), ImageNet
#: VGG-16 in the trunk, 20000 micro-batches of 2 (~1300 trunk updates of 30 images; on one
#: current GPU a few hours -- the paper trained for days; pass ``steps`` to change it).
PRESET_SETTINGS = {
    "lite": dict(steps=600, image_size=64, micro_batch=2, short_batches=2, init="random"),
    "paper": dict(steps=20000, image_size=None, micro_batch=2, short_batches=None, init="imagenet"),
}


def preset_settings(preset: str = "lite", **overrides) -> dict:
    """The run settings of ``preset`` (:data:`PRESET_SETTINGS`) with ``overrides`` whose value is
    not None: ``steps``, ``image_size``, ``micro_batch``, ``short_batches`` (0: Table 1's B_p) and
    ``init`` (``"random"`` | ``"imagenet"``), as :func:`series_run` takes them.

    ``preset_settings("paper", steps=4, image_size=64, init="random")`` is the paper preset shrunk
    for a CPU test.
    """
    if preset not in PRESET_SETTINGS:
        raise ValueError(f"preset must be one of {sorted(PRESET_SETTINGS)}, got {preset!r}")
    unknown = sorted(set(overrides) - set(PRESET_SETTINGS[preset]))
    if unknown:
        raise TypeError(
            f"unknown run setting(s) {unknown}; expected {sorted(PRESET_SETTINGS[preset])}"
        )
    out = dict(PRESET_SETTINGS[preset])
    out.update({k: v for k, v in overrides.items() if v is not None})
    if not out["short_batches"]:
        out["short_batches"] = None  # Table 1's B_p
    return out


def series_dir_name(name: str, preset: str = "lite", data: str = "synthetic") -> str:
    """The cache folder name of :func:`series_run`'s run ``name``: ``name`` itself for the lite
    preset on synthetic data, else ``f"{name}-{preset}-{data}"``."""
    return name if (preset, data) == ("lite", "synthetic") else f"{name}-{preset}-{data}"


def single_run_name(run_name: str, task: str, data: str = "synthetic") -> str:
    """The cache name of notebook 10's single-task run of ``task`` beside the run ``run_name``.

    The default synthetic run (``"seven_task"``) keeps the historical names ``single_<task>``;
    any other run name or real data get ``<run_name>_single_<task>``, so that a real or
    differently named series never overwrites the synthetic single-task caches.
    """
    if run_name == "seven_task" and data == "synthetic":
        return f"single_{task}"
    return f"{run_name}_single_{task}"
