"""real_transforms resizes a training sample once: the shortest-side normalisation and the random
scale are one resize of the original image, with the geometry of the two-step version."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_trainer_real import fixture_root

import ubernet_lite.data.real.transforms as real_mod
import ubernet_lite.data.transforms as transforms_mod
from ubernet_lite.data import Compose, RandomScale, train_transforms
from ubernet_lite.data.real import (
    RandomScaleShortestSide,
    ResizeShortestSide,
    load_dataset,
    real_transforms,
)

SIZE = 64


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return fixture_root(tmp_path_factory.mktemp("real_transforms"))


@pytest.fixture(scope="module")
def samples(root) -> list[dict]:
    """A VOC 2012 sample (semantic, boxes) and an SBD one (semantic boundaries), 12 x 16."""
    return [load_dataset("voc2012", root, "trainval")[1], load_dataset("sbd", root, "train")[0]]


def two_step(size: int) -> Compose:
    """The former pipeline: the shortest side resized to ``size``, then train_transforms' own
    random scale resizes the result again."""
    return Compose([ResizeShortestSide(size), *train_transforms(size=size).transforms])


def count_resizes(monkeypatch) -> list[tuple[int, int]]:
    """Every call of ``resize`` (both modules' names for it) appends its target size."""
    calls = []
    original = transforms_mod.resize

    def counting(sample, size):
        calls.append(tuple(size))
        return original(sample, size)

    monkeypatch.setattr(transforms_mod, "resize", counting)
    monkeypatch.setattr(real_mod, "resize", counting)
    return calls


def test_a_training_sample_is_resized_once_from_the_original(samples, monkeypatch):
    calls = count_resizes(monkeypatch)
    for k, s in enumerate(samples):
        calls.clear()
        out = real_transforms(SIZE)(s, torch.Generator().manual_seed(k))
        assert len(calls) == 1 and out["image"].shape == (3, SIZE, SIZE)
        calls.clear()
        two_step(SIZE)(s, torch.Generator().manual_seed(k))
        assert len(calls) == 2  # what the counter sees in the former pipeline
    calls.clear()
    real_transforms(SIZE, augment=False)(samples[0])
    assert len(calls) == 1


@pytest.mark.parametrize("seed", range(6))
def test_one_resize_has_the_two_step_geometry(samples, seed, monkeypatch):
    calls = count_resizes(monkeypatch)
    for s in samples:
        calls.clear()
        two_step(SIZE)(s, torch.Generator().manual_seed(seed))
        _, scaled = calls  # the shortest-side resize, then the random scale's
        calls.clear()
        one = real_transforms(SIZE)(s, torch.Generator().manual_seed(seed))
        assert calls == [scaled]  # the same intermediate shape, reached in one resize
        ref = two_step(SIZE)(s, torch.Generator().manual_seed(seed))
        assert one.keys() == ref.keys() and one["has_label"] == ref["has_label"]
        for key, v in one.items():
            if torch.is_tensor(v) and key != "boxes":
                assert v.shape == ref[key].shape and v.dtype == ref[key].dtype, key
        # the same crop window: the padding (ignore 255) lies where it lay before, in every map
        # without a 255 of its own (VOC's void 255 inside the image: the blank test below)
        for key in ("semantic", "semantic_boundaries", "boundaries"):
            if key in one and not (s[key] == 255).any():
                assert torch.equal(one[key] == 255, ref[key] == 255), key
        if "boxes" in one:  # boxes scaled by the product of the two factors, then cropped
            torch.testing.assert_close(one["boxes"], ref["boxes"], atol=1e-3, rtol=1e-5)
            assert torch.equal(one["labels"], ref["labels"])


def test_labels_stay_labels_and_padding_is_ignore(samples):
    voc, sbd = samples
    blank = dict(voc, semantic=torch.zeros_like(voc["semantic"]))  # all background
    padded = 0
    for seed in range(8):
        g = torch.Generator().manual_seed(seed)
        out, ref = real_transforms(SIZE)(blank, g), two_step(SIZE)(blank, g.manual_seed(seed))
        # nearest labels: 0 inside the resized image, ignore 255 exactly where the crop is padded
        assert set(out["semantic"].unique().tolist()) <= {0, 255}
        assert torch.equal(out["semantic"], ref["semantic"])
        padded += int((out["semantic"] == 255).any())
        real = real_transforms(SIZE)(voc, torch.Generator().manual_seed(seed))
        assert set(real["semantic"].unique().tolist()) <= set(range(21)) | {255}
        edges = real_transforms(SIZE)(sbd, torch.Generator().manual_seed(seed))
        assert set(edges["semantic_boundaries"].unique().tolist()) <= {0, 1, 255}
        assert edges["semantic_boundaries"].shape == (20, SIZE, SIZE)
    assert 0 < padded < 8  # scales below 1 pad the crop, above 1 do not


def test_the_random_scale_is_drawn_as_random_scale_draws_it():
    t = RandomScaleShortestSide(10, (0.5, 2.0))
    image = torch.rand(3, 20, 40)
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        out = t({"image": image}, g)
        ref = RandomScale((0.5, 2.0))({"image": torch.rand(3, 10, 20)}, g.manual_seed(seed))
        assert out["image"].shape == ref["image"].shape
    assert RandomScaleShortestSide(10, (1.0, 1.0))({"image": image})["image"].shape == (3, 10, 20)
    with pytest.raises(ValueError, match="side must be >= 1"):
        RandomScaleShortestSide(0)
    with pytest.raises(ValueError, match="0 < lo <= hi"):
        RandomScaleShortestSide(10, (1.5, 1.0))
