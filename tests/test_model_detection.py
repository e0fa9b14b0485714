"""The detection branch: torchvision RPN + RoI heads on stride-8 features, image coordinates."""

import math

import pytest
import torch

from ubernet_lite.config import UberNetConfig
from ubernet_lite.model import UberNet
from ubernet_lite.tasks import TASKS

DET = TASKS["detection"]


def _targets():
    return [
        {
            "boxes": torch.tensor([[8.0, 10.0, 60.0, 70.0], [50.0, 20.0, 120.0, 90.0]]),
            "labels": torch.tensor([1, 3]),
        },
        None,  # no detection labels: skipped
        {"boxes": torch.tensor([[30.0, 30.0, 90.0, 100.0]]), "labels": torch.tensor([6])},
    ]


@pytest.mark.parametrize("roi_pool", ["align", "pool"])
def test_eval_boxes_inside_image(roi_pool):
    torch.manual_seed(0)
    model = UberNet(UberNetConfig.lite(tasks=[DET], roi_pool=roi_pool)).eval()
    with torch.no_grad():
        dets = model(torch.rand(2, 3, 96, 136))["detection"]
    assert len(dets) == 2
    for d in dets:
        assert set(d) == {"boxes", "labels", "scores"}
        b = d["boxes"]
        assert len(b) > 0
        assert (
            (b[:, 0] >= 0).all()
            and (b[:, 2] <= 136).all()
            and (b[:, 1] >= 0).all()
            and (b[:, 3] <= 96).all()
        )
        assert ((d["labels"] >= 1) & (d["labels"] <= DET.out_channels - 1)).all()


def test_boxes_mapped_from_level_to_input_pixels(monkeypatch):
    """With the finest level at scale 1/2, a box covering the level covers the whole image."""
    model = UberNet(UberNetConfig.lite(tasks=[DET], pyramid_scales=(0.5, 0.25))).eval()
    branch = model.heads["detection"]
    seen = {}

    def fake_roi_heads(features, proposals, image_shapes, targets=None):
        seen["shapes"] = image_shapes
        h, w = image_shapes[0]
        box = torch.tensor([[0.0, 0.0, w, h], [w / 4, h / 4, w / 2, h / 2]])
        return [{"boxes": box.clone(), "labels": torch.tensor([1, 2]), "scores": torch.ones(2)}], {}

    monkeypatch.setattr(branch.roi_heads, "forward", fake_roi_heads)
    with torch.no_grad():
        dets = model(torch.rand(1, 3, 100, 140))["detection"]
    assert seen["shapes"] == [(50, 70)]
    torch.testing.assert_close(
        dets[0]["boxes"], torch.tensor([[0.0, 0.0, 140, 100], [35, 25, 70, 50]])
    )


def test_anchor_stride_is_exactly_8():
    model = UberNet(
        UberNetConfig.lite(tasks=[DET], anchor_sizes=(32,), anchor_ratios=(1.0,))
    ).eval()
    branch = model.heads["detection"]
    feat = torch.zeros(1, 4, 41, 41)  # a 321 x 321 image at output stride 8
    anchors = branch.rpn.anchor_generator(branch._image_list(feat, (321, 321)), [feat])[0]
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    assert centres[:, 0].unique().diff().unique().tolist() == [8.0]
    assert centres.max().item() == 320.0  # cell 40 sits on pixel 320


def test_train_losses_finite_and_skip_unlabelled():
    torch.manual_seed(0)
    model = UberNet(UberNetConfig.lite(tasks=[DET, TASKS["semantic"]])).train()
    out = model(torch.rand(3, 3, 112, 128), targets=_targets())
    losses = out["detection"]
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    assert all(math.isfinite(v.item()) for v in losses.values())
    sum(losses.values()).backward()
    assert model.heads["detection"].roi_heads.box_predictor.cls_score.weight.grad is not None
    assert model.trunk.convs()[0].weight.grad.abs().sum() > 0


def test_train_without_any_labelled_image_gives_zero_losses():
    model = UberNet(UberNetConfig.lite(tasks=[DET])).train()
    losses = model(torch.rand(2, 3, 64, 64), targets=[None, None])["detection"]
    assert all(v.item() == 0 for v in losses.values())
    sum(losses.values()).backward()  # still connected to the graph


def test_train_needs_targets():
    model = UberNet(UberNetConfig.lite(tasks=[DET])).train()
    with pytest.raises(ValueError, match="targets"):
        model(torch.rand(1, 3, 64, 64))
