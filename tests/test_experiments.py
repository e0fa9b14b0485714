"""cached_run: trains once, then loads; a changed setting or length trains again.
results_data: the synthetic test split or each task's real test set (notebooks 00 and 10)."""

from __future__ import annotations

import pytest
import torch

import ubernet_lite as ul
from ubernet_lite import series
from ubernet_lite.config import make_config
from ubernet_lite.training.real_data import real_training_union
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
    cfg = make_config("lite", tasks="semantic")
    first = series.cached_run("tiny", cfg, steps=2, verbose=False, **TINY)
    assert not first.cached and len(counted) == 2 and first.step == 2
    assert (outputs / "runs" / "tiny" / "checkpoint.pt").is_file()
    second = series.cached_run("tiny", cfg, steps=2, verbose=False, **TINY)
    assert second.cached and len(counted) == 2
    assert len(second.history) == 2
    a, b = first.model.state_dict(), second.model.state_dict()
    assert all((a[k] == b[k]).all() for k in a)
    assert not second.model.training


def test_changed_setting_config_or_length_retrains(outputs, counted):
    cfg = make_config("lite", tasks="semantic")
    series.cached_run("tiny", cfg, steps=2, verbose=False, **TINY)
    run = series.cached_run("tiny", cfg, steps=2, verbose=False, **{**TINY, "lr": 0.02})
    assert not run.cached and len(counted) == 4
    gamma = make_config("lite", tasks="semantic", gammas={"semantic": 5.0})
    run = series.cached_run("tiny", gamma, steps=2, verbose=False, **{**TINY, "lr": 0.02})
    assert not run.cached and len(counted) == 6
    run = series.cached_run("tiny", gamma, steps=3, verbose=False, **{**TINY, "lr": 0.02})
    assert not run.cached and len(counted) == 9 and run.step == 3
    run = series.cached_run("tiny", gamma, steps=3, verbose=False, **{**TINY, "lr": 0.02})
    assert run.cached and len(counted) == 9


