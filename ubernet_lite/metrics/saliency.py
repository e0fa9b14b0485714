"""Saliency metrics: maximal F-measure (Table 6 of the paper) and mean absolute error.

Per image, the saliency probability ``s`` in [0, 1] is quantised to 256 levels
(``floor(255 s)``) and binarised at every threshold ``t = 0..255`` (``s >= t``); precision, recall and
``F = (1 + beta^2) P R / (beta^2 P + R)`` with ``beta^2 = 0.3`` are computed per image and threshold, the
F-curve is averaged over the images, and maxF is its maximum over the thresholds. MAE is the mean
over images of the mean absolute difference between ``s`` and the binary ground truth.

Cross-check with ``pysodmetrics`` (``py_sod_metrics.Fmeasure`` / ``MAE``, not a dependency): its
``beta`` argument is this beta^2 = 0.3; it also histograms ``uint8(255 s)`` into 256 bins, counts
``pred >= t`` from the top with cumulative sums, sets P = 0 when nothing is predicted (denominator
1) and R = TP / max(|GT|, 1), F = 0 where P R = 0, and takes the max of the per-threshold mean over
images. Two differences: it reads 8-bit PNG maps and min-max normalises each one to [0, 1] first
(we use the network's calibrated probabilities as they are: ``normalize=True`` gives its
behaviour), and it knows no ignore label (pixels labelled 255 are left out here).
"""

from __future__ import annotations

import math

import torch

__all__ = ["SaliencyMeter", "saliency_metrics"]

BETA2 = 0.3


def _curves(prob: torch.Tensor, gt: torch.Tensor, beta2: float) -> torch.Tensor:
    """F-measure at thresholds 0..255 of one image (``prob`` [N] in [0, 1], ``gt`` bool [N])."""
    q = (prob * 255).to(torch.int64).clamp(0, 255)
    fg = torch.bincount(q[gt], minlength=256).double()
    bg = torch.bincount(q[~gt], minlength=256).double()
    tp = fg.flip(0).cumsum(0).flip(0)  # tp[t] = #fg with level >= t
    pp = tp + bg.flip(0).cumsum(0).flip(0)
    prec = tp / pp.clamp(min=1)
    rec = tp / max(int(gt.sum()), 1)
    num = (1 + beta2) * prec * rec
    den = torch.where(num == 0, torch.ones_like(num), beta2 * prec + rec)
    return num / den


class SaliencyMeter:
    """Accumulates per-image F-curves and MAE; :meth:`compute` -> ``{"maxF", "MAE"}`` (NaN if empty).

    Args:
        from_logits: ``update`` receives logits (the model's output) rather than probabilities.
        normalize: min-max normalise each map first (pysodmetrics' convention for saved maps).
        beta2: the F-measure's beta^2 (0.3 for saliency).
    """

    def __init__(
        self,
        from_logits: bool = True,
        normalize: bool = False,
        beta2: float = BETA2,
        task: str = "saliency",
    ):
        self.from_logits = from_logits
        self.normalize = normalize
        self.beta2 = beta2
        self.task = task
        self.f_sum = torch.zeros(256, dtype=torch.float64)
        self.mae_sum = 0.0
        self.n = 0

    def update(self, pred, target) -> None:
        """``pred`` ``[B, 1, H, W]`` (or ``[B, H, W]``), ``target`` ``[B, H, W]`` in {0, 1, 255}."""
        pred = torch.as_tensor(pred).detach().float()
        target = torch.as_tensor(target).detach().long()
        if pred.dim() == 4:
            if pred.shape[1] != 1:
                raise ValueError(
                    f"{self.task}: expected a prediction [B, 1, H, W], got {tuple(pred.shape)}"
                )
            pred = pred[:, 0]
        if tuple(pred.shape) != tuple(target.shape):
            raise ValueError(
                f"{self.task}: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ; "
                f"expected a target [B, H, W] = {tuple(pred.shape)}"
            )
        bad = (target != 0) & (target != 1) & (target != 255)
        if bool(bad.any()):
            raise ValueError(
                f"{self.task}: targets must be 0, 1 or 255 (ignore), found {sorted(target[bad].unique().tolist())[:5]}"
            )
        prob = torch.sigmoid(pred) if self.from_logits else pred
        for p, t in zip(prob, target, strict=True):
            valid = t != 255
            if not bool(valid.any()):
                continue
            p, g = p[valid].double(), t[valid] == 1
            if self.normalize and float(p.max()) > float(p.min()):
                p = (p - p.min()) / (p.max() - p.min())
            self.f_sum += _curves(p.clamp(0, 1), g, self.beta2)
            self.mae_sum += float((p - g.double()).abs().mean())
            self.n += 1

    def compute(self) -> dict[str, float]:
        if self.n == 0:
            return {"maxF": math.nan, "MAE": math.nan}
        return {"maxF": float((self.f_sum / self.n).max()), "MAE": self.mae_sum / self.n}


def saliency_metrics(pred, target, from_logits: bool = False) -> dict[str, float]:
    """Functional form of :class:`SaliencyMeter` for one batch."""
    m = SaliencyMeter(from_logits=from_logits)
    m.update(pred, target)
    return m.compute()
