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
``ul.metrics.evaluate`` on the synthetic val split, or on each task's real test set) and
``checkpoint.pt``.

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
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..config import UberNetConfig
from .async_sgd import AsyncSGD, SyncSGD, poly_schedule
from .objective import multitask_backward
from .real_data import (
    check_real_config,
    evaluate_test_sets,
    real_test_subsets,
    real_training_union,
)

CHECKPOINT = "checkpoint.pt"

#: The training data choices of :class:`TrainSettings`.
DATA_CHOICES = ("synthetic", "real")
#: Settings that say where data are, not what the run does: not compared when loading.
LOCATION_SETTINGS = ("data_root",)


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def to_device(batch: dict, device) -> dict:
    """A collated batch with every tensor (also inside lists and dicts) moved to ``device``."""

    def move(x):
        if torch.is_tensor(x):
            return x.to(device)
        if isinstance(x, dict):
            return {k: move(v) for k, v in x.items()}
        if isinstance(x, list):
            return [move(v) for v in x]
        return x

    return {k: (v if k == "meta" else move(v)) for k, v in batch.items()}


def config_fingerprint(cfg: UberNetConfig) -> dict:
    """A JSON-able description of a config (tasks included), to match checkpoints to runs."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    return [f"{prefix}{k}" for k in keys if a.get(k) != b.get(k)]


def rng_state() -> dict:
    """The torch, numpy and python global RNG states."""
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


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
        augment: random scale, crop, flip and colour jitter.
        seed: the one seed of the run (model init, data, augmentation, dropout).
        data: ``"synthetic"`` (the synthetic union) or ``"real"`` (the paper's real data sets).
        data_root: the real data sets' root (None: ``$UBERNET_DATA``, else ``~/data/ubernet``).
            A location, not a property of the run: checkpoints compare equal across roots, and
            ``Trainer.resume(path, data_root=...)`` may move it.
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
    augment: bool = True
    seed: int = 0
    data: str = "synthetic"
    data_root: str | None = None

    def check(self) -> None:
        if self.data not in DATA_CHOICES:
            raise ValueError(f"data must be one of {DATA_CHOICES}, got {self.data!r}")
        if self.optimizer not in ("async", "sync"):
            raise ValueError(f"optimizer must be 'async' or 'sync', got {self.optimizer!r}")
        if self.schedule not in ("poly", "constant"):
            raise ValueError(f"schedule must be 'poly' or 'constant', got {self.schedule!r}")
        if self.micro_batch < 1:
            raise ValueError(f"micro_batch must be >= 1, got {self.micro_batch}")


# --------------------------------------------------------------------------------------------
# The data stream: union sampler -> (epoch, offset) -> micro-batches
# --------------------------------------------------------------------------------------------


class MicroBatchStream:
    """Micro-batches of union indices, resumable from ``(epoch, offset)``.

    Each epoch draws ``len(union)`` indices from the union's sampler (seeded by the epoch), drops
    the samples labelled for none of ``targets`` and chunks the rest into ``micro_batch``-sized
    groups (a last partial group included).
    """

    def __init__(self, union, targets, micro_batch: int, seed: int, dataset=None):
        self.union, self.targets, self.micro_batch = union, set(targets), micro_batch
        self.dataset = union if dataset is None else dataset
        self.sampler = union.sampler(seed=seed)
        self.epoch, self.offset = 0, 0
        self._indices: list[int] | None = None

    def _epoch_indices(self) -> list[int]:
        empty = 0
        while self._indices is None:
            self.sampler.set_epoch(self.epoch)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(self.epoch)
            keep = [i for i in self.sampler if self._labelled(i)]
            if keep:
                self._indices = keep
                break
            if empty == 0 and not any(self._labelled(i) for i in range(len(self.union))):
                raise ValueError(
                    f"no sample of the union is labelled for the trained targets {sorted(self.targets)}"
                )
            # a small union drawn with replacement can miss its few labelled samples in an epoch
            empty += 1
            if empty >= 100:
                raise ValueError(
                    f"100 epochs in a row drew no sample labelled for {sorted(self.targets)}; "
                    "expected the sampling proportions to give weight to the data sets that carry them"
                )
            self.epoch += 1
        return self._indices

    def _labelled(self, i: int) -> bool:
        mask = self.union.label_mask(i)
        return any(mask[t] for t in self.targets)

    def next_indices(self) -> list[int]:
        idx = self._epoch_indices()
        if self.offset >= len(idx):
            self.epoch, self.offset, self._indices = self.epoch + 1, 0, None
            idx = self._epoch_indices()
        chunk = idx[self.offset : self.offset + self.micro_batch]
        self.offset += len(chunk)
        return chunk

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.offset, self._indices = int(state["epoch"]), int(state["offset"]), None


# --------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------


class Trainer:
    """Multi-task training on the synthetic union (or the real one) with asynchronous SGD.

    Args:
        cfg: the network's :class:`~ubernet_lite.UberNetConfig` (``UberNetConfig.lite()``).
        out: output folder (CSV, plot, checkpoint); None = no files.
        steps: micro-batches to train for (the run's length; the poly schedule spans it).
        eval_every: evaluate on the val split every this many steps (0 = only at the end if
            ``eval_images`` > 0).
        eval_images: images of the synthetic val split used for evaluation (0 = no evaluation).
        eval_thresholds: thresholds of the boundary metrics (99 for final numbers, 9 quick).
        checkpoint_every: write ``checkpoint.pt`` every this many steps (0 = only at the end).
        device: ``"cpu"`` or ``"cuda"``.
        progress: show a tqdm bar.
        prefetch: render the next micro-batch in a background thread during the step.
        world: the union's world factory (default the synthetic world; tests pass stand-ins).
        **settings: fields of :class:`TrainSettings` (tasks, micro_batch, optimizer, lr, ...,
            ``data="real"`` and ``data_root`` for the paper's real data sets).

    With ``data="real"`` the data sets are opened (file lists only) before anything else: a
    missing one raises ``DatasetNotFoundError`` naming it and ``data_scripts/download_<set>.py``;
    with ``eval_images`` the test sets of the trained tasks must be there too.
    """

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
        **settings,
    ):
        from .. import data
        from ..model import UberNet

        unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(TrainSettings)})
        if unknown:
            raise TypeError(
                f"unknown training setting(s) {unknown}; expected fields of TrainSettings: "
                f"{[f.name for f in dataclasses.fields(TrainSettings)]}"
            )
        self.settings = s = TrainSettings(**settings)
        s.check()
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        self.cfg = cfg
        if s.tasks in ("all", None):
            self.tasks = cfg.task_names
        elif isinstance(s.tasks, str):
            self.tasks = [t.strip() for t in s.tasks.split(",") if t.strip()]
        else:
            self.tasks = [t.name if hasattr(t, "name") else str(t) for t in s.tasks]
        missing = [t for t in self.tasks if t not in cfg.task_names]
        if missing:
            raise KeyError(f"tasks {missing} are not in the config's tasks {cfg.task_names}")
        if s.tasks not in ("all", None):
            s.tasks = list(self.tasks)  # one spelling, so that checkpoints compare equal
        self.steps, self.eval_every, self.eval_images = (
            int(steps),
            int(eval_every),
            int(eval_images),
        )
        self.eval_thresholds = int(eval_thresholds)
        self.checkpoint_every, self.device, self.progress = int(checkpoint_every), device, progress
        self.out = Path(out) if out is not None else None
        self.world = world
        self.prefetch = prefetch
        self._executor: ThreadPoolExecutor | None = None
        self._pending = None
        size = s.image_size or cfg.input_size
        self.image_size = size

        targets = {cfg.task(t).target for t in self.tasks}
        if s.data_root is not None:  # absolute, so that a resume from elsewhere finds it
            s.data_root = os.path.abspath(os.path.expanduser(str(s.data_root)))
        self._val_sets = None
        if s.data == "real":
            if world is not None:
                raise ValueError(
                    "world= replaces the synthetic world; it cannot be combined with data='real'"
                )
            check_real_config(cfg)
            # the data sets are checked before the model is built: a missing one fails at once
            self.union = real_training_union(targets, s.data_root)
            if self.eval_images:
                self._val_sets = real_test_subsets(cfg, self.tasks, s.data_root, self.eval_images)
            dataset = data.TransformedDataset(
                self.union, data.real.real_transforms(size, augment=s.augment), seed=s.seed
            )
        else:
            self.union = data.diverse_union(
                split="train", size=size, seed=s.seed, length=s.union_length, world=world
            )
            dataset = self.union
            if s.augment:
                dataset = data.TransformedDataset(
                    self.union, data.train_transforms(size=size), seed=s.seed
                )
        torch.manual_seed(s.seed)
        self.model = UberNet(cfg).to(device)
        self.stream = MicroBatchStream(self.union, targets, s.micro_batch, s.seed, dataset=dataset)
        self.dataset = dataset
        schedule = None
        if s.schedule == "poly" and self.steps > 0:
            schedule = poly_schedule(self.steps * s.micro_batch + 1)
        if s.optimizer == "async":
            self.opt = AsyncSGD(
                self.model, lr=s.lr, weight_decay=s.weight_decay, momentum=s.momentum,
                batch_sizes=s.batch_sizes, lr_schedule=schedule, tasks=self.tasks,
            )  # fmt: skip
        else:
            self.opt = SyncSGD(
                self.model,
                lr=s.lr,
                weight_decay=s.weight_decay,
                momentum=s.momentum,
                lr_schedule=schedule,
                tasks=self.tasks,
            )
        self.step = 0
        self.history: list[dict] = []
        self.evals: list[dict] = []
        self.data_time = 0.0
        self.compute_time = 0.0
        # the RNG stream of training starts here (after model init), in a run and in a resume
        torch.manual_seed(s.seed + 1)
        np.random.seed(s.seed + 1)
        random.seed(s.seed + 1)

    # ---- data -------------------------------------------------------------------------------

    def _load(self, idx: list[int]) -> dict:
        from ..data import collate

        return collate([self.dataset[i] for i in idx])

    def _submit(self) -> None:
        """Draw the next indices now and render them in the background thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ubernet-data")
        state = self.stream.state_dict()
        self._pending = (state, self._executor.submit(self._load, self.stream.next_indices()))

    def next_batch(self) -> dict:
        """The next collated micro-batch (on the trainer's device).

        With ``prefetch``, the following micro-batch is rendered in a background thread while
        this one trains (the data are pure functions of ``(seed, epoch, index)``: no global RNG
        is touched, so the result is the same as without prefetching). The next indices are
        drawn only after the pending batch is done, so the sampler's epoch never changes under
        a running load.
        """
        if not self.prefetch:
            return to_device(self._load(self.stream.next_indices()), self.device)
        if self._pending is None:
            self._submit()
        _, future = self._pending
        batch = future.result()
        self._pending = None
        self._submit()
        return to_device(batch, self.device)

    def _stream_state(self) -> dict:
        """The sampler position of the *consumed* micro-batches (a prefetched one is not)."""
        return dict(self._pending[0]) if self._pending is not None else self.stream.state_dict()

    def close(self) -> None:
        """Stop the prefetching thread (a later step restarts it)."""
        if self._pending is not None:
            self.stream.load_state_dict(self._pending[0])
            self._pending = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # ---- one step ---------------------------------------------------------------------------

    def train_step(self) -> dict:
        """One micro-batch: data, ``multitask_backward``, optimiser step; returns the log row."""
        t0 = time.perf_counter()
        batch = self.next_batch()
        t1 = time.perf_counter()
        self.model.train()
        losses = multitask_backward(
            self.model, batch, memory=self.settings.memory, tasks=self.tasks
        )
        updated = self.opt.step(batch)
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

    # ---- evaluation -------------------------------------------------------------------------

    def val_dataset(self):
        """The first ``eval_images`` images of the synthetic val split; with real data a dict
        ``{task: the first eval_images images of its test set labelled for it}``."""
        from torch.utils.data import Subset

        if self.settings.data == "real":
            if self._val_sets is None:
                self._val_sets = real_test_subsets(
                    self.cfg, self.tasks, self.settings.data_root, self.eval_images
                )
            return self._val_sets
        if self.world is not None:
            world = self.world(
                split="val", size=self.image_size, seed=self.settings.seed, style="scene"
            )
        else:
            from ..data import SynthWorld

            world = SynthWorld(split="val", size=self.image_size, seed=self.settings.seed)
        return Subset(world, range(min(self.eval_images, len(world))))

    def evaluate(self) -> dict:
        """``ul.metrics.evaluate`` on the val split (real data: each task on its test set, see
        :func:`evaluate_test_sets`); the RNG streams of training are untouched."""
        from ..metrics import evaluate

        with torch.random.fork_rng(devices=[]):
            state = (np.random.get_state(), random.getstate())
            self.model.eval()
            try:
                if self.settings.data == "real":
                    rows = evaluate_test_sets(
                        self.model,
                        self.val_dataset(),
                        side=self.image_size,
                        device=self.device,
                        num_thresholds=self.eval_thresholds,
                    )
                else:
                    rows = evaluate(
                        self.model,
                        self.val_dataset(),
                        tasks=self.tasks,
                        device=self.device,
                        num_thresholds=self.eval_thresholds,
                        progress=False,
                    )
            finally:
                self.model.train()
                np.random.set_state(state[0])
                random.setstate(state[1])
        for task, cols in rows.items():
            for col, value in cols.items():
                self.evals.append(
                    {"step": self.step, "task": task, "metric": col, "value": float(value)}
                )
        return rows

    # ---- the loop ---------------------------------------------------------------------------

    def run(self, steps: int | None = None) -> list[dict]:
        """Train until ``steps`` (default: the trainer's ``steps``); returns the loss history."""
        from ..progress import progress_bar

        steps = self.steps if steps is None else int(steps)
        bar = progress_bar(total=steps, initial=self.step, desc="train", enabled=self.progress)
        while self.step < steps:
            row = self.train_step()
            bar.update(1)
            bar.set_postfix(loss=f"{row['total']:.3g}")
            if self.eval_every and self.eval_images and self.step % self.eval_every == 0:
                self.evaluate()
            if (
                self.out is not None
                and self.checkpoint_every
                and self.step % self.checkpoint_every == 0
            ):
                self.save()
        bar.close()
        self.close()
        if self.eval_images and (not self.eval_every or self.step % self.eval_every):
            self.evaluate()
        if self.out is not None:
            self.save()
            self.write_logs()
        return self.history

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
                w = csv.DictWriter(f, fieldnames=["step", "task", "metric", "value"])
                w.writeheader()
                w.writerows(self.evals)
        if self.history:
            fig = plot_loss_curves(self.history, self.tasks)
            fig.savefig(self.out / "loss_curves.png", dpi=100)
            import matplotlib.pyplot as plt

            plt.close(fig)

    def state_dict(self) -> dict:
        return {
            "format": "ubernet_lite.Trainer/1",
            "config": config_fingerprint(self.cfg),
            "settings": dataclasses.asdict(self.settings),
            "steps": self.steps,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "stream": self._stream_state(),
            "rng": rng_state(),
            "history": self.history,
            "evals": self.evals,
        }

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the checkpoint (atomically) to ``path`` (default ``out/checkpoint.pt``)."""
        path = Path(path) if path is not None else self.out / CHECKPOINT
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)
        return path

    def load(self, path: str | os.PathLike) -> Trainer:
        """Restore a checkpoint of a run with the same config and settings (else a clear error)."""
        state = load_checkpoint(path)
        theirs, mine = state["config"], config_fingerprint(self.cfg)
        if theirs != mine:
            raise ValueError(
                f"checkpoint {path} is from another config (differs in {_diff(theirs, mine)}); "
                "build the Trainer with the checkpoint's config, e.g. Trainer.resume(path)"
            )
        theirs_s = comparable_settings(state["settings"])
        mine_s = comparable_settings(dataclasses.asdict(self.settings))
        if theirs_s != mine_s:
            raise ValueError(
                f"checkpoint {path} was trained with other settings (differs in "
                f"{_diff(theirs_s, mine_s)}); use Trainer.resume(path) to keep them"
            )
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.close()
        self.stream.load_state_dict(state["stream"])
        set_rng_state(state["rng"])
        self.step = int(state["step"])
        self.history, self.evals = list(state["history"]), list(state["evals"])
        return self

    @classmethod
    def resume(cls, path: str | os.PathLike, steps: int | None = None, **kwargs) -> Trainer:
        """A trainer rebuilt from a checkpoint's config and settings, continuing where it stopped.

        ``steps`` (default: the original run's) and ``out`` / ``eval_*`` / ``device`` / ``world``
        / ``data_root`` may be given. A different ``steps`` changes the poly schedule from here on.
        A checkpoint written before a setting existed gets that setting's default.
        """
        state = load_checkpoint(path)
        cfg = config_from_fingerprint(state["config"])
        kwargs.setdefault("out", Path(path).parent)
        settings = dict(state["settings"])
        for key in LOCATION_SETTINGS:
            if key in kwargs:
                settings[key] = kwargs.pop(key)
        trainer = cls(cfg, steps=state["steps"], **kwargs, **settings)
        trainer.load(path)
        if steps is not None and int(steps) != trainer.steps:
            trainer.steps = int(steps)
            if trainer.settings.schedule == "poly":
                trainer.opt.lr_schedule = poly_schedule(
                    trainer.steps * trainer.settings.micro_batch + 1
                )
        return trainer


def comparable_settings(settings: dict) -> dict:
    """The settings that define a run, for comparing a checkpoint with a trainer: absent fields
    (a checkpoint older than the field) get their default, location fields are left out."""
    defaults = {
        f.name: f.default
        for f in dataclasses.fields(TrainSettings)
        if f.default is not dataclasses.MISSING
    }
    out = {**defaults, **settings}
    for key in LOCATION_SETTINGS:
        out.pop(key, None)
    return out


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a trainer checkpoint, with a clear error for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}; expected a file written by Trainer.save()"
        )
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != "ubernet_lite.Trainer/1":
        raise ValueError(f"{path} is not an ubernet_lite Trainer checkpoint")
    return state


def config_from_fingerprint(fp: dict) -> UberNetConfig:
    """Rebuild an :class:`UberNetConfig` from :func:`config_fingerprint`'s dict."""
    from ..tasks import TaskSpec

    kw = dict(fp)
    kw["tasks"] = [TaskSpec(**t) for t in fp["tasks"]]
    for f in dataclasses.fields(UberNetConfig):
        if isinstance(getattr(UberNetConfig, f.name, None), tuple) or f.name in (
            "pyramid_scales", "anchor_sizes", "anchor_ratios",
        ):  # fmt: skip
            if isinstance(kw.get(f.name), list):
                kw[f.name] = tuple(kw[f.name])
    return UberNetConfig(**kw)


def plot_loss_curves(history: list[dict], tasks: list[str], smooth: int = 10, ax=None):
    """Per-task loss curves (running mean over ``smooth`` labelled steps) against samples seen."""
    import matplotlib.pyplot as plt

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4))
    for t in tasks:
        pts = [(r["samples"], r[t]) for r in history if not math.isnan(r.get(t, math.nan))]
        if not pts:
            continue
        x, y = np.array(pts).T
        k = max(1, min(smooth, len(y)))
        ys = np.convolve(y, np.ones(k) / k, mode="valid")
        ax.plot(x[k - 1 :], ys, label=t)
    ax.set_xlabel("samples seen")
    ax.set_ylabel("task loss (running mean)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    return fig if fig is not None else ax.figure


def train(cfg: UberNetConfig | None = None, out=None, steps: int = 100, **kwargs) -> Trainer:
    """Build a :class:`Trainer` (default config ``UberNetConfig.lite()``), run it, return it."""
    trainer = Trainer(cfg or UberNetConfig.lite(), out=out, steps=steps, **kwargs)
    trainer.run()
    return trainer