def test_on_chunk_is_called_and_retrain_forces_training(outputs, counted):
    cfg = make_config("lite", tasks="normals")
    seen = []
    run = series.cached_run(
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
    run = series.cached_run("chunks", cfg, steps=3, retrain=True, verbose=False, **TINY)
    assert not run.cached and len(counted) == 6


def test_make_config_and_batch_sizes():
    cfg = make_config("lite", tasks="semantic,normals", gammas={"normals": 50})
    assert cfg.task_names == ["semantic", "normals"] and cfg.task("normals").gamma == 50.0
    assert series.short_run_batch_sizes(cfg, 3) == {"shared": 3, "semantic": 3, "normals": 3}
    real = make_config("lite", tasks="semantic", data="real")
    assert real.task("semantic").out_channels == 21 and real.num_classes == 20
    with pytest.raises(ValueError, match="preset must be"):
        make_config("huge")
    with pytest.raises(KeyError, match="gammas names task"):
        make_config(tasks="semantic", gammas={"normals": 5})
    with pytest.raises(ValueError, match="plain folder name"):
        series.run_dir("../x")
    assert ul.UberNetConfig.lite().task_names == make_config().task_names


def test_train_runs_trains_only_what_is_not_cached(outputs, counted):
    runs = {
        "a": dict(tasks=["semantic"], steps=2, **TINY),
        "b": dict(tasks=["semantic"], steps=2, lr=0.02, **TINY),
    }
    # the first run is cached beforehand: only the second one trains
    series.series_run("a", verbose=False, **runs["a"])
    assert len(counted) == 2
    assert series.train_runs(runs, workers=1) == ["b"]
    assert len(counted) == 4
    assert series.train_runs(runs, workers=1) == []
    run = series.series_run("b", verbose=False, **runs["b"])
    assert run.cached and len(counted) == 4
    assert series.series_run("c", train=False, **runs["a"]) is None


def test_start_runs_trains_in_the_background_what_is_not_cached(outputs):
    runs = {
        "a": dict(tasks=["semantic"], steps=2, **TINY),
        "b": dict(tasks=["semantic"], steps=2, lr=0.02, **TINY),
    }
    series.series_run("a", verbose=False, **runs["a"])  # cached: not started again
    background = series.start_runs(runs)  # a spawned worker process: it sees UBERNET_OUTPUTS
    assert background.names == ["b"]
    assert background.wait() == ["b"] and background.done()
    assert series.series_run("b", train=False, verbose=False, **runs["b"]).step == 2
    nothing = series.start_runs(runs)  # every run cached now
    assert nothing.names == [] and nothing.done() and nothing.wait() == []
    assert series.train_runs(runs, workers=1) == []


def test_start_other_core_trains_the_gamma5_run_at_the_course_scale_only(outputs):
    settings = dict(tasks=["semantic", "normals"], steps=2, **TINY)
    assert series.start_other_core("a", preset="lite", scale="quick", **settings) is None
    assert series.start_other_core("a", other_core=False, scale="course", **settings) is None
    background = series.start_other_core("a", other_core=True, **settings)
    assert background.names == ["a_normals_gamma5"] and background.wait() == ["a_normals_gamma5"]
    run = series.table9_runs("a", [5.0], **settings)["a_normals_gamma5"]
    assert series.series_run("a_normals_gamma5", train=False, verbose=False, **run).step == 2


def test_table9_runs_are_the_seven_task_settings_with_one_normals_weight_each(outputs):
    settings = dict(steps=2, **TINY)
    runs = series.table9_runs("seven_task", [5, 50.0], **settings)
    assert list(runs) == ["seven_task_normals_gamma5", "seven_task_normals_gamma50"]
    assert runs["seven_task_normals_gamma5"] == dict(settings, gammas={"normals": 5.0})
    assert settings == dict(steps=2, **TINY)  # the caller's dict is left as it was
    # notebooks 00/09 start [5.0] and notebook 10 asks for [5.0, 50.0]: one cache entry
    series.series_run(
        "g5", verbose=False, **series.table9_runs("x", [5.0], **settings)["x_normals_gamma5"]
    )
    again = series.table9_runs("x", [5, 50], **settings)["x_normals_gamma5"]
    assert series.series_run("g5", train=False, verbose=False, **again).cached


# ---- results_data: the test data of notebooks 00 and 10 -------------------------------------


def test_single_run_name_keeps_the_synthetic_default_and_separates_the_rest():
    assert series.single_run_name("seven_task", "semantic") == "single_semantic"
    real = series.single_run_name("seven_task", "semantic", "real")
    other = series.single_run_name("real_fixture", "semantic", "synthetic")
    assert len({"single_semantic", real, other}) == 3
    assert real.startswith("seven_task_") and other.startswith("real_fixture_")


def test_results_data_synthetic_is_the_test_split_and_the_train_world():
    from torch.utils.data import Subset

    from ubernet_lite.baselines import TrivialBaseline

    tasks = "saliency,normals,semantic"
    rd = series.results_data("synthetic", 64, eval_images=3, tasks=tasks)
    world = ul.data.SynthWorld(split="test", size=64, seed=0)
    train = ul.data.SynthWorld(split="train", size=64, seed=0)
    assert rd.size == 64 and len(rd) == 3 and rd.class_names == ul.tasks.SYNTH_CLASSES
    assert rd.describe() == f"test images: 3 of {len(world)}, 64 px"
    assert rd.caption() == "Synthetic test split, first 3 images at 64 px"
    # the constants are those fitted on the first train images, the scores those on the split
    mine = TrivialBaseline(rd.cfg.tasks, rd.baseline_samples(4))
    ref = TrivialBaseline(rd.cfg.tasks, (train[i] for i in range(4)))
    assert all(torch.equal(mine.constants[t], ref.constants[t]) for t in ref.constants)
    rows = rd.evaluate(ref, num_thresholds=3)
    expected = ul.metrics.evaluate(ref, Subset(world, range(3)), num_thresholds=3, progress=False)
    assert rows == expected and set(rows) == {"saliency", "normals", "semantic"}
    # figure images: the split's own images, also beyond the evaluated ones
    assert torch.equal(rd.images([0, 4])[1], world[4]["image"])
    assert torch.equal(rd.sample(2)["image"], world[2]["image"])
    assert series.results_data("synthetic", None).size == 128  # the old default size
    with pytest.raises(ValueError, match="data must be"):
        series.results_data("imagenet")


def test_results_data_evaluates_the_same_again_and_with_two_matching_workers():
    """The same model scores the same boundary numbers every time, also with the matching in two
    processes (notebook 10's course evaluation): the BSDS matching's random outlier edges are
    reseeded before each image (``metrics.boundaries.MATCH_SEED``). Unseeded, an untrained
    model's counts here moved by a pixel between calls (OIS 0.1432 then 0.1440)."""
    torch.manual_seed(0)
    model = ul.model.UberNet(make_config("lite", tasks="boundaries,semantic_boundaries")).eval()
    rd = series.results_data("synthetic", 64, eval_images=3, tasks="boundaries,semantic_boundaries")
    runs = [rd.evaluate(model, num_thresholds=5, workers=w) for w in (1, 2, 1, 1)]
    assert all(r == runs[0] for r in runs[1:]), runs
    assert set(runs[0]) == {"boundaries", "semantic_boundaries"}


@pytest.fixture(scope="module")
def real_root(tmp_path_factory):
    from test_trainer_real import fixture_root

    return fixture_root(tmp_path_factory.mktemp("results_real"))


def test_results_data_real_uses_each_tasks_test_set(real_root):
    from test_trainer_real import PARTS_VAL, SEG_VAL

    from ubernet_lite.baselines import TrivialBaseline
    from ubernet_lite.data.real import TEST_SETS
    from ubernet_lite.metrics.evaluate import COLUMNS

    rd = series.results_data("real", 32, eval_images=2, data_root=real_root)
    assert rd.class_names == ul.tasks.VOC_CLASSES and rd.cfg.num_classes == 20
    assert list(rd.test) == rd.cfg.task_names
    for task, subset in rd.test.items():
        ts = TEST_SETS[rd.cfg.task(task).target]
        assert (subset.dataset.name, subset.dataset.split) == (ts.name, ts.split)
        assert 1 <= len(subset) <= 2
        assert f"{task} {len(subset)} ({ts.name} {ts.split})" in rd.describe()
    # the trivial baseline: for each task its first 3 labelled training samples, no test image
    samples = list(rd.baseline_samples(3))
    union = real_training_union({s.target for s in rd.cfg.tasks}, real_root)
    for spec in rd.cfg.tasks:
        available = sum(union.label_mask(i)[spec.target] for i in range(len(union)))
        assert sum(s["has_label"][spec.target] for s in samples) == min(3, available)
    ids = {s["meta"]["id"] for s in samples if s["meta"]["dataset"] == "voc2012"}
    assert ids and not ids & {SEG_VAL, PARTS_VAL}
    trivial = TrivialBaseline(rd.cfg.tasks, iter(samples))
    rows = rd.evaluate(trivial, num_thresholds=3)
    assert {t: set(r) for t, r in rows.items()} == {
        s.name: set(COLUMNS[s.metric]) for s in rd.cfg.tasks
    }
    assert set(rd.evaluate(trivial, tasks=["saliency"], num_thresholds=3)) == {"saliency"}
    # figure images: size x size, each test image once, the tasks' sets taken in turn
    first = [rd.sample(i)["meta"]["dataset"] for i in range(len(rd.test))]
    assert len(set(first)) == len(rd.test)  # seven tasks, seven different test sets
    images = rd.images([0, 1, len(rd)])
    assert images.shape == (3, 3, 32, 32)
    assert torch.equal(images[2], images[0])  # indices wrap around the test images
    keys = [(rd.sample(i)["meta"]["dataset"], rd.sample(i)["meta"]["id"]) for i in range(len(rd))]
    assert len(keys) == len(set(keys))


def test_results_data_real_names_a_missing_set(tmp_path):
    from ubernet_lite.data.real import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="download_"):
        series.results_data("real", 32, eval_images=1, data_root=tmp_path)


def test_series_dir_name_keeps_other_presets_and_data_apart():
    from ubernet_lite.series import series_dir_name

    assert series_dir_name("seven_task") == "seven_task"
    assert series_dir_name("seven_task", "paper", "synthetic") == "seven_task-paper-synthetic"
    assert series_dir_name("seven_task", "lite", "real") == "seven_task-lite-real"
