"""Training several cached runs at once, in worker processes (notebook 10's runs).

Small networks use a CPU core far better in separate processes than through intra-op threads, so
on a 2-core machine two runs at a time take about half the wall time of one after another.

* :func:`train_runs` -- train the runs not cached yet, ``workers`` at a time, and wait for them;
* :func:`start_runs` -- the same in the background (:class:`BackgroundRuns`);
  :func:`start_other_core` -- what notebooks 00 and 09 start with it: while the kernel trains the
  seven-task model, a second process trains notebook 10's first Table 9 run on the other core.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import torch

from ..config import make_config
from ..progress import progress_bar
from .runs import PRETRAINED, resolve_init, series_run, table9_runs


def _train_worker(job: tuple[str, dict, int]) -> str:
    """Train one :func:`series_run` in a worker process (``threads`` torch threads)."""
    name, kwargs, threads = job
    torch.set_num_threads(threads)
    series_run(name, **{**kwargs, "verbose": False, "progress": False})
    return name


def _todo(runs: dict[str, dict]) -> list[str]:
    """The names of ``runs`` that are not in the cache yet."""
    return [
        n
        for n, kw in runs.items()
        if series_run(n, **{**kw, "train": False, "verbose": False}) is None
    ]


def train_runs(runs: dict[str, dict], workers: int = 2, threads: int = 1) -> list[str]:
    """Train the :func:`series_run` runs ``{name: kwargs}`` that are not cached yet, ``workers``
    at a time in subprocesses (one torch thread each by default).

    Small networks use a CPU core far better in separate processes than through intra-op threads,
    so on a 2-core machine two runs at a time take about half the wall time of one after another.
    Afterwards ``series_run(name, **kwargs)`` loads each run from the cache. Returns the names of
    the runs that were trained.
    """
    todo = _todo(runs)
    if not todo:
        return []
    _pretrain_once([runs[n] for n in todo])
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


class BackgroundRuns:
    """Runs training in worker processes while the caller goes on (:func:`start_runs`).

    Attributes:
        names: the runs being trained (those of the request that were not cached).
    """

    def __init__(self, pool: ProcessPoolExecutor | None, futures: list, names: list[str]):
        self._pool, self._futures, self.names = pool, futures, names

    def done(self) -> bool:
        """Whether every run has finished (or there was none to train)."""
        return all(f.done() for f in self._futures)

    def wait(self) -> list[str]:
        """Block until every run has finished; returns their names. A worker's exception is
        raised here."""
        try:
            return [f.result() for f in self._futures]
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None


def start_runs(runs: dict[str, dict], workers: int = 1, threads: int = 1) -> BackgroundRuns:
    """Start training the :func:`series_run` runs ``{name: kwargs}`` that are not cached yet in
    ``workers`` background processes (``threads`` torch threads each) and return at once.

    The shared pretraining stage, if a run needs it, runs here first (so call this after the
    caller's own run has pretrained, or accept the wait). ``.wait()`` on the result blocks until
    the runs are in the cache; afterwards :func:`train_runs` and :func:`series_run` find them there.
    """
    todo = _todo(runs)
    if not todo:
        return BackgroundRuns(None, [], [])
    _pretrain_once([runs[n] for n in todo])
    pool = ProcessPoolExecutor(min(workers, len(todo)), mp_context=get_context("spawn"))
    futures = [pool.submit(_train_worker, (n, runs[n], threads)) for n in todo]
    return BackgroundRuns(pool, futures, todo)


def start_other_core(
    run_name: str, other_core: bool | None = None, **settings
) -> BackgroundRuns | None:
    """Notebook 10's first Table 9 run beside ``run_name`` (gamma_normals = 5,
    :func:`.runs.table9_runs`, otherwise ``settings``: the seven-task run's :func:`series_run`
    keywords) started in a second process, or None.

    One torch thread per process is fastest for the lite network, so while a notebook's kernel
    trains the seven-task run on one core this keeps the other busy; notebook 10 then finds the
    run in the cache. ``other_core`` None: only for the lite preset's course scale (a quick run
    is too short to be worth a process). Call ``.wait()`` on the result once the kernel's own run
    is done.
    """
    if other_core is None:
        other_core = settings.get("preset", "lite") == "lite" and settings.get("scale") == "course"
    if not other_core:
        return None
    background = start_runs(table9_runs(run_name, [5.0], **settings))
    print("training in a second process meanwhile:", background.names or "nothing (cached)")
    return background


def _pretrain_once(runs: list[dict]) -> None:
    """Run the shared pretraining stage (``init="pretrained"``, :func:`.runs.resolve_init`) here,
    before the workers start, so that they all load its cached trunk instead of each pretraining
    its own at the same time."""
    for kw in runs:
        if kw.get("init") == PRETRAINED:
            cfg = make_config(
                kw.get("preset", "lite"), tasks=kw.get("tasks", "all"),
                data=kw.get("data", "synthetic"), gammas=kw.get("gammas"),
            )  # fmt: skip
            resolve_init(PRETRAINED, cfg, kw.get("image_size"), train=True)
