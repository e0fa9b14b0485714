"""Periodic evaluation: each eval row says how many labelled samples of its task the run had seen;
the curves survive a checkpoint, a resume and the run cache; the scales of the lite preset."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import ubernet_lite as ul  # noqa: E402
from ubernet_lite import series  # noqa: E402
from ubernet_lite.config import make_config  # noqa: E402
from ubernet_lite.results import learning_curve  # noqa: E402
from ubernet_lite.series import runs as runs_mod  # noqa: E402
from ubernet_lite.training.trainer import Trainer  # noqa: E402

TASKS = ["semantic", "normals", "saliency"]
SETTINGS = dict(tasks=TASKS, image_size=64, micro_batch=1, union_length=30, lr=0.01)


def cfg():
    return ul.config.UberNetConfig.lite(
        tasks=TASKS, width=1 / 16, fc_channels=32, pyramid_scales=(1.0, 0.5)
    )


def make(out, steps=6, **kw):
    return Trainer(cfg(), out=out, steps=steps, progress=False, prefetch=False, **SETTINGS, **kw)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_eval_rows_count_the_labelled_samples_of_their_task(tmp_path):
    t = make(tmp_path / "a", eval_every=2, eval_images=2)
    t.run()
    assert sorted({e["step"] for e in t.evals}) == [2, 4, 6]
    # micro-batches of one sample: a task's labelled samples are its steps with a finite loss
    for task in TASKS:
        finite = sum(not math.isnan(r[task]) for r in t.history)
        assert t.labelled[task] == finite
        at = {e["step"]: e["labelled"] for e in t.evals if e["task"] == task}
        assert at[6] == finite
        assert at[2] <= at[4] <= at[6]
        assert at[2] == sum(not math.isnan(r[task]) for r in t.history[:2])
    assert {e["samples"] for e in t.evals} == {2, 4, 6}
    assert sum(t.labelled.values()) > 0 and any(t.labelled[k] < 6 for k in TASKS)
    header = (tmp_path / "a" / "eval.csv").read_text().splitlines()[0]
    assert header == "step,samples,task,labelled,metric,value"
    curve = learning_curve(t.evals, "semantic")
    assert [x for x, _ in curve] == [e["labelled"] for e in t.evals
                                     if e["task"] == "semantic" and e["metric"] == "mIoU"]  # fmt: skip
    assert all(0 <= y <= 1 for _, y in curve)


def test_a_resumed_run_keeps_its_counts_and_curve(tmp_path):
    straight = make(tmp_path / "a", eval_every=2, eval_images=2)
    straight.run()
    stopped = make(tmp_path / "b", eval_every=2, eval_images=2)
    stopped.run(steps=4)
    resumed = Trainer.resume(tmp_path / "b" / "checkpoint.pt", progress=False, eval_every=2,
                             eval_images=2, prefetch=False)  # fmt: skip
    assert resumed.labelled == stopped.labelled
    resumed.run()
    assert resumed.labelled == straight.labelled
    key = [(e["step"], e["task"], e["metric"], e["labelled"]) for e in straight.evals]
    assert [(e["step"], e["task"], e["metric"], e["labelled"]) for e in resumed.evals] == key


def test_a_checkpoint_without_counts_gives_no_curve_points(tmp_path):
    t = make(tmp_path / "a", eval_every=3, eval_images=2)
    t.run()
    state = t.state_dict()
    del state["labelled"]
    for e in state["evals"]:
        del e["labelled"]
    ul.training.checkpoint.save_checkpoint(state, tmp_path / "old.pt")
    old = make(tmp_path / "c", eval_every=3, eval_images=2).load(tmp_path / "old.pt")
    assert all(math.isnan(v) for v in old.labelled.values())
    assert learning_curve(old.evals, "semantic") == []


def test_learning_curve_reads_one_task_and_column():
    evals = [
        {"step": 1, "samples": 2, "task": "semantic", "labelled": 1, "metric": "mIoU", "value": 0.1},
        {"step": 1, "samples": 2, "task": "normals", "labelled": 2, "metric": "mean", "value": 30.0},
        {"step": 2, "samples": 4, "task": "semantic", "labelled": 3, "metric": "mIoU",
         "value": float("nan")},
        {"step": 3, "samples": 6, "task": "semantic", "labelled": 4, "metric": "mIoU", "value": 0.3},
        {"step": 3, "samples": 6, "task": "normals", "labelled": 5, "metric": "median",
         "value": 9.0},
    ]  # fmt: skip
    assert learning_curve(evals, "semantic") == [(1.0, 0.1), (4.0, 0.3)]
    assert learning_curve(evals, "normals") == [(2.0, 30.0)]
    assert learning_curve(evals, "normals", "median") == [(5.0, 9.0)]
    assert learning_curve(evals, "parts") == []


def test_plot_learning_curves_one_panel_per_task():
    curves = {
        "seven-task": {"semantic": [(10, 0.1), (20, 0.2)], "normals": [(10, 30.0), (20, 20.0)]},
        "single-task": {"semantic": [(30, 0.25)], "normals": []},
    }
    metrics = {"semantic": "mIoU", "normals": "mean", "parts": "mIoU"}
    fig = ul.viz.plot_learning_curves(
        curves, metrics, targets={"semantic": 0.3}, caption="val split, 32 images"
    )
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["semantic", "normals", "parts"]
    sem, nor, parts = panels
    assert len(sem.lines) == 3  # two models and the target
    assert list(sem.lines[0].get_ydata()) == pytest.approx([10.0, 20.0])  # percent
    assert list(nor.lines[0].get_ydata()) == pytest.approx([30.0, 20.0])  # degrees as they are
    assert len(nor.lines) == 1 and "lower is better" in nor.get_ylabel()
    assert any(t.get_text() == "no periodic evaluation" for t in parts.texts)
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + fig.legends
    labels = {t.get_text() for lg in legends for t in lg.get_texts()}
    assert {"seven-task", "single-task", "target"} <= labels
    with pytest.raises(ValueError, match="at least one task"):
        ul.viz.plot_learning_curves(curves, {})


# ---- the scales of the lite preset -------------------------------------------------------------


def test_quick_is_todays_lite_run_and_course_one_dict():
    quick = series.preset_settings("lite")
    assert quick == series.preset_settings("lite", scale="quick") == series.PRESET_SETTINGS["lite"]
    assert quick == dict(steps=600, image_size=64, micro_batch=2, short_batches=2, init="random")
    course = series.preset_settings("lite", scale="course")
    assert course == series.SCALE_SETTINGS["course"]
    assert series.preset_settings("lite", scale="full") == course  # the old name of notebook 11
    assert course["eval_every"] > 0 and course["eval_images"] > 0
    assert course["steps"] * course["micro_batch"] > quick["steps"] * quick["micro_batch"]
    shrunk = series.preset_settings("lite", scale="course", steps=4, eval_every=2)
    assert shrunk["steps"] == 4 and shrunk["eval_every"] == 2
    # the paper preset's settings rule: scale is ignored
    assert series.preset_settings("paper", scale="course") == series.preset_settings("paper")
    with pytest.raises(ValueError, match="scale must be"):
        series.preset_settings("lite", scale="huge")
    with pytest.raises(TypeError, match="unknown run setting"):
        series.preset_settings("lite", eval_evry=3)
    assert series.SCALE_TEST_IMAGES["course"] >= 128


def test_course_runs_have_their_own_cache_folders():
    assert series.series_dir_name("seven_task") == "seven_task"
    assert series.series_dir_name("seven_task", scale="course") == "seven_task-course"
    assert series.series_dir_name("x", "lite", "real", "course") == "x-lite-real-course"
    assert series.series_dir_name("x", "paper", "synthetic", "course") == "x-paper-synthetic"


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("UBERNET_OUTPUTS", str(tmp_path))
    return tmp_path


TINY = dict(image_size=64, micro_batch=1, union_length=20, progress=False, prefetch=False)


def test_pretrained_hook_gives_every_run_the_same_trunk(outputs, monkeypatch):
    cfg = make_config("lite", tasks=["saliency"])
    torch.manual_seed(7)
    trunk = ul.model.UberNet(cfg).trunk.state_dict()
    path = outputs / "trunk.pt"
    calls = []

    def pretrained_init(cfg, image_size=None, train=True, verbose=True):
        calls.append(train)
        if not train and not path.is_file():
            return None
        torch.save(trunk, path)
        return f"trunk:{path}"

    monkeypatch.setattr(runs_mod, "pretrained_init", pretrained_init)
    kw = dict(tasks=["saliency"], steps=0, init="pretrained", short_batches=1, **TINY)
    assert series.series_run("q", train=False, **kw) is None  # look-up only: nothing pretrained
    assert calls == [False]
    run = series.series_run("q", **kw)
    assert run.settings.init == f"trunk:{path}"
    for k, v in run.model.trunk.state_dict().items():
        assert torch.equal(v, trunk[k]), k
    assert series.series_run("q", train=False, **kw).cached


def test_trunk_init_names_a_missing_file(tmp_path):
    model = ul.model.UberNet(make_config("lite", tasks=["saliency"]))
    with pytest.raises(FileNotFoundError, match="no trunk state dict"):
        ul.training.init.init_trunk(model, f"trunk:{tmp_path / 'nope.pt'}")
    with pytest.raises(ValueError, match="init must be"):
        ul.training.settings.TrainSettings.from_kwargs({"init": "pretrainedd"})


def test_a_cached_run_keeps_its_curve_also_when_trained_in_chunks(outputs, monkeypatch):
    cfg = make_config("lite", tasks=["saliency"])
    seen, saved = [], []
    save = Trainer.save
    monkeypatch.setattr(Trainer, "save", lambda self, *a: saved.append(self.step) or save(self, *a))
    kw = dict(eval_every=2, eval_images=2, eval_thresholds=5, **TINY)
    run = series.cached_run("c", cfg, steps=4, on_chunk=lambda t: seen.append(t.step), chunk=3,
                            verbose=False, **kw)  # fmt: skip
    assert seen == [3, 4]
    assert saved == [3, 4]  # one checkpoint per chunk, the last one written once
    steps = sorted({e["step"] for e in run.evals})
    assert steps == [2, 4]
    again = series.cached_run("c", cfg, steps=4, verbose=False, **kw)
    assert again.cached and again.evals == run.evals and again.labelled == run.labelled
    assert len(learning_curve(again.evals, "saliency")) == 2


def test_train_runs_pretrains_once_before_the_runs(outputs, monkeypatch):
    torch.manual_seed(3)
    trunk = ul.model.UberNet(make_config("lite", tasks=["saliency"])).trunk.state_dict()
    path = outputs / "trunk.pt"
    calls = []

    def pretrained_init(cfg, image_size=None, train=True, verbose=True):
        calls.append((train, path.is_file()))
        if not path.is_file():
            if not train:
                return None
            torch.save(trunk, path)
        return f"trunk:{path}"

    monkeypatch.setattr(runs_mod, "pretrained_init", pretrained_init)
    kw = dict(steps=1, init="pretrained", short_batches=1, **TINY)
    runs = {"a": dict(tasks=["saliency"], **kw), "b": dict(tasks=["normals"], **kw)}
    assert series.train_runs(runs, workers=1) == ["a", "b"]
    assert calls[:2] == [(False, False), (False, False)]  # the look-ups train nothing
    assert calls[2] == (True, False)  # then the stage runs once, before any run
    assert all(done for _, done in calls[3:])  # every later call finds it cached
    for name in runs:
        run = series.series_run(name, **runs[name])
        assert run.cached and run.settings.init == f"trunk:{path}"
