"""Losses: values on hand-worked cases, ignore handling, gradients (gradcheck), MIL vs BCE, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ubernet_lite import losses as L
from ubernet_lite.tasks import TASKS


def _line_target(b=1, h=12, w=12, row=6):
    t = torch.zeros(b, h, w, dtype=torch.uint8)
    t[:, row, 2:-2] = 1
    return t


# ----------------------------------------------------------------------------------------------
# values
# ----------------------------------------------------------------------------------------------
def test_cross_entropy_matches_hand_value_and_ignores_255():
    # 1 sample, 2 classes, 1x2 image: pixel 0 logits (0, 0) label 1 -> log 2; pixel 1 ignored
    logits = torch.zeros(1, 2, 1, 2)
    logits[0, :, 0, 1] = torch.tensor([50.0, -50.0])  # would cost 100 if it were label 1
    target = torch.tensor([[[1, 255]]])
    assert L.cross_entropy(logits, target).item() == pytest.approx(math.log(2), abs=1e-6)


def test_cross_entropy_per_sample_and_empty_sample_is_zero():
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    target[1] = 255
    loss = L.cross_entropy(logits, target)
    assert loss.shape == (2,)
    expected0 = F.cross_entropy(logits[:1], target[:1])
    assert loss[0].item() == pytest.approx(expected0.item(), rel=1e-6)
    assert loss[1].item() == 0.0


def test_binary_cross_entropy_hand_value():
    logits = torch.tensor([[[[0.0, 2.0]]]])
    target = torch.tensor([[[1, 0]]], dtype=torch.uint8)
    expected = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert L.binary_cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_normals_l1_zero_for_parallel_prediction_and_hand_value():
    gt = torch.zeros(1, 3, 1, 3)
    gt[0, 2] = 1.0  # facing the camera
    gt[0, :, 0, 2] = 0.0  # invalid pixel (zero vector): ignored
    pred = torch.zeros(1, 3, 1, 3)
    pred[0, 2, 0, 0] = 7.0  # parallel, any length: 0
    pred[0, 0, 0, 1] = 1.0  # orthogonal (1, 0, 0) vs (0, 0, 1): L1 = 2
    pred[0, 0, 0, 2] = 5.0  # at the invalid pixel: not counted
    assert L.normals_l1(pred, gt).item() == pytest.approx((0.0 + 2.0) / 2, abs=1e-6)


def test_hed_balanced_weights():
    # 1 positive of 4 valid pixels: beta = 3/4 on the positive, 1/4 on the negatives; 1 ignored
    logits = torch.zeros(1, 1, 1, 5)
    target = torch.tensor([[[1, 0, 0, 0, 255]]], dtype=torch.uint8)
    expected = (0.75 * math.log(2) + 3 * 0.25 * math.log(2)) / 4
    assert L.hed_balanced(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_mil_bag_takes_the_max_and_near_pixels_are_not_negatives():
    t = _line_target()
    logits = torch.full((1, 1, 12, 12), -8.0)
    logits[0, 0, 7, 2:-2] = 8.0  # confident one pixel below the annotation
    mil = L.mil_boundary(logits, t).item()
    # positives: -log s(8) each; negatives: far pixels -log(1 - s(-8)); both ~ 3.4e-4
    assert mil == pytest.approx(F.softplus(torch.tensor(-8.0)).item(), rel=1e-3)


def test_mil_off_by_one_costs_far_less_than_bce():
    """An annotation off by one pixel (the prediction is the true contour): MIL tolerates it."""
    t = _line_target(h=16, w=16, row=8)
    logits = torch.full((1, 1, 16, 16), -6.0)
    logits[0, 0, 9, 2:-2] = 6.0  # contour one row below the annotation
    for bag in ("normal", "window"):
        mil = L.mil_boundary(logits, t, bag=bag).item()
        bce = L.binary_cross_entropy(logits, t).item()
        assert mil < 0.05 * bce, (bag, mil, bce)
    # ... but not beyond the bag radius
    far = torch.full((1, 1, 16, 16), -6.0)
    far[0, 0, 11, 2:-2] = 6.0
    assert L.mil_boundary(far, t).item() > 20 * L.mil_boundary(logits, t).item()


def test_mil_normal_bags_follow_the_contour_direction():
    # vertical contour: a horizontal shift is inside the normal bag, a vertical one along it isn't
    t = torch.zeros(1, 16, 16, dtype=torch.uint8)
    t[0, 4:12, 8] = 1
    side = torch.full((1, 1, 16, 16), -6.0)
    side[0, 0, 4:12, 9] = 6.0
    assert L.mil_boundary(side, t, bag="normal").item() < 0.01


def test_multilabel_semantic_boundaries_shape_and_ignore():
    t = torch.zeros(2, 3, 10, 10, dtype=torch.uint8)
    t[:, 1, 5, :] = 1
    t[1] = 255  # second sample unlabelled
    logits = torch.randn(2, 3, 10, 10)
    loss = L.mil_boundary(logits, t, task="semantic_boundaries")
    assert loss.shape == (2,) and loss[0] > 0 and loss[1] == 0


# ----------------------------------------------------------------------------------------------
# gradients
# ----------------------------------------------------------------------------------------------
def _g(x):
    return x.double().requires_grad_(True)


def test_gradcheck_cross_entropy():
    torch.manual_seed(0)
    logits = _g(torch.randn(2, 3, 3, 3))
    target = torch.randint(0, 3, (2, 3, 3))
    target[0, 0, 0] = 255
    assert torch.autograd.gradcheck(lambda x: L.cross_entropy(x, target), (logits,))


def test_gradcheck_binary_cross_entropy_and_hed():
    torch.manual_seed(0)
    logits = _g(torch.randn(2, 1, 4, 4))
    target = (torch.rand(2, 4, 4) > 0.6).to(torch.uint8)
    target[1, 0, 0] = 255
    assert torch.autograd.gradcheck(lambda x: L.binary_cross_entropy(x, target), (logits,))
    assert torch.autograd.gradcheck(lambda x: L.hed_balanced(x, target), (logits,))


def test_gradcheck_normals_away_from_zero():
    torch.manual_seed(0)
    pred = torch.randn(2, 3, 3, 3)
    pred = _g(pred + 0.5 * torch.sign(pred))  # every vector well away from 0
    gt = F.normalize(torch.randn(2, 3, 3, 3), dim=1)
    gt[0, :, 0, 0] = 0
    assert torch.autograd.gradcheck(lambda x: L.normals_l1(x, gt), (pred,))


def test_gradcheck_mil_without_ties():
    torch.manual_seed(0)
    t = _line_target(b=1, h=8, w=8, row=4)
    logits = _g(torch.randn(1, 1, 8, 8) * 3)  # distinct values: every bag has a unique max
    for bag in ("normal", "window"):
        assert torch.autograd.gradcheck(lambda x, bag=bag: L.mil_boundary(x, t, bag=bag), (logits,))
        assert torch.autograd.gradcheck(
            lambda x, bag=bag: L.mil_boundary(x, t, bag=bag, balanced=True), (logits,)
        )


# ----------------------------------------------------------------------------------------------
# task_loss: dispatch + deep supervision
# ----------------------------------------------------------------------------------------------
class _Outputs(dict):
    """Stand-in for the model's TaskOutputs (a dict with .scales)."""

    def __init__(self, *a, scales=None, **k):
        super().__init__(*a, **k)
        self.scales = scales or {}


