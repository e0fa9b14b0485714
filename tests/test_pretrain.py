"""The shared pretraining stage (training/pretrain.py): it learns, it is cached, runs start from it."""

from __future__ import annotations

import pytest
import torch

from ubernet_lite.config import make_config
from ubernet_lite.data import SynthWorld, diverse_union
from ubernet_lite.data.synthetic.views import COURSE_TABLE, union_table
from ubernet_lite.training import Trainer
from ubernet_lite.training import pretrain as pt
from ubernet_lite.training.settings import TrainSettings

TINY = pt.PretrainSettings(size=64, samples=96, micro_batch=8, lr=0.05, warmup=0)


@pytest.fixture(scope="module")
def cfg():
    return make_config("lite", tasks="semantic", width=1 / 16, fc_channels=32)


@pytest.fixture(scope="module")
def cached(cfg, tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    torch.set_num_threads(1)
    return root, pt.pretrained_trunk(cfg, TINY, root=root, verbose=False)


def test_presence_labels_are_the_visible_classes():
    data = pt.PresenceImages(64, 4, seed=3, styles=("scene",))
    image, presence = data[1]
    sample = SynthWorld(split="train", size=64, seed=pt.stable_seed(3, "pretrain", "scene"))[1]
    assert torch.equal(image, sample["image"])
    assert presence.shape == (6,)
    assert set(torch.nonzero(presence).flatten().add(1).tolist()) == set(sample["labels"].tolist())


def test_pretraining_images_are_not_the_unions_or_the_test_splits():
    data = pt.PresenceImages(64, 2, seed=0, styles=("scene",))
    union = diverse_union(split="train", size=64, seed=0, length=20)
    test = SynthWorld(split="test", size=64, seed=0)
    image = data[0][0]
    assert not torch.equal(image, test[0]["image"])
    assert all(not torch.equal(image, union[i]["image"]) for i in range(len(union)))


def test_pretraining_loss_falls_and_the_trunk_changes(cfg, cached):
    _, path = cached
    state = pt.load_trunk_file(path)
    losses = [r["loss"] for r in state["history"]]
    assert len(losses) == TINY.samples // TINY.micro_batch
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.02
    torch.manual_seed(TINY.seed)
    fresh = pt.trunk_of(cfg).state_dict()
    changed = [k for k, v in state["trunk"].items() if not torch.allclose(v, fresh[k])]
    assert len(changed) > len(fresh) // 2


def test_the_cache_is_read_not_retrained(cfg, cached, monkeypatch):
    root, path = cached

    def boom(*a, **k):
        raise AssertionError("pretrain ran again")

    monkeypatch.setattr(pt, "pretrain", boom)
    assert pt.pretrained_trunk(cfg, TINY, root=root, verbose=False) == path
    other = pt.PretrainSettings(**{**TINY.__dict__, "lr": 0.01})
    assert pt.cache_key(cfg, other) != pt.cache_key(cfg, TINY)
    with pytest.raises(AssertionError, match="ran again"):
        pt.pretrained_trunk(cfg, other, root=root, verbose=False)


def test_a_run_starts_from_the_pretrained_trunk(cfg, cached):
    _, path = cached
    init = f"trunk:{path.with_name(pt.STATE_FILE)}"
    trainer = Trainer(cfg, out=None, steps=1, progress=False, prefetch=False, image_size=64,
                      init=init)  # fmt: skip
    trunk = pt.load_trunk_file(path)["trunk"]
    for k, v in trainer.model.trunk.state_dict().items():
        assert torch.equal(v, trunk[k]), k
    trainer.close()


def test_another_architecture_is_refused(cached):
    _, path = cached
    wider = make_config("lite", tasks="semantic")
    with pytest.raises(RuntimeError, match="size mismatch"):
        Trainer(wider, out=None, steps=1, progress=False, prefetch=False, image_size=64,
                init=f"trunk:{path.with_name(pt.STATE_FILE)}")  # fmt: skip
    assert pt.cache_key(wider, TINY) != pt.cache_key(
        make_config("lite", width=1 / 16, fc_channels=32), TINY
    )


def test_pretrained_init_is_the_series_hook(cfg, tmp_path, monkeypatch):
    assert pt.pretrained_init(cfg, image_size=64, train=False, root=tmp_path) is None
    calls = []
    monkeypatch.setattr(
        pt,
        "pretrain",
        lambda c, s, progress=False: (
            calls.append(s)
            or {"trunk": pt.trunk_of(c).state_dict(), "wall_s": 0.0, "val_before": {}, "val": {}}
        ),
    )
    init = pt.pretrained_init(cfg, image_size=64, root=tmp_path, verbose=False)
    assert init.startswith("trunk:") and init.endswith(pt.STATE_FILE)
    assert [s.size for s in calls] == [64] and calls[0].samples == pt.PretrainSettings().samples
    assert pt.pretrained_init(cfg, image_size=64, train=False, root=tmp_path) == init
    assert len(calls) == 1


def test_settings_check_init_and_union():
    with pytest.raises(ValueError, match="init must be"):
        TrainSettings(init="imagenette").check()
    with pytest.raises(ValueError, match="union must be"):
        TrainSettings(union="").check()
    with pytest.raises(ValueError, match="union must be one of"):
        union_table("nope")
    assert union_table("course") is COURSE_TABLE


def _person_heights(data, n):
    out = []
    for i in range(n):
        s = data[i]
        out += (s["boxes"][:, 3] - s["boxes"][:, 1])[s["labels"] == 6].tolist()
    return sorted(out)


def test_the_course_union_has_a_parts_member_with_large_people():
    union = diverse_union(split="train", size=96, seed=0, length=50, table=COURSE_TABLE)
    member = union.member("pascal_part")
    sample = member[0]
    assert sample["has_label"]["parts"] and not sample["has_label"]["semantic"]
    assert (sample["parts"] > 0).any()
    people = _person_heights(SynthWorld(split="train", size=96, seed=0, style="person"), 12)
    scene = _person_heights(SynthWorld(split="train", size=96, seed=0), 24)
    assert len(people) == 12  # one person in every image
    assert people[len(people) // 2] > 1.6 * scene[len(scene) // 2]
