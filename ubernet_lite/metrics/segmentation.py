"""Mean intersection-over-union from an accumulated confusion matrix (Tables 3 and 4 of the paper).

PASCAL VOC's protocol: one ``K x K`` confusion matrix ``C[gt, pred]`` summed over every pixel of
the data set whose label is not 255; per class ``IoU_k = C_kk / (sum_j C_kj + sum_j C_jk - C_kk)``
(true positives over the union of ground truth and prediction); mIoU is the mean over the classes
that occur (in the ground truth or the predictions) at least once.
"""

from __future__ import annotations

import math

import torch

__all__ = ["SegmentationMeter", "confusion_matrix", "mean_iou"]

IGNORE = 255


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, task: str = "semantic"
) -> torch.Tensor:
    """``[K, K]`` int64 counts ``C[gt, pred]`` over the non-ignored pixels.

    Args:
        pred: logits ``[B, K, H, W]`` or labels ``[B, H, W]``.
        target: int64 ``[B, H, W]`` in ``0..K-1`` or 255.
    """
    pred = torch.as_tensor(pred).detach()
    target = torch.as_tensor(target).detach().long()
    if pred.dim() == 4:
        if pred.shape[1] != num_classes:
            raise ValueError(
                f"{task}: expected logits [B, {num_classes}, H, W], got {tuple(pred.shape)}"
            )
        pred = pred.argmax(1)
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(
            f"{task}: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ; "
            f"expected labels [B, H, W] = {tuple(pred.shape)}"
        )
    valid = target != IGNORE
    bad = valid & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        raise ValueError(
            f"{task}: labels must be in 0..{num_classes - 1} or {IGNORE} (ignore), "
            f"found {sorted(target[bad].unique().tolist())[:5]}"
        )
    t, p = target[valid], pred.long()[valid]
    return (
        torch.bincount(t * num_classes + p, minlength=num_classes**2)
        .reshape(num_classes, num_classes)
        .cpu()
    )


def mean_iou(conf: torch.Tensor) -> dict[str, float]:
    """``{"mIoU": mean over present classes, "IoU": per-class list (NaN when absent)}``."""
    conf = conf.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
    present = union > 0
    miou = float(iou[present].mean()) if bool(present.any()) else math.nan
    return {"mIoU": miou, "IoU": iou.tolist()}


class SegmentationMeter:
    """Accumulates a confusion matrix; :meth:`compute` returns ``{"mIoU", "IoU"}`` (NaN if empty).

    Args:
        num_classes: K, background included.
        task: name used in error messages.
    """

    def __init__(self, num_classes: int, task: str = "semantic"):
        self.num_classes = num_classes
        self.task = task
        self.conf = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred, target) -> None:
        """``pred`` logits ``[B, K, H, W]`` or labels ``[B, H, W]``; ``target`` ``[B, H, W]``."""
        self.conf += confusion_matrix(pred, target, self.num_classes, self.task)

    def compute(self) -> dict[str, float]:
        return mean_iou(self.conf)
