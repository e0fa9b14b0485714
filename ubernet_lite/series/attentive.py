"""Notebook 11's runs, cached: attentive single-tasking trained once, then loaded from
``outputs/runs/<name>``.

:func:`cached_attentive_run` trains a model (and its discriminator, if any) with
:func:`~ubernet_lite.training.attentive.train_attentive` and writes ``attentive.pt`` (the weights,
the history, the training time and the run's key; written atomically, read with
``weights_only=True``); a
later call with the same key loads it instead of training. The key is everything that decides the
outcome: the model's class, mechanisms, tasks, parameter shapes and initial weights (so another
seed or config trains again), the discriminator's, the number of steps, every training argument
and a caller's description of the data (``data_key``). A run cached with another key is never
reused: it is trained again and overwritten.

```python
run = cached_attentive_run("ast_se", model, union, steps=60, batch_size=4,
                           data_key=dict(union="diverse_union", size=64, seed=0))
run.model, run.history, run.seconds, run.cached
```
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass

import torch
from torch import nn

from ..training.attentive import AttentiveHistory, train_attentive
from .runs import run_dir

#: The file of a cached attentive run inside ``outputs/runs/<name>``.
ATTENTIVE_RUN = "attentive.pt"


@dataclass
class AttentiveRun:
    """A trained (or loaded) run: the model and discriminator in eval mode, what
    :func:`train_attentive` recorded, the seconds its training took (when it was trained), and
    whether it was loaded from the cache."""

    model: nn.Module
    discriminator: nn.Module | None
    history: AttentiveHistory
    seconds: float
    cached: bool


def _describe(value):
    """A comparable, picklable description of a training argument (data sets by type and length)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    try:
        return f"{type(value).__name__}[{len(value)}]"
    except TypeError:
        return type(value).__name__


def _module_key(module: nn.Module | None) -> dict | None:
    """Class, mechanisms, tasks, parameter shapes and a fingerprint of the initial weights."""
    if module is None:
        return None
    state = module.state_dict()
    with torch.no_grad():
        fingerprint = sum(
            float((t.double().flatten() * (1 + torch.arange(t.numel()) % 7)).sum())
            for t in state.values()
            if t.is_floating_point()
        )
    return {
        "class": type(module).__name__,
        "se": bool(getattr(module, "use_se", False)),
        "adapters": bool(getattr(module, "use_adapters", False)),
        "tasks": list(getattr(module, "task_names", [])),
        "shapes": {k: list(v.shape) for k, v in state.items()},
        "init": round(fingerprint, 6),
    }


def run_key(model, discriminator, steps: int, data_key=None, **train_kwargs) -> dict:
    """The cache key of a run (see the module docstring)."""
    return {
        "model": _module_key(model),
        "discriminator": _module_key(discriminator),
        "steps": int(steps),
        "train": _describe(train_kwargs),
        "data": _describe(data_key),
    }


def _history_state(hist: AttentiveHistory) -> dict:
    return dataclasses.asdict(hist)


def _save(state: dict, path) -> None:
    """``torch.save`` to a temporary file, then renamed over ``path`` (never half a file)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _load(path, key: dict, model, discriminator) -> AttentiveRun:
    """The cached run at ``path``; ValueError where its key is not ``key``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("key") != key:
        raise ValueError("it was trained with other settings, data, config or initial weights")
    model.load_state_dict(state["model"])
    if discriminator is not None:
        discriminator.load_state_dict(state["discriminator"])
    hist = AttentiveHistory(**state["history"])
    hist.heldout = [tuple(h) for h in hist.heldout]
    return AttentiveRun(model, discriminator, hist, float(state["seconds"]), cached=True)


def cached_attentive_run(
    name: str,
    model: nn.Module,
    dataset,
    steps: int,
    discriminator: nn.Module | None = None,
    data_key=None,
    retrain: bool = False,
    verbose: bool = True,
    **train_kwargs,
) -> AttentiveRun:
    """``train_attentive(model, dataset, steps, discriminator=..., **train_kwargs)``, or load the
    identical run cached in ``outputs/runs/<name>/attentive.pt``.

    Args:
        name: the run's folder under ``outputs/runs``.
        model: a freshly built model (its initial weights are part of the key); trained in place
            or given the cached weights.
        dataset: the training data (``train_attentive``'s ``dataset``).
        steps: micro-batches of the run.
        discriminator: a fresh :class:`~ubernet_lite.model.attentive.TaskDiscriminator`, or None.
        data_key: what makes the data what it is (e.g. ``dict(size=64, length=1000, seed=0)``):
            the cache cannot see inside a data set, so a run on other data with the same key
            would be reused.
        retrain: train even where an identical run is cached (and overwrite it).
        verbose: print whether the run was loaded or trained.
        **train_kwargs: go to :func:`~ubernet_lite.training.attentive.train_attentive`.

    Returns:
        :class:`AttentiveRun`, model and discriminator in eval mode.
    """
    path = run_dir(name) / ATTENTIVE_RUN
    key = run_key(model, discriminator, steps, data_key, **train_kwargs)
    if path.is_file() and not retrain:
        try:
            run = _load(path, key, model, discriminator)
        except Exception as err:  # another key, or a file torch cannot read: train again
            if verbose:
                print(f"[{name}] cached run differs ({err}); training again")
        else:
            if verbose:
                print(f"[{name}] loaded the cached run ({steps} steps) from {path}")
            run.model.eval()
            if run.discriminator is not None:
                run.discriminator.eval()
            return run
    t0 = time.time()
    hist = train_attentive(model, dataset, steps, discriminator=discriminator, **train_kwargs)
    seconds = time.time() - t0
    state = {
        "key": key,
        "model": model.state_dict(),
        "discriminator": None if discriminator is None else discriminator.state_dict(),
        "history": _history_state(hist),
        "seconds": seconds,
    }
    _save(state, path)
    model.eval()
    if discriminator is not None:
        discriminator.eval()
    return AttentiveRun(model, discriminator, hist, seconds, cached=False)


__all__ = ["ATTENTIVE_RUN", "AttentiveRun", "cached_attentive_run", "run_key"]