def test_task_loss_sums_fused_and_every_scale():
    spec = TASKS["semantic"]
    k = spec.out_channels
    target = torch.randint(0, k, (2, 6, 6))
    fused, s1, s2 = torch.randn(2, k, 6, 6), torch.randn(2, k, 6, 6), torch.randn(2, k, 6, 6)
    out = _Outputs({"semantic": fused}, scales={"semantic": [s1, s2]})
    batch = {"targets": {"semantic": target}}
    expected = sum(L.cross_entropy(x, target) for x in (fused, s1, s2))
    torch.testing.assert_close(L.task_loss(spec, out, batch), expected)
    torch.testing.assert_close(L.task_loss(spec, fused, batch), L.cross_entropy(fused, target))


def test_task_loss_dispatches_every_dense_task():
    b, h, w = 2, 8, 8
    targets = {
        "boundaries": _line_target(b, h, w, 4),
        "saliency": (torch.rand(b, h, w) > 0.5).to(torch.uint8),
        "semantic": torch.randint(0, 7, (b, h, w)),
        "parts": torch.randint(0, 7, (b, h, w)),
        "semantic_boundaries": torch.zeros(b, 6, h, w, dtype=torch.uint8),
        "normals": F.normalize(torch.randn(b, 3, h, w), dim=1),
    }
    batch = {"targets": targets}
    for name, spec in TASKS.items():
        if name == "detection":
            continue
        out = {name: torch.randn(b, spec.out_channels, h, w)}
        loss = L.task_loss(spec, out, batch)
        assert loss.shape == (b,) and torch.isfinite(loss).all(), name


def test_task_loss_detection_spreads_over_labelled_samples():
    spec = TASKS["detection"]
    losses = {"loss_objectness": torch.tensor(0.5), "loss_rpn_box_reg": torch.tensor(0.25),
              "loss_classifier": torch.tensor(1.0), "loss_box_reg": torch.tensor(0.25)}  # fmt: skip
    batch = {
        "images": torch.zeros(3, 3, 8, 8),
        "has_label": {"detection": torch.tensor([True, False, True])},
    }
    loss = L.task_loss(spec, {"detection": losses}, batch)
    torch.testing.assert_close(loss, torch.tensor([2.0, 0.0, 2.0]))


def test_hed_selectable_through_the_spec():
    spec = TASKS["boundaries"].replace(loss="hed_balanced")
    t = _line_target()
    x = torch.randn(1, 1, 12, 12)
    torch.testing.assert_close(
        L.task_loss(spec, {"boundaries": x}, {"targets": {"boundaries": t}}), L.hed_balanced(x, t)
    )


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------
def test_errors_name_task_and_shape():
    with pytest.raises(ValueError, match=r"semantic.*\(2, 4, 4\)"):
        L.cross_entropy(
            torch.randn(2, 3, 4, 4), torch.zeros(2, 5, 5, dtype=torch.long), task="semantic"
        )
    with pytest.raises(ValueError, match=r"parts: labels must be in 0\.\.2 or 255"):
        L.cross_entropy(torch.randn(1, 3, 2, 2), torch.tensor([[[0, 1], [7, 255]]]), task="parts")
    with pytest.raises(ValueError, match=r"boundaries.*0, 1 or 255"):
        L.mil_boundary(torch.randn(1, 1, 2, 2), torch.tensor([[[0, 2], [1, 1]]], dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"normals.*\[B, 3, H, W\]"):
        L.normals_l1(torch.randn(1, 3, 4, 4), torch.randn(1, 3, 5, 4))
    with pytest.raises(ValueError, match=r"saliency.*\[B, 1, H, W\]"):
        L.binary_cross_entropy(torch.randn(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.uint8))
