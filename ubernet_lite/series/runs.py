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
from collections.abc import Callable, Sequence
from pathlib import Path

from ..config import UberNetConfig, make_config
from ..paths import outputs_dir
from ..progress import progress_bar
from ..training.checkpoint import CHECKPOINT, load_checkpoint
from ..training.pretrain import pretrained_init
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
            trainer.evaluate_if_due()  # the learning curves, as trainer.run() evaluates
            if trainer.step % chunk == 0 or trainer.step == steps:
                if trainer.out is not None and trainer.step < steps:
                    trainer.save()  # the last one is trainer.run()'s, below
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
    scale: str = "quick",
    init: str = "random",
    **kwargs,
) -> Trainer | None:
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

    ``scale`` (``"quick"`` or ``"course"``, :data:`SCALE_SETTINGS`) only names the cache folder
    (``-course`` for the lite preset's course runs); the settings themselves come from
    ``**preset_settings(preset, scale=scale)``. ``init="pretrained"`` starts from the shared
    pretrained trunk (:func:`resolve_init`, pretrained once and cached).
    """
    cfg = make_config(preset, tasks=tasks, data=data, gammas=gammas)  # checks data
    kwargs["data"] = data
    if short_batches:
        kwargs.setdefault("batch_sizes", short_run_batch_sizes(cfg, short_batches))
    train = kwargs.get("train", True)
    init = resolve_init(init, cfg, image_size, train=train, verbose=kwargs.get("verbose", True))
    if init is None:  # look-up only, and the shared trunk is not pretrained yet
        return None
    return cached_run(
        series_dir_name(name, preset, data, scale),
        cfg,
        steps=steps,
        image_size=image_size,
        micro_batch=micro_batch,
        memory=memory,
        optimizer=optimizer,
        device=device,
        lr=lr,
        init=init,
        **kwargs,
    )


#: The scales of the lite preset (:data:`SCALE_SETTINGS`); ``"full"`` is an alias of ``"course"``.
SCALES = ("quick", "course")
SCALE_ALIASES = {"full": "course"}
#: ``init`` meaning "the shared pretrained trunk" (:func:`resolve_init`): every compared model of a
#: series starts from the same trunk, pretrained once and cached, as the paper's start from ImageNet.
PRETRAINED = "pretrained"

#: The run settings of each scale of the lite preset (:func:`preset_settings`).
#:
#: * ``quick`` -- what the committed notebooks and nbval run (``make test``): 600 micro-batches
#:   of 2 at 64 px, B_p = 2, random init, no periodic evaluation. Do not change it: nbval
#:   compares the notebooks' outputs with these settings' and the quick caches are keyed on them.
#: * ``course`` -- what ``make reproduce SCALE=course`` passes (quick stays the default while the
#:   course run misses targets): larger images (objects span several cells of the stride-8
#:   maps), more samples, the shared pretrained trunk, and a periodic evaluation of
#:   ``eval_images`` val images every ``eval_every`` micro-batches over ``eval_thresholds``
#:   boundary thresholds (the learning curves of notebook 10). **One dict to
#:   change**: every key is a keyword of :func:`series_run` (or of the Trainer behind it:
#:   ``lr``, ``union``, ``union_length``, ``augment``, ``eval_*`` ...); the values below are the
#:   course recipe of docs/course_recipe.md.
SCALE_SETTINGS: dict[str, dict] = {
    "quick": dict(steps=600, image_size=64, micro_batch=2, short_batches=2, init="random"),
    # the course recipe as measured (docs/course_recipe.md); its pretraining stage is
    # training.pretrain.PretrainSettings()'s (pretrained_init), its union views.COURSE_TABLE
    "course": dict(
        steps=5000,  # 20,000 samples
        image_size=96,
        micro_batch=4,
        short_batches=4,
        init=PRETRAINED,
        lr=0.02,  # run L of docs/course_recipe.md (0.01: run K, -1 to -3 points on every task)
        union="course",  # data.synthetic.views.COURSE_TABLE
        # the learning curves: one evaluation of the seven-task lite net on 32 val images at
        # 96 px over 9 thresholds takes ~15 s on one core (semantic boundaries' thinning ~75 %),
        # ~7 s on 16: every 500 steps that is ~7 % of a 5000-step run
        eval_every=500,
        eval_images=16,
        eval_thresholds=9,
    ),
}
#: Test images notebooks 10 (and 00) evaluate at each scale (course: item 4's >= 128).
SCALE_TEST_IMAGES = {"quick": 32, "course": 128}

#: The run settings of each preset (:func:`preset_settings`). lite: its ``quick`` scale
#: (:data:`SCALE_SETTINGS`; ``preset_settings("lite", scale="course")`` for the course run).
#: paper: Sec. 3's setting for one GPU: shortest side 621 (``image_size=None``: the config's
#: ``input_size``), Table 1's B_p (``short_batches=None``: 30 for the trunk, 10 per task, 2 for
#: detection, ``resolve_batch_sizes``' defaults), ImageNet VGG-16 in the trunk, 20000 micro-batches
#: of 2 (~1300 trunk updates of 30 images; on one current GPU a few hours -- the paper trained for
#: days; pass ``steps`` to change it). With the paper preset ``scale`` is ignored.
PRESET_SETTINGS = {
    "lite": SCALE_SETTINGS["quick"],
    "paper": dict(steps=20000, image_size=None, micro_batch=2, short_batches=None, init="imagenet"),
}
#: The settings every preset and scale has, and that may always be overridden.
_CORE = ("steps", "image_size", "micro_batch", "short_batches", "init")


def check_scale(scale: str) -> str:
    """``scale`` as a key of :data:`SCALE_SETTINGS` (``"full"`` -> ``"course"``); a clear error
    otherwise."""
    scale = SCALE_ALIASES.get(scale, scale)
    if scale not in SCALES:
        raise ValueError(
            f"scale must be one of {list(SCALES)} (or 'full' = 'course'), got {scale!r}"
        )
    return scale


def preset_settings(preset: str = "lite", scale: str = "quick", **overrides) -> dict:
    """The run settings of ``preset`` at ``scale`` with ``overrides`` whose value is not None.

    lite: :data:`SCALE_SETTINGS` ``[scale]`` (``"quick"``, the default, or ``"course"``); paper:
    :data:`PRESET_SETTINGS` ``["paper"]``, whatever ``scale`` says (the preset's settings rule).
    Overrides: ``steps``, ``image_size``, ``micro_batch``, ``short_batches`` (0: Table 1's B_p),
    ``init`` (``"random"`` | ``"imagenet"`` | ``"pretrained"``, :func:`resolve_init`) and any
    other key of the scale's dict, as :func:`series_run` takes them.

    ``preset_settings("paper", steps=4, image_size=64, init="random")`` is the paper preset shrunk
    for a CPU test; ``preset_settings("lite", scale="course", steps=4)`` the course run shrunk.
    """
    if preset not in PRESET_SETTINGS:
        raise ValueError(f"preset must be one of {sorted(PRESET_SETTINGS)}, got {preset!r}")
    scale = check_scale(scale)
    base = SCALE_SETTINGS[scale] if preset == "lite" else PRESET_SETTINGS[preset]
    known = set(base) | set(_CORE)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown run setting(s) {unknown}; expected {sorted(known)}")
    out = dict(base)
    out.update({k: v for k, v in overrides.items() if v is not None})
    if not out["short_batches"]:
        out["short_batches"] = None  # Table 1's B_p
    return out


def resolve_init(init: str, cfg: UberNetConfig, image_size: int | None, train: bool = True,
                 verbose: bool = True) -> str | None:  # fmt: skip
    """``init`` as the Trainer takes it: ``"pretrained"`` becomes the shared pretrained trunk,
    ``"trunk:<path of a trunk state dict>"`` (``training.pretrain.pretrained_init``: the stage
    run once, now if ``train``, and cached). Other values pass through. None: ``train=False``
    and the trunk is not pretrained yet."""
    if init != PRETRAINED:
        return init
    return pretrained_init(cfg, image_size=image_size, train=train, verbose=verbose)


def series_dir_name(
    name: str, preset: str = "lite", data: str = "synthetic", scale: str = "quick"
) -> str:
    """The cache folder name of :func:`series_run`'s run ``name``: ``name`` itself for the lite
    preset's quick scale on synthetic data, else ``f"{name}-{preset}-{data}"``; the lite preset's
    course scale adds ``-course`` (the paper preset ignores ``scale``), so that the scales never
    overwrite each other's cache."""
    out = name if (preset, data) == ("lite", "synthetic") else f"{name}-{preset}-{data}"
    if preset == "lite" and check_scale(scale) == "course":
        out += "-course"
    return out


def single_run_name(run_name: str, task: str, data: str = "synthetic") -> str:
    """The cache name of notebook 10's single-task run of ``task`` beside the run ``run_name``.

    The default synthetic run (``"seven_task"``) keeps the historical names ``single_<task>``;
    any other run name or real data get ``<run_name>_single_<task>``, so that a real or
    differently named series never overwrites the synthetic single-task caches.
    """
    if run_name == "seven_task" and data == "synthetic":
        return f"single_{task}"
    return f"{run_name}_single_{task}"


def table9_runs(run_name: str, gammas: Sequence[float], **settings) -> dict[str, dict]:
    """Notebook 10's Table 9 runs beside ``run_name``: ``{name: series_run kwargs}``, one per
    normals weight gamma_normals in ``gammas`` (Eq. 1's gamma_t), named
    ``<run_name>_normals_gamma<gamma>`` and otherwise ``settings``, the seven-task run's.

    Notebooks 00 and 09 start the first of them in a second process while they train the
    seven-task run (:func:`.pool.start_runs`), notebook 10 trains the rest: all three ask for the
    same names and settings, so each run is trained once and found in the cache afterwards.
    """
    return {
        f"{run_name}_normals_gamma{g:g}": dict(settings, gammas={"normals": float(g)})
        for g in gammas
    }
