"""Training, evaluation and the CLI on the real data sets (``data="real"``), on a fixture root.

The root holds all eight sets in their on-disk formats, written by the fixture builders of
tests/test_real_datasets.py (tiny 12 x 16 images, a few per set), plus the split lists the test
sets need (VOC 2007 ``test.txt``, VOC 2012 ``Segmentation/val.txt``).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from test_real_datasets import (
    H,
    W,
    make_bsds,
    make_msra,
    make_nyu,
    make_parts,
    make_pascal_s,
    make_sbd,
    make_voc,
)

from ubernet_lite import experiments
from ubernet_lite.data import collate
from ubernet_lite.data.real import (
    TEST_SETS,
    DatasetNotFoundError,
    ResizeShortestSide,
    load_dataset,
    real_transforms,
)
from ubernet_lite.metrics.evaluate import COLUMNS
from ubernet_lite.tasks import TARGETS
from ubernet_lite.training.checkpoint import load_checkpoint
from ubernet_lite.training.real_data import ShortestSidePredictor
from ubernet_lite.training.stream import MicroBatchStream
from ubernet_lite.training.trainer import Trainer

SEG_VAL = "2008_000002"  # VOC 2012 segmentation val: the semantic test image
PARTS_VAL = "2008_000003"  # a person in VOC 2012 val with PASCAL-Part: the part test image


def fixture_root(r: Path) -> Path:
    make_voc(r, "2007")
    (r / "VOCdevkit/VOC2007/ImageSets/Main/test.txt").write_text("2007_000002\n2007_000003\n")
    v12 = ["2008_000001", SEG_VAL, PARTS_VAL, "2008_000004"]
    make_voc(r, "2012", ids=v12, seg_ids=[SEG_VAL], person={"2008_000001": 1, PARTS_VAL: 0})
    (r / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").write_text(f"{SEG_VAL}\n")
    make_sbd(r, train=("2008_000001",), val=("2008_000004",))
    make_parts(r, ["2008_000001", PARTS_VAL])
    make_nyu(r)
    make_msra(r)
    make_bsds(r)
    make_pascal_s(r)
    return r


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return fixture_root(tmp_path_factory.mktemp("ubernet_real"))


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("UBERNET_OUTPUTS", str(tmp_path / "outputs"))
    return tmp_path / "outputs"


def real_trainer(root, out=None, steps=3, cfg=None, **kw):
    cfg = cfg or experiments.make_config("lite", data="real")
    settings = dict(
        micro_batch=2,
        image_size=64,
        data="real",
        data_root=str(root),
        batch_sizes=experiments.short_run_batch_sizes(cfg),
        progress=False,
        prefetch=False,
        eval_thresholds=5,
    )
    return Trainer(cfg, out=out, steps=steps, **{**settings, **kw})


def test_transforms_make_any_real_image_a_square_crop(root):
    s = load_dataset("voc2012", root, "trainval")[1]  # 12 x 16 with VOC's semantic + boxes
    big = ResizeShortestSide(64)(s)
    assert big["image"].shape == (3, 64, 85) and big["semantic"].shape == (64, 85)
    assert big["boxes"][:, 2].max() > W  # boxes scaled with the image
    g = torch.Generator().manual_seed(0)
    samples = [real_transforms(64)(s, g) for _ in range(4)]
    assert all(x["image"].shape == (3, 64, 64) and x["semantic"].shape == (64, 64) for x in samples)
    padded = real_transforms(64)(s, torch.Generator().manual_seed(3))
    # values stay 0..20 or ignore 255 (padding and VOC's void), never interpolated
    assert set(padded["semantic"].unique().tolist()) <= set(range(21)) | {255}
    fixed = real_transforms(64, augment=False)
    assert torch.equal(fixed(s)["image"], fixed(s)["image"])
    sbd = load_dataset("sbd", root, "train")[0]
    batch = collate([samples[0], real_transforms(64)(sbd, g)])
    assert batch["images"].shape == (2, 3, 64, 64)
    assert batch["targets"]["semantic_boundaries"].shape == (2, 20, 64, 64)


def test_predictor_returns_the_images_own_size():
    class Stub(torch.nn.Module):
        cfg = None

        def forward(self, images, tasks=None):
            B, _, h, w = images.shape
            box = torch.tensor([[0.0, 0.0, w, h]])
            return {
                "semantic": images[:, :1].repeat(1, 21, 1, 1),
                "detection": [{"boxes": box, "labels": torch.ones(1), "scores": torch.ones(1)}],
                "seen": torch.tensor([h, w]),
            }

    out = ShortestSidePredictor(Stub(), 64)(torch.rand(1, 3, H, W))
    assert out["semantic"].shape == (1, 21, H, W)
    assert out["seen"].tolist() == [64, 85]  # the network saw the image at a shorter side of 64
    torch.testing.assert_close(out["detection"][0]["boxes"], torch.tensor([[0.0, 0.0, W, H]]))


def test_real_training_losses_resume_and_evaluation(root, tmp_path):
    t = real_trainer(root, tmp_path / "run", steps=3, eval_images=2)
    # the union: every member; test images of VOC 2012 (semantic, parts) held out of training
    assert t.union.names == ["voc2007", "voc2012", "nyuv2", "msra10k", "bsds500"]
    assert t.union.member("voc2012").ids == ["2008_000001", "2008_000004"]
    assert t.union.label_table()["voc2012"]["semantic_boundaries"] == 1  # SBD train only
    t.run()
    assert len(t.history) == 3 and all(r["total"] > 0 for r in t.history)
    # the micro-batches the run drew, replayed: a task has a (finite) loss iff it was labelled
    targets = {t.cfg.task(n).target for n in t.tasks}
    replay = MicroBatchStream(t.union, targets, 2, 0)
    for row in t.history:
        idx = replay.next_indices()
        labelled = {
            n for n in t.tasks if any(t.union.label_mask(i)[t.cfg.task(n).target] for i in idx)
        }
        have = {n for n in t.tasks if not math.isnan(row[n])}
        assert have == labelled and labelled, row
        assert all(math.isfinite(row[n]) for n in have)
    # every task evaluated on its own test set, with its metric's columns
    rows = {}
    for e in t.evals:
        rows.setdefault(e["task"], set()).add(e["metric"])
    assert rows == {n: set(COLUMNS[t.cfg.task(n).metric]) for n in t.tasks}
    assert all(math.isfinite(e["value"]) for e in t.evals)
    sets = t.val_dataset()
    assert {n: (ds.dataset.name, ds.dataset.split) for n, ds in sets.items()} == {
        n: (TEST_SETS[n].name, TEST_SETS[n].split) for n in t.tasks
    }
    assert [sets["semantic"].dataset.ids[i] for i in sets["semantic"].indices] == [SEG_VAL]
    assert len(sets["boundaries"]) == 2 and len(sets["normals"]) == 1  # NYU test: 1 image
    # the checkpoint keeps the data settings and resumes on the real union
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["settings"]["data"] == "real" and state["settings"]["data_root"] == str(root)
    resumed = Trainer.resume(
        tmp_path / "run" / "checkpoint.pt", steps=4, progress=False, data_root=root
    )
    assert resumed.settings.data == "real" and resumed.step == 3
    resumed.run()
    assert resumed.step == 4 and math.isfinite(resumed.history[-1]["total"])
    # a synthetic run of the same config is another run: its trainer refuses the checkpoint
    synthetic = Trainer(t.cfg, steps=3, progress=False, **{**_settings(t), "data": "synthetic"})
    with pytest.raises(ValueError, match=r"other settings .*'data'"):
        synthetic.load(tmp_path / "run" / "checkpoint.pt")


def _settings(t: Trainer) -> dict:
    import dataclasses

    return dataclasses.asdict(t.settings)


def test_stream_skips_epochs_that_draw_no_labelled_sample(root):
    """A tiny union drawn with replacement: some epochs miss its 2 semantic images."""
    cfg = experiments.make_config("lite", tasks="semantic", data="real")
    t = real_trainer(root, cfg=cfg)
    assert t.union.names == ["voc2007", "voc2012"]
    stream = MicroBatchStream(t.union, {"semantic"}, 2, 0)
    for _ in range(60):
        idx = stream.next_indices()
        assert idx and all(t.union.label_mask(i)["semantic"] for i in idx)
    state = stream.state_dict()
    again = MicroBatchStream(t.union, {"semantic"}, 2, 0)
    again.load_state_dict(state)  # an epoch that had to be skipped is not redrawn on resume
    assert again.next_indices() == stream.next_indices()


def test_checkpoints_without_the_data_fields_still_load(tmp_path):
    cfg = experiments.make_config("lite", tasks="saliency")
    a = Trainer(cfg, out=tmp_path, steps=0, progress=False, image_size=64, union_length=20)
    a.save()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    del state["settings"]["data"], state["settings"]["data_root"]  # an older checkpoint
    torch.save(state, tmp_path / "checkpoint.pt")
    b = Trainer.resume(tmp_path / "checkpoint.pt", progress=False)
    assert b.settings.data == "synthetic"


def test_config_must_have_voc_classes(root):
    with pytest.raises(ValueError, match=r"20 classes.*num_classes is 6.*make_config"):
        real_trainer(root, cfg=experiments.make_config("lite", tasks="semantic"))
    with pytest.raises(ValueError, match="data must be one of"):
        real_trainer(root, data="imagenet")


def test_missing_sets_name_the_set_and_its_script(tmp_path):
    make_msra(tmp_path)  # only MSRA10K
    with pytest.raises(DatasetNotFoundError, match=r"'voc2007'.*data_scripts/download_voc2007\.py"):
        real_trainer(tmp_path)
    # saliency trains on MSRA10K alone, but its test set PASCAL-S is missing
    saliency = experiments.make_config("lite", tasks="saliency", data="real")
    assert real_trainer(tmp_path, cfg=saliency, steps=1).union.names == ["msra10k"]
    with pytest.raises(DatasetNotFoundError, match=r"'pascal_s'.*download_pascal_s\.py"):
        real_trainer(tmp_path, cfg=saliency, eval_images=1)


def test_series_run_real_and_no_reuse_of_synthetic_runs(root, outputs, monkeypatch):
    calls = []
    step = Trainer.train_step

    def counted(self):
        calls.append(self.settings.data)
        return step(self)

    monkeypatch.setattr(Trainer, "train_step", counted)
    kw = dict(tasks="saliency,normals", steps=2, verbose=False, progress=False, prefetch=False)
    synthetic = experiments.series_run("tiny", union_length=8, **kw)
    assert synthetic.settings.data == "synthetic" and calls == ["synthetic"] * 2
    real = experiments.series_run("tiny", data="real", data_root=str(root), **kw)
    assert not real.cached and real.settings.data == "real" and calls[2:] == ["real"] * 2
    assert real.cfg.num_classes == 20
    again = experiments.series_run("tiny", data="real", data_root=str(root), **kw)
    assert again.cached and len(calls) == 4
    with pytest.raises(ValueError, match="data must be"):
        experiments.series_run("tiny", data="coco", **kw)


def test_cli_train_evaluate_predict_real(root, tmp_path, capsys):
    from ubernet_lite.cli import main

    out = tmp_path / "cli"
    args = ["train", "--preset", "lite", "--data", "real", "--data-root", str(root)]
    args += ["--tasks", "saliency,boundaries", "--steps", "2", "--image-size", "64"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == 2 and state["settings"]["data"] == "real"
    assert state["config"]["num_classes"] == 20
    capsys.readouterr()
    ckpt = str(out / "checkpoint.pt")
    assert main(["evaluate", "--checkpoint", ckpt, "--images", "1", "--thresholds", "5"]) == 0
    text = capsys.readouterr().out
    assert "maxF=" in text and "ODS=" in text and "pascal_s test" in text and "bsds500" in text
    png = tmp_path / "pred.png"
    assert main(["predict", "--checkpoint", ckpt, "--index", "1", "--out", str(png)]) == 0
    assert png.stat().st_size > 1000
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = ["train", "--data", "real", "--data-root", str(empty), "--out", str(tmp_path / "x")]
    with pytest.raises(SystemExit) as e:
        main([*bad, "--steps", "1", "--no-progress"])
    msg = str(e.value)
    assert "\n" not in msg and "voc2007" in msg and "data_scripts/download_voc2007.py" in msg


def test_every_target_has_a_test_set():
    assert set(TEST_SETS) == set(TARGETS)
