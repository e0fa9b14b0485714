"""Semantic boundary metrics as the SBD benchmark (Hariharan et al., ICCV 2011; Table 5 of the paper).

Each of the K classes is a binary boundary problem evaluated over the whole data set with the
BSDS counts of :mod:`ubernet_lite.metrics.boundaries` (thresholded, thinned, matched with
``correspond_pixels``); per class the maximal F-measure over one data-set-wide threshold (MF, the
ODS of that class) and the average precision (AP); ``mMF`` and ``mAP`` are their means over the
classes that have ground truth somewhere in the data set. Images without a class's contour still
count for it (their detections are false positives).

The SBD benchmark's tolerance is 0.02 of the image diagonal (pyEdgeEval's "original benchmark"
mode); the original thins the thresholded maps without NMS: ``apply_nms=False`` reproduces that,
the default NMS-thins the network's blurry maps first as for BSDS.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .boundaries import _parallel_map, boundary_counts, default_thresholds, scores_from_counts

__all__ = ["SemanticBoundaryMeter", "semantic_boundary_metrics"]

SBD_MAX_DIST = 0.02


def _one(args):
    prob, gt, valid, thresholds, max_dist, apply_nms = args
    return boundary_counts(
        prob, gt, thresholds, max_dist=max_dist, apply_nms=apply_nms, valid=valid
    )


class SemanticBoundaryMeter:
    """Per-class boundary counts; :meth:`compute` -> ``{"mAP", "mMF", "AP", "MF"}`` (per-class lists).

    Args:
        num_classes: K.
        num_thresholds: thresholds in (0, 1).
        from_logits: ``update`` receives logits rather than probabilities.
        workers: processes for the matching (1: in the calling process).
    """

    def __init__(
        self,
        num_classes: int,
        num_thresholds: int = 99,
        max_dist: float = SBD_MAX_DIST,
        from_logits: bool = True,
        apply_nms: bool = True,
        workers: int = 1,
        task: str = "semantic_boundaries",
    ):
        self.num_classes = num_classes
        self.thresholds = default_thresholds(num_thresholds)
        self.max_dist = max_dist
        self.from_logits = from_logits
        self.apply_nms = apply_nms
        self.workers = workers
        self.task = task
        self.counts: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        self.has_gt = np.zeros(num_classes, dtype=bool)

    def update(self, pred, target) -> None:
        """``pred`` ``[B, K, H, W]`` logits (or probabilities), ``target`` uint8 ``[B, K, H, W]`` in {0, 1, 255}."""
        pred = torch.as_tensor(pred).detach()
        target = torch.as_tensor(target).detach().long()
        k = self.num_classes
        if pred.dim() != 4 or pred.shape[1] != k or tuple(pred.shape) != tuple(target.shape):
            raise ValueError(
                f"{self.task}: expected prediction and target of shape [B, {k}, H, W], "
                f"got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        bad = (target != 0) & (target != 1) & (target != 255)
        if bool(bad.any()):
            raise ValueError(
                f"{self.task}: targets must be 0, 1 or 255 (ignore), found {sorted(target[bad].unique().tolist())[:5]}"
            )
        prob = (torch.sigmoid(pred.float()) if self.from_logits else pred.float()).cpu().numpy()
        gt = (target == 1).cpu().numpy()
        valid = (target != 255).cpu().numpy()
        jobs, where = [], []
        for b in range(pred.shape[0]):
            for c in range(k):
                v = valid[b, c]
                if not v.any():
                    continue
                self.has_gt[c] |= bool(gt[b, c].any())
                jobs.append(
                    (
                        prob[b, c],
                        gt[b, c],
                        None if v.all() else v,
                        self.thresholds,
                        self.max_dist,
                        self.apply_nms,
                    )
                )
                where.append(c)
        results = (
            _parallel_map(_one, jobs, self.workers)
            if self.workers > 1 and len(jobs) > 1
            else [_one(j) for j in jobs]
        )
        for c, r in zip(where, results, strict=True):
            self.counts[c].append(r)

    def compute(self) -> dict:
        aps, mfs = [], []
        for c in range(self.num_classes):
            if not self.has_gt[c]:
                aps.append(math.nan)
                mfs.append(math.nan)
                continue
            s = scores_from_counts(np.stack(self.counts[c]), self.thresholds)
            aps.append(s["AP"])
            mfs.append(s["ODS"])
        ok = [not math.isnan(a) for a in aps]
        if not any(ok):
            return {"mAP": math.nan, "mMF": math.nan, "AP": aps, "MF": mfs}
        return {
            "mAP": float(np.mean([a for a, o in zip(aps, ok, strict=True) if o])),
            "mMF": float(np.mean([m for m, o in zip(mfs, ok, strict=True) if o])),
            "AP": aps,
            "MF": mfs,
        }


def semantic_boundary_metrics(
    pred, target, num_thresholds: int = 99, from_logits: bool = False
) -> dict:
    """Functional form of :class:`SemanticBoundaryMeter` for one batch ``[B, K, H, W]``."""
    m = SemanticBoundaryMeter(
        torch.as_tensor(pred).shape[1], num_thresholds, from_logits=from_logits
    )
    m.update(pred, target)
    return m.compute()
