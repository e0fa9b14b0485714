"""VOC detection IoU against the devkit's own arithmetic on the devkit's own coordinates.

The devkit (``VOCevaldet.m``; py-faster-rcnn's ``voc_eval``) reads 1-based inclusive pixel
indices ``[xmin, ymin, xmax, ymax]`` from the XML and computes widths as ``xmax - xmin + 1``.
Our loaders give the same box as pixel edges ``[xmin - 1, ymin - 1, xmax, ymax]``; the metric must
give the devkit's IoU (and so the devkit's true and false positives) on those edges.
"""

import numpy as np
import pytest
import torch

from ubernet_lite.metrics.detection import DetectionMeter, _iou


def devkit_iou(bb: np.ndarray, bbgt: np.ndarray) -> np.ndarray:
    """voc_eval's overlap of one detection ``bb`` [4] with ``bbgt`` [G, 4], 1-based inclusive."""
    ixmin = np.maximum(bbgt[:, 0], bb[0])
    iymin = np.maximum(bbgt[:, 1], bb[1])
    ixmax = np.minimum(bbgt[:, 2], bb[2])
    iymax = np.minimum(bbgt[:, 3], bb[3])
    iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
    ih = np.maximum(iymax - iymin + 1.0, 0.0)
    inters = iw * ih
    uni = (
        (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
        + (bbgt[:, 2] - bbgt[:, 0] + 1.0) * (bbgt[:, 3] - bbgt[:, 1] + 1.0)
        - inters
    )
    return inters / uni


def to_edges(devkit: np.ndarray) -> np.ndarray:
    """The loaders' conversion (data/voc.py): ``[xmin - 1, ymin - 1, xmax, ymax]``."""
    return devkit - np.array([1.0, 1.0, 0.0, 0.0])


def test_half_of_a_10x10_box_is_0_500():
    gt = np.array([[1.0, 1.0, 10.0, 10.0]])  # devkit: pixels 1..10 in x and y
    half = np.array([1.0, 1.0, 5.0, 10.0])  # pixels 1..5 in x: half of the box
    assert devkit_iou(half, gt)[0] == pytest.approx(0.5)
    assert _iou(to_edges(half), to_edges(gt))[0] == pytest.approx(0.5)  # was 0.545 with a +1


def test_iou_equals_the_devkit_on_random_boxes():
    rng = np.random.default_rng(0)
    lo = rng.integers(1, 60, (500, 2))
    hi = lo + rng.integers(0, 40, (500, 2))  # xmax >= xmin: a one-pixel box is legal
    boxes = np.concatenate([lo, hi], 1).astype(np.float64)
    for k in range(0, 500, 5):
        want = devkit_iou(boxes[k], boxes)
        got = _iou(to_edges(boxes[k]), to_edges(boxes))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_true_positives_are_the_devkits():
    """Borderline detections (devkit IoU just at or below 0.5) must stay false positives."""
    rng = np.random.default_rng(1)
    gts = []
    for _ in range(200):
        x, y = rng.integers(1, 50, 2)
        w, h = rng.integers(2, 30, 2)
        gts.append([x, y, x + w - 1, y + h - 1])
    gts = np.array(gts, np.float64)
    dets = gts + rng.integers(-6, 7, gts.shape)
    dets[:, 2:] = np.maximum(dets[:, 2:], dets[:, :2])
    devkit_tp = [devkit_iou(d, g[None])[0] > 0.5 for d, g in zip(dets, gts, strict=True)]
    assert 20 < sum(devkit_tp) < 180  # both kinds occur
    for d, g, tp in zip(dets, gts, devkit_tp, strict=True):
        m = DetectionMeter(1)
        m.update(
            [{"boxes": torch.from_numpy(to_edges(d)[None]), "labels": torch.tensor([1]),
              "scores": torch.tensor([1.0])}],
            [{"boxes": torch.from_numpy(to_edges(g)[None]), "labels": torch.tensor([1])}],
        )  # fmt: skip
        assert m.compute()["mAP"] == pytest.approx(1.0 if tp else 0.0)
