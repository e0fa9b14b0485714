"""The training loop: union sampler -> micro-batches -> ``multitask_backward`` -> ``AsyncSGD``.

```python
trainer = ul.training.Trainer(ul.UberNetConfig.lite(), out="runs/demo", steps=200)
history = trainer.run()                 # per-step losses; CSV + PNG + checkpoint in runs/demo
trainer = ul.training.Trainer.resume("runs/demo/checkpoint.pt", steps=400)   # continue exactly
```

What it does per step (Sec. 3 of the paper):

1. draw the next ``micro_batch`` indices of the union sampler (Table 1's ``i ~ U[1, N]``,
   members weighted by their proportions), keeping only samples labelled for a trained task;
2. load, augment (seeded per ``(seed, epoch, index)``) and ``collate`` them;
3. ``multitask_backward`` (lazy: only the labelled tasks' branches run; ``.grad`` = summed dw);
4. ``opt.step(batch)``: :class:`AsyncSGD` updates each group that has now seen B_p samples
   (or :class:`SyncSGD`, the Eq. 3-5 baseline, with ``optimizer="sync"``).

Outputs in ``out``: ``losses.csv`` (one row per step: each task's mean loss over its labelled
samples, blank where the micro-batch had none), ``loss_curves.png``, ``eval.csv`` (periodic
``ul.metrics.evaluate`` on the synthetic val split, or on each task's real test set, every
``eval_every`` steps: one row per task and metric with the step, the samples seen and the
labelled samples of that task seen so far -- the run's learning curves, kept in the checkpoint)
and ``checkpoint.pt``.

**Real data** (``data="real"``, issue 8): the union of the paper's real data sets under
``data_root`` (``ubernet_lite.data.real.diverse_union_real``; only the members that carry a
trained task), with a VOC-class config (``make_config(preset, data="real")``: 20 classes, six
parts). Images of any size are resized to a shorter side of ``image_size``, then randomly
scaled, cropped / padded (ignore 255) to ``image_size`` square and flipped
(``data.real.real_transforms``). Each task is evaluated on its own test set
(``data.real.TEST_SETS``: VOC 2007 test, VOC 2012 segmentation val, SBD val, the held-out
PASCAL-Part set, PASCAL-S, BSDS500 test, NYUv2 test), one image at a time, the network seeing
the image at a shorter side of ``image_size`` and its predictions resized back to the image's
own size, so that the metrics compare with the original ground truth. To keep those test sets
out of training, the union leaves out VOC 2012's segmentation val images (VOC 2012 val for
semantic segmentation), the PASCAL-Part val images (parts), and takes SBD's labels from SBD
train only (SBD val tests semantic boundaries).

**Exact resumption.** Data are a pure function of ``(seed, epoch, index)``, and the checkpoint
holds the model, the optimiser (every group's accumulator, counter, momentum), the sampler
position (epoch, offset) and the torch / numpy / python RNG states (dropout, the RPN's sampling):
a run stopped and resumed ends with the same parameters as one that ran through. Evaluation
runs inside ``torch.random.fork_rng`` so how often one evaluates does not change training.

Beside this file: :mod:`.settings` (what defines a run), :mod:`.data_source` (synthetic or real
data), :mod:`.stream` (micro-batches and prefetching), :mod:`.checkpoint` (the format, resume
compatibility).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import random
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..config import UberNetConfig
from ..model import UberNet
from ..progress import progress_bar
from ..viz import plot_loss_curves
from .accel import Speedups, apply_backend_flags, autocast_model, prepare_images, prepare_model
from .async_sgd import AsyncSGD, SyncSGD, poly_schedule
from .backward import multitask_backward
from .checkpoint import (
    CHECKPOINT,
    FORMAT,
    check_compatible,
    config_fingerprint,
    config_from_fingerprint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .data_source import training_data
from .distributed import (
    broadcast_module,
    distributed_backward,
    gather_rank_states,
    rank,
    reduce_losses,
    shard,
    sync_tap_batchnorms,
    world_size,
)
from .init import init_trunk
from .loader import LoaderFeed
from .safety import (
    SIGNAL_NAMES,
    NonFiniteError,
    StopOnSignal,
    TrainingInterrupted,
    check_finite,
    prepare_out_folder,
)
from .settings import LOCATION_SETTINGS, TrainSettings
from .stream import MicroBatchStream, Prefetcher


class Trainer:
    """Multi-task training on the synthetic union (or the real one) with asynchronous SGD.

    Args:
        cfg: the network's :class:`~ubernet_lite.UberNetConfig` (``UberNetConfig.lite()``).
        out: output folder (CSV, plot, checkpoint); None = no files.
        steps: micro-batches to train for (the run's length; the poly schedule spans it).
        eval_every: evaluate on the val split every this many steps (0 = only at the end if
            ``eval_images`` > 0); each evaluation adds to :attr:`evals` one row per task and
            metric: ``{"step", "samples", "task", "labelled", "metric", "value"}``, where
            ``labelled`` counts the samples labelled for that task seen so far (a learning curve).
        eval_images: images of the synthetic val split used for evaluation (0 = no evaluation).
        eval_thresholds: thresholds of the boundary metrics (99 for final numbers, 9 quick).
        checkpoint_every: write ``checkpoint.pt`` every this many steps (0 = only at the end).
        device: ``"cpu"`` or ``"cuda"``.
        progress: show a tqdm bar.
        prefetch: render the next micro-batch in a background thread during the step.
        world: the union's world factory (default the synthetic world; tests pass stand-ins).
        speedups: bf16 autocast (losses in float32), channels_last and cudnn.benchmark / TF32
            (:mod:`.accel`); None = on for CUDA devices, off on the CPU.
        workers: DataLoader worker processes (:class:`.loader.LoaderFeed`, pinned memory,
            non-blocking copies); 0 = the one prefetching thread. None = 4 on CUDA, else 0.
        **settings: fields of :class:`TrainSettings` (tasks, micro_batch, optimizer, lr, ...,
            ``data="real"`` and ``data_root`` for the paper's real data sets).

    With ``data="real"`` the data sets are opened (file lists only) before anything else: a
    missing one raises ``DatasetNotFoundError`` naming it and ``data_scripts/download_<set>.py``;
    with ``eval_images`` the test sets of the trained tasks must be there too.

    **On N processes** (``torchrun``, an initialised ``torch.distributed`` group): every rank
    draws the same global micro-batches and trains on its share (:mod:`.distributed`); the tap
    BatchNorms are synchronised, AsyncSGD counts and reduces globally, rank 0 evaluates and
    writes the logs and the checkpoint (which records ``world_size`` and every rank's local
    accumulators and RNG states; resume with the same N).
    """

    # ---- set-up -----------------------------------------------------------------------------

    def __init__(
        self,
        cfg: UberNetConfig,
        out: str | os.PathLike | None = None,
        steps: int = 100,
        eval_every: int = 0,
        eval_images: int = 0,
        eval_thresholds: int = 9,
        checkpoint_every: int = 0,
        device: str = "cpu",
        progress: bool = True,
        prefetch: bool = True,
        world=None,
        speedups: bool | None = None,
        workers: int | None = None,
        **settings,
    ):
        self.settings = s = TrainSettings.from_kwargs(settings)
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        self.cfg = cfg
        self.tasks = _task_names(cfg, s)
        self.steps, self.eval_every, self.eval_images = (
            int(steps),
            int(eval_every),
            int(eval_images),
        )
        self.eval_thresholds = int(eval_thresholds)
        self.checkpoint_every, self.device, self.progress = int(checkpoint_every), device, progress
        self.out = prepare_out_folder(out) if out is not None else None
        self.last_checkpoint: Path | None = None  # the last one written (the last good one)
        self.image_size = s.image_size or cfg.input_size
        if s.data_root is not None:  # absolute, so that a resume from elsewhere finds it
            s.data_root = os.path.abspath(os.path.expanduser(str(s.data_root)))

        # data first: with real data a missing data set fails before the model is built
        self.source = training_data(cfg, self.tasks, s, self.image_size, world, self.eval_images)
        self.union, self.dataset = self.source.union, self.source.dataset
        targets = {cfg.task(t).target for t in self.tasks}
        self.stream = MicroBatchStream(self.union, targets, s.micro_batch, s.seed, self.dataset)
        self.rank, self.world = rank(), world_size()
        self.speed = Speedups.for_device(device, enabled=speedups)
        apply_backend_flags(self.speed)
        share = shard if self.world > 1 else None  # this rank's share of each micro-batch
        if workers is None:
            workers = 4 if self.speed.device_type == "cuda" else 0
        if workers > 0:
            self.batches = LoaderFeed(self.stream, device, workers, share=share)
        else:
            self.batches = Prefetcher(self.stream, device, prefetch, share=share)
        torch.manual_seed(s.seed)
        self.model = init_trunk(UberNet(cfg), s.init).to(device)
        if self.image_size < self.model.min_input_size:
            raise ValueError(
                f"image_size {self.image_size} is below the smallest input this network takes "
                f"({self.model.min_input_size} pixels); use image_size >= {self.model.min_input_size}"
            )
        if self.world > 1:
            sync_tap_batchnorms(self.model)
            broadcast_module(self.model)
        prepare_model(self.model, self.speed)
        self.opt = self._optimizer()
        self.step = 0
        self.history: list[dict] = []
        self.evals: list[dict] = []
        self.labelled = dict.fromkeys(self.tasks, 0)  # labelled samples seen, per task
        self.data_time = 0.0
        self.compute_time = 0.0
        # the RNG stream of training starts here (after model init), in a run and in a resume;
        # each rank its own (dropout, the RPN's sampling), rank 0's that of a single process
        seed = s.seed + 1 + 1000 * self.rank
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)

    def _optimizer(self) -> AsyncSGD | SyncSGD:
        """Async SGD (Table 1) or its synchronous baseline (Eq. 3-5), poly schedule over the run."""
        s = self.settings
        schedule = None
        if s.schedule == "poly" and self.steps > 0:
            schedule = poly_schedule(self.steps * s.micro_batch + 1)
        common = dict(
            lr=s.lr, weight_decay=s.weight_decay, momentum=s.momentum, lr_schedule=schedule,
            tasks=self.tasks,
        )  # fmt: skip
        common["distributed"] = self.world > 1
        if s.optimizer == "async":
            return AsyncSGD(self.model, batch_sizes=s.batch_sizes, **common)
        return SyncSGD(self.model, **common)

    # ---- one step ---------------------------------------------------------------------------

    def train_step(self) -> dict:
        """One micro-batch: data, ``multitask_backward``, optimiser step; returns the log row."""
        t0 = time.perf_counter()
        batch = self.batches.next_batch()  # None: an empty share of a distributed micro-batch
        if batch is not None:
            batch["images"] = prepare_images(batch["images"], self.speed)
        t1 = time.perf_counter()
        self.model.train()
        memory = self.settings.memory
        with autocast_model(self.model, self.speed):
            if self.world > 1:
                side = self.image_size
                empty = torch.zeros(0, 3, side, side, device=self.device)
                losses = distributed_backward(
                    self.model, batch, memory=memory, tasks=self.tasks, images_like=empty
                )
                losses = reduce_losses(losses, self.tasks)
            else:
                losses = multitask_backward(self.model, batch, memory=memory, tasks=self.tasks)
        check_finite(
            self.step + 1, losses, losses.total, self.opt.current_lr(), self.model.parameters()
        )
        updated = self.opt.step(batch)
        self._count_labels(losses)
        t2 = time.perf_counter()
        self.data_time += t1 - t0
        self.compute_time += t2 - t1
        self.step += 1
        row = {"step": self.step, "samples": self.opt.samples_seen, "total": losses.total}
        row.update({t: losses.get(t, math.nan) for t in self.tasks})
        row["updated"] = " ".join(updated or [])
        row["data_s"], row["step_s"] = round(t1 - t0, 4), round(t2 - t0, 4)
        self.history.append(row)
        return row

    def _count_labels(self, losses) -> None:
        """Add the micro-batch's labelled samples of each task to :attr:`labelled`: the step's
        ``losses.counts`` (``summarize``'s; after ``reduce_losses``, all ranks'), 0 omitted."""
        for task in self.tasks:
            self.labelled[task] += losses.counts.get(task, 0)

    # ---- the loop ---------------------------------------------------------------------------

    def evaluate_if_due(self) -> None:
        """The periodic evaluation (the learning curves): every ``eval_every`` steps, rank 0."""
        if self.eval_every and self.eval_images and self.step % self.eval_every == 0:
            if self.rank == 0:
                self.evaluate()

    def run(self, steps: int | None = None) -> list[dict]:
        """Train until ``steps`` (default: the trainer's ``steps``); returns the loss history."""
        steps = self.steps if steps is None else int(steps)
        show = self.progress and self.rank == 0
        bar = progress_bar(total=steps, initial=self.step, desc="train", enabled=show)
        with StopOnSignal() as stop:
            try:
                while self.step < steps and stop.signum is None:
                    row = self.train_step()
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['total']:.3g}")
                    self.evaluate_if_due()
                    if (
                        self.out is not None
                        and self.checkpoint_every
                        and self.step % self.checkpoint_every == 0
                    ):
                        self.save()
            except NonFiniteError as e:
                bar.close()
                self.close()
                raise NonFiniteError(f"{e}; stopped, {self._kept()}") from None
            bar.close()
            self.close()
            if stop.signum is not None:
                self._interrupted(stop.signum)
        if self.eval_images and (not self.eval_every or self.step % self.eval_every):
            if self.rank == 0:
                self.evaluate()
        if self.out is not None:
            self.save()
            if self.rank == 0:
                self.write_logs()
        return self.history

    def close(self) -> None:
        """Stop the prefetching thread (a later step restarts it)."""
        self.batches.close()

    def _kept(self) -> str:
        if self.last_checkpoint is not None:
            return f"the last good checkpoint {self.last_checkpoint} is kept"
        return "no checkpoint was written before it" + (
            "" if self.out is not None else " (out=None)"
        )

    def resume_command(self) -> str:
        """The command line that continues this run from its checkpoint."""
        cmd = f"python -m ubernet_lite train --resume {self.out / CHECKPOINT}"
        if self.device != "cpu":
            cmd += f" --device {self.device}"
        cmd += f" --checkpoint-every {self.checkpoint_every}"
        if self.eval_images:
            cmd += f" --eval-every {self.eval_every} --eval-images {self.eval_images}"
        return cmd

    def _interrupted(self, signum: int) -> None:
        """Write the checkpoint and logs at the current step, raise :class:`TrainingInterrupted`."""
        name = SIGNAL_NAMES.get(signum, str(signum))
        if self.out is None:
            raise TrainingInterrupted(
                f"{name} at step {self.step} of {self.steps}; nothing written (out=None)",
                signum, self.step, None, None,
            )  # fmt: skip
        path = self.save()
        self.write_logs()
        command = self.resume_command()
        raise TrainingInterrupted(
            f"{name} at step {self.step} of {self.steps}: checkpoint written to {path}; "
            f"resume with: {command}",
            signum, self.step, path, command,
        )  # fmt: skip

    # ---- evaluation -------------------------------------------------------------------------

    def val_dataset(self):
        """The first ``eval_images`` images of the synthetic val split; with real data a dict
        ``{task: the first eval_images images of its test set labelled for it}``."""
        return self.source.val_dataset(self.eval_images)

    def evaluate(self) -> dict:
        """``ul.metrics.evaluate`` on the val split (real data: each task on its test set, see
        :func:`~.real_data.evaluate_test_sets`); the RNG streams of training are untouched."""
        with torch.random.fork_rng(devices=[]):
            state = (np.random.get_state(), random.getstate())
            self.model.eval()
            try:
                rows = self.source.evaluate(
                    self.model, self.val_dataset(), self.device, self.eval_thresholds
                )
            finally:
                self.model.train()
                np.random.set_state(state[0])
                random.setstate(state[1])
        samples = self.opt.samples_seen
        for task, cols in rows.items():
            for col, value in cols.items():
                self.evals.append(
                    {"step": self.step, "samples": samples, "task": task,
                     "labelled": self.labelled.get(task, math.nan), "metric": col,
                     "value": float(value)}
                )  # fmt: skip
        return rows

    # ---- files ------------------------------------------------------------------------------

    def write_logs(self) -> None:
        """``losses.csv``, ``eval.csv`` and ``loss_curves.png`` in ``out``."""
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        cols = ["step", "samples", "total", *self.tasks, "updated", "data_s", "step_s"]
        with open(self.out / "losses.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for row in self.history:
                w.writerow(
                    {
                        k: ("" if isinstance(v, float) and math.isnan(v) else v)
                        for k, v in row.items()
                    }
                )
        if self.evals:
            with open(self.out / "eval.csv", "w", newline="") as f:
                fields = ["step", "samples", "task", "labelled", "metric", "value"]
                w = csv.DictWriter(f, fieldnames=fields)
                w.writeheader()
                w.writerows(self.evals)
        if self.history:
            fig = plot_loss_curves(self.history, self.tasks)
            fig.savefig(self.out / "loss_curves.png", dpi=100)
            plt.close(fig)

    # ---- checkpoints (format: see .checkpoint) ----------------------------------------------

    def state_dict(self) -> dict:
        return {
            "format": FORMAT,
            "config": config_fingerprint(self.cfg),
            "settings": dataclasses.asdict(self.settings),
            "steps": self.steps,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "stream": self.batches.state_dict(),
            "rng": rng_state(),
            "history": self.history,
            "evals": self.evals,
            "labelled": self.labelled,
            "world_size": self.world,
        }

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the checkpoint (atomically, with a checksum) to ``path`` (default
        ``out/checkpoint.pt``).

        Distributed: every rank must call it (its local state is gathered); rank 0 writes."""
        path = Path(path) if path is not None else self.out / CHECKPOINT
        ranks = None
        if self.world > 1:
            local = {"rng": rng_state(), "optimizer": self.opt.local_state()}
            ranks = gather_rank_states(local)
            if self.rank != 0:
                return path
        state = self.state_dict()
        if ranks is not None:
            state["ranks"] = ranks
        written = save_checkpoint(state, path)
        self.last_checkpoint = written
        return written

    def load(self, path: str | os.PathLike) -> Trainer:
        """Restore a checkpoint of a run with the same config and settings (else a clear error)."""
        state = load_checkpoint(path)
        check_compatible(state, self.cfg, self.settings, path)
        trained_on = int(state.get("world_size", 1))
        if trained_on != self.world:
            raise ValueError(
                f"checkpoint {path} was trained on {trained_on} process(es), this run has "
                f"{self.world}; resume with the same number (torchrun --nproc_per_node "
                f"{trained_on}) to continue exactly"
            )
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.batches.load_state_dict(state["stream"])
        set_rng_state(state["rng"])
        if self.world > 1:  # this rank's own accumulators and RNG streams
            mine = state["ranks"][self.rank]
            self.opt.load_local_state(mine["optimizer"])
            set_rng_state(mine["rng"])
        self.step = int(state["step"])
        self.history, self.evals = list(state["history"]), list(state["evals"])
        # a checkpoint older than the count cannot say it: nan, which curves leave out
        self.labelled = dict(state.get("labelled") or dict.fromkeys(self.tasks, math.nan))
        self.last_checkpoint = Path(path)
        return self

    @classmethod
    def resume(
        cls,
        path: str | os.PathLike,
        steps: int | None = None,
        settings: dict | None = None,
        **kwargs,
    ) -> Trainer:
        """A trainer rebuilt from a checkpoint's config and settings, continuing where it stopped.

        ``steps`` (default: the original run's; never below the steps done) and ``out`` /
        ``eval_*`` / ``device`` / ``world`` / ``data_root`` may be given; ``out`` (default: the
        checkpoint's folder) is where the continued run writes, the checkpoint read is not
        touched. A different ``steps`` changes the poly schedule from here on. ``settings``:
        fields of :class:`TrainSettings` the caller asked for; each must equal the checkpoint's
        (a ``ValueError`` names every difference), since they define the run. A checkpoint
        written before a setting existed gets that setting's default.
        """
        state = load_checkpoint(path)
        cfg = config_from_fingerprint(state["config"])
        done = int(state["step"])
        if steps is not None and int(steps) < done:
            raise ValueError(
                f"--steps {steps} is below the {done} steps checkpoint {path} has done; give "
                f"--steps >= {done} (the run's length, not steps to add)"
            )
        kwargs.setdefault("out", Path(path).parent)
        saved = dict(state["settings"])
        for key in LOCATION_SETTINGS:
            if key in kwargs:
                saved[key] = kwargs.pop(key)
        differences = _setting_differences(cfg, saved, settings or {})
        if differences:
            raise ValueError(
                f"settings given with --resume differ from checkpoint {path}'s: "
                + "; ".join(differences)
                + ". Drop them to continue the run as it was, or start a new run with --out"
            )
        trainer = cls(cfg, steps=state["steps"], **kwargs, **saved)
        trainer.load(path)
        if steps is not None and int(steps) != trainer.steps:
            trainer.steps = int(steps)
            if trainer.settings.schedule == "poly":
                trainer.opt.lr_schedule = poly_schedule(
                    trainer.steps * trainer.settings.micro_batch + 1
                )
        return trainer


def _setting_differences(cfg: UberNetConfig, saved: dict, given: dict) -> list[str]:
    """``"name X (checkpoint: Y)"`` for each setting in ``given`` that differs from ``saved``
    (compared as the run uses them: task lists normalised, image_size None = the config's)."""
    names = {f.name for f in dataclasses.fields(TrainSettings)}
    unknown = sorted(set(given) - names)
    if unknown:
        raise TypeError(f"unknown training setting(s) {unknown}; expected fields of TrainSettings")
    base = TrainSettings(**{k: v for k, v in saved.items() if k in names})
    out = []
    for key, value in given.items():
        if key in LOCATION_SETTINGS:
            continue
        theirs = getattr(base, key)
        mine = value
        if key == "tasks":
            mine = _task_names(cfg, dataclasses.replace(base, tasks=value))
            theirs = _task_names(cfg, dataclasses.replace(base))
        elif key == "image_size":
            mine, theirs = value or cfg.input_size, theirs or cfg.input_size
        if mine != theirs:
            out.append(f"{key} {mine!r} (checkpoint: {theirs!r})")
    return out


def _task_names(cfg: UberNetConfig, s: TrainSettings) -> list[str]:
    """The trained task names of ``s.tasks`` (``"all"``, ``"a,b"`` or a list of names or specs);
    ``s.tasks`` is rewritten as a list of names, so that checkpoints compare equal."""
    if s.tasks in ("all", None):
        return cfg.task_names
    if isinstance(s.tasks, str):
        tasks = [t.strip() for t in s.tasks.split(",") if t.strip()]
    else:
        tasks = [t.name if hasattr(t, "name") else str(t) for t in s.tasks]
    missing = [t for t in tasks if t not in cfg.task_names]
    if missing:
        raise KeyError(f"tasks {missing} are not in the config's tasks {cfg.task_names}")
    s.tasks = list(tasks)
    return tasks


def train(cfg: UberNetConfig | None = None, out=None, steps: int = 100, **kwargs) -> Trainer:
    """Build a :class:`Trainer` (default config ``UberNetConfig.lite()``), run it, return it."""
    trainer = Trainer(cfg or UberNetConfig.lite(), out=out, steps=steps, **kwargs)
    trainer.run()
    return trainer
