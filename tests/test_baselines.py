"""Trivial baselines: constants fitted on labelled samples, scored by ``ul.metrics.evaluate``."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import Subset

import ubernet_lite as ul
from ubernet_lite.baselines import TrivialBaseline
from ubernet_lite.tasks import TASKS

H = W = 8


def _sample(**targets) -> dict:
    """A hand-made sample carrying only ``targets`` (has_label False for the rest)."""
    s = {"image": torch.zeros(3, H, W), "has_label": {t: t in targets for t in ul.tasks.TARGETS}}
    s.update(targets)
    return s


def test_majority_class_from_counts_ignores_255_and_unlabelled_samples():
    a = torch.full((H, W), 2, dtype=torch.int64)
    a[:2] = 255  # ignored pixels do not count
    b = torch.zeros(H, W, dtype=torch.int64)
    b[:5] = 3  # 40 pixels of class 3 vs 24 of class 0
    samples = [_sample(semantic=a), _sample(semantic=b), _sample()]  # 48 x class 2
    base = TrivialBaseline([TASKS["semantic"]], samples)
    out = base(torch.zeros(2, 3, 5, 6))["semantic"]
    assert out.shape == (2, TASKS["semantic"].out_channels, 5, 6)
    assert (out.argmax(1) == 2).all()
    # without the first sample, class 3 (40 px) beats class 0 (24 px)
    base = TrivialBaseline([TASKS["semantic"]], samples[1:])
    assert (base(torch.zeros(1, 3, 4, 4))["semantic"].argmax(1) == 3).all()


def test_mean_normal_is_renormalised_and_saliency_is_the_foreground_rate():
    n1 = torch.zeros(3, H, W)
    n1[2] = 1.0
    n2 = torch.zeros(3, H, W)
    n2[1] = -1.0
    sal = torch.zeros(H, W, dtype=torch.int64)
    sal[:2] = 1  # 16 of 64 pixels -> rate 0.25
    samples = [_sample(normals=n1), _sample(normals=n2), _sample(saliency=sal)]
    base = TrivialBaseline([TASKS["normals"], TASKS["saliency"]], samples)
    out = base(torch.zeros(1, 3, 4, 4))
    expected = torch.tensor([0.0, -1.0, 1.0]) / math.sqrt(2)
    assert torch.allclose(out["normals"][0, :, 0, 0], expected, atol=1e-6)
    assert torch.allclose(out["saliency"].sigmoid(), torch.full((1, 1, 4, 4), 0.25), atol=1e-5)


def test_boundaries_semantic_boundaries_and_detection_are_empty():
    specs = [TASKS["boundaries"], TASKS["semantic_boundaries"], TASKS["detection"]]
    out = TrivialBaseline(specs, [_sample()])(torch.zeros(3, 3, 4, 5))
    assert out["boundaries"].shape == (3, 1, 4, 5)
    assert out["boundaries"].sigmoid().max() < 1e-6
    assert out["semantic_boundaries"].shape == (3, TASKS["semantic_boundaries"].out_channels, 4, 5)
    assert out["semantic_boundaries"].sigmoid().max() < 1e-6
    assert len(out["detection"]) == 3
    assert all(d["boxes"].shape == (0, 4) and len(d["scores"]) == 0 for d in out["detection"])


def test_unknown_task_is_a_clear_error():
    base = TrivialBaseline([TASKS["semantic"]], [_sample()])
    with pytest.raises(KeyError, match="no task 'normals'"):
        base(torch.zeros(1, 3, 4, 4), tasks=["normals"])
    with pytest.raises(ValueError, match="at least one TaskSpec"):
        TrivialBaseline([], [])


def test_evaluate_gives_the_trivial_numbers():
    world = ul.data.SynthWorld(split="train", size=64, seed=0, length=4)
    test = Subset(ul.data.SynthWorld(split="test", size=64, seed=0), range(3))
    base = TrivialBaseline(list(TASKS.values()), [world[i] for i in range(4)])
    rows = ul.metrics.evaluate(base, test, num_thresholds=5, progress=False)
    assert set(rows) == set(TASKS)
    assert rows["boundaries"]["ODS"] == 0.0
    assert rows["boundaries"]["AP"] == 0.0
    assert rows["semantic_boundaries"]["mMF"] == 0.0
    assert rows["detection"]["mAP_voc07"] == 0.0 and rows["detection"]["mAP"] == 0.0
    # background everywhere: IoU = background share for class 0, 0 for every other class present
    gt = torch.cat([test[i]["semantic"].flatten() for i in range(3)])
    gt = gt[gt != 255]
    assert (base(torch.zeros(1, 3, 1, 1))["semantic"].argmax(1) == 0).all()
    bg, present = float((gt == 0).float().mean()), len(set(gt.tolist()) | {0})
    assert rows["semantic"]["mIoU"] == pytest.approx(bg / present, abs=1e-6)
    # a constant normal is far from the scene's several planes
    assert rows["normals"]["mean"] > 20.0
    # the saliency MAE of a constant p is p * (1 - r) + (1 - p) * r for a foreground rate r
    r = torch.stack([(test[i]["saliency"] == 1).float().mean() for i in range(3)]).mean()
    p = base(torch.zeros(1, 3, 1, 1))["saliency"].sigmoid().item()
    assert rows["saliency"]["MAE"] == pytest.approx(float(p * (1 - r) + (1 - p) * r), abs=1e-4)
