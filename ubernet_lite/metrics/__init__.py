"""Metrics of each task, as the benchmark of the table the paper reports it in (Sec. 5).

Each metric is an accumulator (``update(pred, target)`` per batch, ``compute()`` at the end) plus a
functional form; :func:`evaluate` runs a model over a data set and returns
``{task: {column: value}}`` with the column names of docs/design.md.

| task                 | accumulator              | protocol                                          |
| -------------------- | ------------------------ | ------------------------------------------------- |
| boundaries           | BoundaryMeter            | BSDS: NMS + thinning, correspond_pixels, ODS/OIS/AP |
| semantic_boundaries  | SemanticBoundaryMeter    | SBD: per-class AP and max F, averaged             |
| semantic, parts      | SegmentationMeter        | confusion-matrix mIoU, ignore 255                 |
| saliency             | SaliencyMeter            | max F (beta^2 = 0.3, 256 thresholds), MAE         |
| normals              | NormalsMeter             | mean/median angle, shares within 11.25/22.5/30    |
| detection            | DetectionMeter           | PASCAL VOC AP at IoU 0.5, 11-point and all-points |
"""

from .boundaries import BoundaryMeter, boundary_metrics
from .detection import DetectionMeter, voc_ap, voc_detection_metrics
from .evaluate import COLUMNS, evaluate, make_meter
from .normals import NormalsMeter, normals_metrics
from .saliency import SaliencyMeter, saliency_metrics
from .segmentation import SegmentationMeter, confusion_matrix, mean_iou
from .semantic_boundaries import SemanticBoundaryMeter, semantic_boundary_metrics

__all__ = [
    "COLUMNS",
    "BoundaryMeter",
    "DetectionMeter",
    "NormalsMeter",
    "SaliencyMeter",
    "SegmentationMeter",
    "SemanticBoundaryMeter",
    "boundary_metrics",
    "confusion_matrix",
    "evaluate",
    "make_meter",
    "mean_iou",
    "normals_metrics",
    "saliency_metrics",
    "semantic_boundary_metrics",
    "voc_ap",
    "voc_detection_metrics",
]
