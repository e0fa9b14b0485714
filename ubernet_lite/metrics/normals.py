"""Surface-normal angle statistics (Table 8 of the paper; the protocol of Eigen & Fergus, Fouhey et al.).

Over every valid pixel of the data set (a non-zero ground-truth vector): the angle
``acos(<n_pred / |n_pred|, n_gt>)`` in degrees; reported are its mean and median and the shares of
pixels with an angle below 11.25, 22.5 and 30 degrees.

The median is taken from a histogram of 0.01-degree bins (exact to 0.01 degree) so that a data
set of any size fits in constant memory; the mean and the shares are exact.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["NormalsMeter", "angle_errors", "normals_metrics"]

_BIN = 0.01  # degrees
_NBINS = int(round(180 / _BIN))


def angle_errors(pred: torch.Tensor, target: torch.Tensor, task: str = "normals") -> torch.Tensor:
    """Angles (degrees) at the valid pixels, float64 ``[N]``.

    Args:
        pred: float ``[B, 3, H, W]`` (normalised here).
        target: float ``[B, 3, H, W]``, unit vectors; all-zero vectors are invalid.
    """
    pred = torch.as_tensor(pred).detach()
    target = torch.as_tensor(target).detach()
    if pred.dim() != 4 or pred.shape[1] != 3 or tuple(pred.shape) != tuple(target.shape):
        raise ValueError(
            f"{task}: expected prediction and target of the same shape [B, 3, H, W], "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    valid = target.abs().sum(1) > 0
    p = F.normalize(pred.double(), dim=1)
    t = F.normalize(target.double(), dim=1)
    cos = (p * t).sum(1).clamp(-1.0, 1.0)[valid]
    return torch.rad2deg(torch.acos(cos))


class NormalsMeter:
    """Accumulates angle statistics; :meth:`compute` gives ``mean``, ``median``, ``11.25``, ``22.5``,
    ``30`` (degrees; shares as fractions; NaN when no valid pixel was seen)."""

    def __init__(self, task: str = "normals"):
        self.task = task
        self.hist = torch.zeros(_NBINS, dtype=torch.int64)
        self.total = 0.0
        self.count = 0
        self.within = {"11.25": 0, "22.5": 0, "30": 0}

    def update(self, pred, target) -> None:
        """``pred`` ``[B, 3, H, W]``, ``target`` ``[B, 3, H, W]``."""
        a = angle_errors(pred, target, self.task)
        if a.numel() == 0:
            return
        self.total += float(a.sum())
        self.count += a.numel()
        for k in self.within:
            self.within[k] += int((a < float(k)).sum())
        idx = (a / _BIN).long().clamp(max=_NBINS - 1)
        self.hist += torch.bincount(idx, minlength=_NBINS)

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            return {
                "mean": math.nan,
                "median": math.nan,
                "11.25": math.nan,
                "22.5": math.nan,
                "30": math.nan,
            }
        cum = torch.cumsum(self.hist, 0)
        half = self.count / 2
        i = int(torch.searchsorted(cum.double(), torch.tensor([half], dtype=torch.float64))[0])
        below = float(cum[i - 1]) if i > 0 else 0.0
        inside = float(self.hist[i])
        median = (i + (half - below) / max(inside, 1.0)) * _BIN  # linear inside the bin
        out = {"mean": self.total / self.count, "median": median}
        out.update({k: v / self.count for k, v in self.within.items()})
        return out


def normals_metrics(pred, target) -> dict[str, float]:
    """Functional form of :class:`NormalsMeter` for one batch."""
    m = NormalsMeter()
    m.update(pred, target)
    return m.compute()
