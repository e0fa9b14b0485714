"""The trainer: logs, checkpoints, exact resumption, clear errors."""

from __future__ import annotations

import csv

import pytest
import torch

import ubernet_lite as ul
from ubernet_lite.training.checkpoint import load_checkpoint
from ubernet_lite.training.trainer import Trainer

TASKS = ["semantic", "normals", "detection"]
SETTINGS = dict(
    tasks=TASKS,
    image_size=64,
    micro_batch=2,
    union_length=40,
    momentum=0.9,
    lr=0.01,
    batch_sizes={"shared": 3, "semantic": 2, "normals": 2, "detection": 1},
)


def cfg(**kw):
    """A lite config made smaller still: tests check bookkeeping, not accuracy."""
    kw = {"width": 1 / 16, "fc_channels": 32, "pyramid_scales": (1.0, 0.5), **kw}
    return ul.config.UberNetConfig.lite(tasks=TASKS, **kw)


def make(out, steps=6, **kw):
    return Trainer(cfg(), out=out, steps=steps, progress=False, **SETTINGS, **kw)


def test_resumed_run_ends_where_a_straight_run_ends(tmp_path):
    """(d) stop at step 3, resume from the checkpoint: same parameters as one run of 6 steps."""
    # the straight run also evaluates (on another RNG stream) and does not prefetch
    straight = make(tmp_path / "a", checkpoint_every=3, prefetch=False, eval_every=3, eval_images=2)
    straight.run()
    assert {e["task"] for e in straight.evals} == set(TASKS)
    assert sorted({e["step"] for e in straight.evals}) == [3, 6]
    assert (tmp_path / "a" / "eval.csv").is_file()
    stopped = make(tmp_path / "b")
    stopped.run(steps=3)
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert ckpt["step"] == 3 and ckpt["stream"]["offset"] > 0
    assert any(g["count"] for g in ckpt["optimizer"]["groups"].values())  # mid-accumulation
    torch.manual_seed(1234)  # whatever happened in between must not matter
    resumed = Trainer.resume(tmp_path / "b" / "checkpoint.pt", progress=False)
    assert resumed.step == 3
    resumed.run()
    assert resumed.step == straight.step == 6
    assert sum(straight.opt.num_updates.values()) > 0
    for (n, p), q in zip(
        straight.model.named_parameters(), resumed.model.parameters(), strict=True
    ):
        assert torch.equal(p, q), n
    for (n, b), c in zip(straight.model.named_buffers(), resumed.model.buffers(), strict=True):
        assert torch.equal(b, c), n
    assert [r["total"] for r in straight.history] == [r["total"] for r in resumed.history]
    # and the model did train
    init = make(None)
    assert not all(
        torch.equal(p, q)
        for p, q in zip(init.model.parameters(), straight.model.parameters(), strict=True)
    )


def test_logs_csv_and_plot(tmp_path):
    t = make(tmp_path, steps=3)
    t.run()
    rows = list(csv.DictReader(open(tmp_path / "losses.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert set(TASKS) <= set(rows[0])
    assert any(r["semantic"] for r in rows) and float(rows[0]["total"]) > 0
    assert (tmp_path / "loss_curves.png").stat().st_size > 1000


def test_checkpoint_from_another_config_is_a_clear_error(tmp_path):
    make(tmp_path, steps=1).run()
    other = Trainer(cfg(fc_channels=64), steps=1, progress=False, **SETTINGS)
    with pytest.raises(ValueError, match=r"another config .*fc_channels"):
        other.load(tmp_path / "checkpoint.pt")
    other = make(None, steps=1, seed=3)
    with pytest.raises(ValueError, match=r"other settings .*seed"):
        other.load(tmp_path / "checkpoint.pt")
    (tmp_path / "junk.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_bad_settings():
    with pytest.raises(TypeError, match="unknown training setting"):
        Trainer(cfg(), steps=1, learning_rate=0.1)
    with pytest.raises(ValueError, match="optimizer must be"):
        Trainer(cfg(), steps=1, optimizer="adam")
    with pytest.raises(KeyError, match="not in the config"):
        Trainer(cfg(), steps=1, tasks=["saliency"])


def test_cli_train_evaluate_predict(tmp_path, capsys):
    from ubernet_lite.cli import main

    out = tmp_path / "run"
    common = ["--image-size", "64", "--union-length", "40", "--no-progress"]
    assert (
        main(["train", "--tasks", "semantic,normals", "--steps", "2", "--out", str(out), *common])
        == 0
    )
    assert (out / "checkpoint.pt").is_file() and (out / "losses.csv").is_file()
    assert (
        main(["train", "--resume", str(out / "checkpoint.pt"), "--steps", "3", "--no-progress"])
        == 0
    )
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 3
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.pt"), "--images", "2"]) == 0
    assert "mIoU=" in capsys.readouterr().out
    png = tmp_path / "pred.png"
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(out / "checkpoint.pt"),
                "--index",
                "1",
                "--out",
                str(png),
            ]
        )
        == 0
    )
    assert png.stat().st_size > 1000
    with pytest.raises(SystemExit, match=r"batch_sizes\['shared'\] must be an integer >= 1"):
        main(
            [
                "train",
                "--batch-sizes",
                "shared=0",
                "--steps",
                "1",
                "--out",
                str(tmp_path / "x"),
                *common,
            ]
        )
    with pytest.raises(SystemExit, match="unknown task 'foo'"):
        main(["train", "--tasks", "foo", "--out", str(tmp_path / "y")])
