"""PASCAL VOC detection average precision (Table 2 of the paper).

The classic VOC devkit protocol (``voc_eval`` of py-faster-rcnn, written here from its definition):
for each class, all detections of the data set sorted by decreasing score; a detection is a true
positive if its best-overlapping ground-truth box of the same class in the same image has
IoU > 0.5 and that box was not matched before; a match to a ``difficult`` box counts neither way; everything else is a false
positive. Recall is over the non-difficult boxes. AP per class is

* VOC2007 11-point: ``1/11 sum_{r in 0, 0.1, .., 1} max_{recall >= r} precision`` (``mAP_voc07``);
* all points (VOC2010+): the area under the precision envelope, ``sum (r_{i+1} - r_i) p_i^env``
  (``mAP``).

mAP is the mean over the classes that have at least one non-difficult ground-truth box.

Box convention: boxes are continuous pixel edges ``[x1, y1, x2, y2]`` (a box over pixel columns
0..9 is ``x1 = 0, x2 = 10``), as the loaders give them (VOC's 1-based inclusive
``[xmin, ymin, xmax, ymax]`` becomes ``[xmin - 1, ymin - 1, xmax, ymax]``) and as the synthetic
world draws them. The devkit's ``+ 1`` in ``(xmax - xmin + 1)`` turns its inclusive *indices* into
widths; on edges the width is ``x2 - x1`` already, so the IoU here is the devkit's IoU of the same
boxes (a box over half of a 10 x 10 box: 0.500 in both).
(torchmetrics' ``MeanAveragePrecision`` is COCO-style: no ``difficult``, a detection cap, and
101-point interpolation; it is not this metric.)
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["DetectionMeter", "voc_ap", "voc_detection_metrics"]


def voc_ap(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool = False) -> float:
    """AP from a recall/precision curve (both ``[D]``, in detection order)."""
    rec, prec = np.asarray(rec, dtype=np.float64), np.asarray(prec, dtype=np.float64)
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = prec[rec >= t].max() if np.any(rec >= t) else 0.0
            ap += p / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _iou(box: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """IoU of one box ``[4]`` with ``[G, 4]`` boxes, all pixel edges ``[x1, y1, x2, y2]``.

    Equals the devkit's ``(ixmax - ixmin + 1) (iymax - iymin + 1) / union`` on the same boxes given
    as 1-based inclusive indices ``[x1 + 1, y1 + 1, x2, y2]``."""
    iw = np.maximum(np.minimum(gts[:, 2], box[2]) - np.maximum(gts[:, 0], box[0]), 0.0)
    ih = np.maximum(np.minimum(gts[:, 3], box[3]) - np.maximum(gts[:, 1], box[1]), 0.0)
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1])
    return inter / np.maximum(area + areas - inter, np.finfo(np.float64).tiny)


class DetectionMeter:
    """Accumulates detections and ground truth; :meth:`compute` -> ``{"mAP_voc07", "mAP", "AP"}``.

    Args:
        num_classes: object classes K (labels 1..K; 0 is background and never evaluated).
        iou_threshold: 0.5 for VOC (a match needs IoU strictly above it).
    """

    def __init__(self, num_classes: int, iou_threshold: float = 0.5, task: str = "detection"):
        self.num_classes = num_classes
        self.iou_threshold = iou_threshold
        self.task = task
        self.images: list[dict] = []  # gt per image
        self.dets: list[tuple[int, int, float, np.ndarray]] = []  # (image, label, score, box)

    def update(self, preds: list[dict], targets: list[dict]) -> None:
        """``preds``: B dicts ``boxes`` [D, 4] xyxy, ``labels`` [D], ``scores`` [D];
        ``targets``: B dicts ``boxes`` [N, 4], ``labels`` [N] in 1..K, optional ``difficult`` [N]."""
        if len(preds) != len(targets):
            raise ValueError(
                f"{self.task}: {len(preds)} predictions for {len(targets)} targets; expected one dict per image"
            )
        for p, t in zip(preds, targets, strict=True):
            gb = torch.as_tensor(t["boxes"]).detach().double().cpu().numpy().reshape(-1, 4)
            gl = torch.as_tensor(t["labels"]).detach().long().cpu().numpy().reshape(-1)
            gd = t.get("difficult")
            gd = (
                np.zeros(len(gl), bool)
                if gd is None
                else torch.as_tensor(gd).bool().cpu().numpy().reshape(-1)
            )
            if not (len(gb) == len(gl) == len(gd)):
                raise ValueError(
                    f"{self.task}: target boxes [N, 4], labels [N], difficult [N] disagree: {gb.shape}, {gl.shape}, {gd.shape}"
                )
            if len(gl) and (gl.min() < 1 or gl.max() > self.num_classes):
                raise ValueError(
                    f"{self.task}: ground-truth labels must be in 1..{self.num_classes}, found {sorted(set(gl.tolist()))[:5]}"
                )
            pb = torch.as_tensor(p["boxes"]).detach().double().cpu().numpy().reshape(-1, 4)
            pl = torch.as_tensor(p["labels"]).detach().long().cpu().numpy().reshape(-1)
            ps = torch.as_tensor(p["scores"]).detach().double().cpu().numpy().reshape(-1)
            if not (len(pb) == len(pl) == len(ps)):
                raise ValueError(
                    f"{self.task}: predicted boxes [D, 4], labels [D], scores [D] disagree: {pb.shape}, {pl.shape}, {ps.shape}"
                )
            i = len(self.images)
            self.images.append({"boxes": gb, "labels": gl, "difficult": gd})
            for b, lab, s in zip(pb, pl, ps, strict=True):
                self.dets.append((i, int(lab), float(s), b))

    def class_ap(self, c: int) -> tuple[float, float, int]:
        """(AP all points, AP 11-point, number of non-difficult boxes) of class ``c``."""
        gt = {}
        npos = 0
        for i, im in enumerate(self.images):
            m = im["labels"] == c
            gt[i] = (im["boxes"][m], im["difficult"][m], np.zeros(int(m.sum()), bool))
            npos += int((~im["difficult"][m]).sum())
        dets = sorted((d for d in self.dets if d[1] == c), key=lambda d: -d[2])  # stable sort
        tp = np.zeros(len(dets))
        fp = np.zeros(len(dets))
        for k, (i, _, _, box) in enumerate(dets):
            boxes, difficult, used = gt[i]
            if len(boxes) == 0:
                fp[k] = 1
                continue
            ov = _iou(box, boxes)
            j = int(np.argmax(ov))
            if ov[j] > self.iou_threshold:
                if difficult[j]:
                    continue  # neither TP nor FP
                if not used[j]:
                    tp[k], used[j] = 1, True
                else:
                    fp[k] = 1
            else:
                fp[k] = 1
        if npos == 0:
            return math.nan, math.nan, 0
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec = tp / npos
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        return voc_ap(rec, prec, False), voc_ap(rec, prec, True), npos

    def compute(self) -> dict:
        aps, aps07 = [], []
        for c in range(1, self.num_classes + 1):
            ap, ap07, npos = self.class_ap(c)
            aps.append(ap)
            aps07.append(ap07)
        present = [not math.isnan(a) for a in aps]
        if not any(present):
            return {"mAP_voc07": math.nan, "mAP": math.nan, "AP": aps}
        return {
            "mAP_voc07": float(np.mean([a for a, ok in zip(aps07, present, strict=True) if ok])),
            "mAP": float(np.mean([a for a, ok in zip(aps, present, strict=True) if ok])),
            "AP": aps,
        }


def voc_detection_metrics(preds: list[dict], targets: list[dict], num_classes: int) -> dict:
    """Functional form of :class:`DetectionMeter`."""
    m = DetectionMeter(num_classes)
    m.update(preds, targets)
    return m.compute()
