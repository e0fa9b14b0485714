"""cached_run: trains once, then loads; a changed setting or length trains again."""

from __future__ import annotations

import pytest

import ubernet_lite as ul
from ubernet_lite import experiments
from ubernet_lite.training.trainer import Trainer

TINY = dict(image_size=64, micro_batch=1, union_length=20, progress=False, prefetch=False)


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("UBERNET_OUTPUTS", str(tmp_path))
    return tmp_path


@pytest.fixture
def counted(monkeypatch):
    """Counts Trainer.train_step calls (the work a cached run must not redo)."""
    calls = []
    step = Trainer.train_step

    def train_step(self):
        calls.append(1)
        return step(self)

    monkeypatch.setattr(Trainer, "train_step", train_step)
    return calls


def test_cached_run_trains_once_then_loads(outputs, counted):
    cfg = experiments.make_config("lite", tasks="semantic")
    first = experiments.cached_run("tiny", cfg, steps=2, verbose=False, **TINY)
    assert not first.cached and len(counted) == 2 and first.step == 2
    assert (outputs / "runs" / "tiny" / "checkpoint.pt").is_file()
    second = experiments.cached_run("tiny", cfg, steps=2, verbose=False, **TINY)
    assert second.cached and len(counted) == 2
    assert len(second.history) == 2
    a, b = first.model.state_dict(), second.model.state_dict()
    assert all((a[k] == b[k]).all() for k in a)
    assert not second.model.training


def test_changed_setting_config_or_length_retrains(outputs, counted):
    cfg = experiments.make_config("lite", tasks="semantic")
    experiments.cached_run("tiny", cfg, steps=2, verbose=False, **TINY)
    run = experiments.cached_run("tiny", cfg, steps=2, verbose=False, **{**TINY, "lr": 0.02})
    assert not run.cached and len(counted) == 4
    gamma = experiments.make_config("lite", tasks="semantic", gammas={"semantic": 5.0})
    run = experiments.cached_run("tiny", gamma, steps=2, verbose=False, **{**TINY, "lr": 0.02})
    assert not run.cached and len(counted) == 6
    run = experiments.cached_run("tiny", gamma, steps=3, verbose=False, **{**TINY, "lr": 0.02})
    assert not run.cached and len(counted) == 9 and run.step == 3
    run = experiments.cached_run("tiny", gamma, steps=3, verbose=False, **{**TINY, "lr": 0.02})
    assert run.cached and len(counted) == 9


def test_on_chunk_is_called_and_retrain_forces_training(outputs, counted):
    cfg = experiments.make_config("lite", tasks="normals")
    seen = []
    run = experiments.cached_run(
        "chunks",
        cfg,
        steps=3,
        chunk=2,
        verbose=False,
        on_chunk=lambda t: seen.append(t.step),
        **TINY,
    )
    assert (
        seen == [2, 3] and len(run.history) == 3 and (outputs / "runs/chunks/losses.csv").is_file()
    )
    run = experiments.cached_run("chunks", cfg, steps=3, retrain=True, verbose=False, **TINY)
    assert not run.cached and len(counted) == 6


def test_make_config_and_batch_sizes():
    cfg = experiments.make_config("lite", tasks="semantic,normals", gammas={"normals": 50})
    assert cfg.task_names == ["semantic", "normals"] and cfg.task("normals").gamma == 50.0
    assert experiments.short_run_batch_sizes(cfg, 3) == {"shared": 3, "semantic": 3, "normals": 3}
    real = experiments.make_config("lite", tasks="semantic", data="real")
    assert real.task("semantic").out_channels == 21 and real.num_classes == 20
    with pytest.raises(ValueError, match="preset must be"):
        experiments.make_config("huge")
    with pytest.raises(KeyError, match="gammas names task"):
        experiments.make_config(tasks="semantic", gammas={"normals": 5})
    with pytest.raises(ValueError, match="plain folder name"):
        experiments.run_dir("../x")
    assert ul.UberNetConfig.lite().task_names == experiments.make_config().task_names


def test_train_runs_trains_only_what_is_not_cached(outputs, counted):
    runs = {
        "a": dict(tasks=["semantic"], steps=2, **TINY),
        "b": dict(tasks=["semantic"], steps=2, lr=0.02, **TINY),
    }
    # the first run is cached beforehand: only the second one trains
    experiments.series_run("a", verbose=False, **runs["a"])
    assert len(counted) == 2
    assert experiments.train_runs(runs, workers=1) == ["b"]
    assert len(counted) == 4
    assert experiments.train_runs(runs, workers=1) == []
    run = experiments.series_run("b", verbose=False, **runs["b"])
    assert run.cached and len(counted) == 4
    assert experiments.series_run("c", train=False, **runs["a"]) is None
