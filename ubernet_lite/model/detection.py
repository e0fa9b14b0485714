"""The detection branch: a Region Proposal Network and a Fast R-CNN head (Sec. 2, [48]).

"For object detection as in [48] we use a 'Region Proposal Network' and a 'Faster-RCNN' branch".
Both are torchvision's own parts, assembled on the trunk's stride-8 features of the finest pyramid
level (``cfg.detection_layer``: ``"C6"`` = fc7, or ``"C5"`` = conv5_3, raw ReLU responses as
Faster R-CNN reads them):

    features [B, C, h/8, w/8] --RPNHead (3x3 conv, objectness + deltas per anchor)--> proposals
    proposals --RoIAlign (MultiScaleRoIAlign's) or RoIPool (the paper's), 7x7--> TwoMLPHead
              --FastRCNNPredictor--> class scores + per-class box deltas --> NMS --> detections

Built directly on an ``ImageList`` and an ``OrderedDict`` of features, *without*
``GeneralizedRCNNTransform`` (which would resize and renormalise the image: the pyramid and the
trunk already did that). Boxes are in the pixel coordinates of the level the features come from;
:class:`DetectionBranch` maps them to/from the input image.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import RoIPool

#: The key of the single feature map in the OrderedDict handed to torchvision.
FEATURE_KEY = "stride8"

#: torchvision's loss keys (RPN, then Fast R-CNN).
LOSS_KEYS: tuple[str, ...] = (
    "loss_objectness",
    "loss_rpn_box_reg",
    "loss_classifier",
    "loss_box_reg",
)


class RoIPoolDict(nn.Module):
    """``torchvision.ops.RoIPool`` with the call signature ``RoIHeads`` uses for its pooler.

    ``forward(features, proposals, image_shapes)``: dict with one [B, C, h, w] map, list of B
    [N_i, 4] boxes -> [sum N_i, C, k, k]. The scale is fixed (``1 / stride``), not inferred.
    """

    def __init__(self, output_size: int, stride: int):
        super().__init__()
        self.pool = RoIPool(output_size, spatial_scale=1.0 / stride)

    def forward(self, features, proposals, image_shapes):
        return self.pool(features[FEATURE_KEY], proposals)


def _axis_weights(
    lo: torch.Tensor, hi: torch.Tensor, size: int, bins: int, scale: float, sampling: int
) -> torch.Tensor:
    """RoIAlign's bilinear sampling along one axis, as a matrix: [N] box edges -> [N, bins, size].

    Row ``(n, j)`` averages the linear-interpolation weights of the ``sampling`` points of bin
    ``j`` of box ``n`` (``torchvision.ops.roi_align`` with ``aligned=False``: the box at least one
    cell long, points outside ``[-1, size]`` contribute 0, points in ``[-1, 0]`` read cell 0, the
    last cell is not interpolated beyond).
    """
    start, end = lo * scale, hi * scale
    length = (end - start).clamp(min=1.0)
    step = length / bins
    j = torch.arange(bins, dtype=lo.dtype, device=lo.device).view(1, -1, 1)
    i = torch.arange(sampling, dtype=lo.dtype, device=lo.device).view(1, 1, -1)
    pos = (
        start.view(-1, 1, 1) + j * step.view(-1, 1, 1) + (i + 0.5) * step.view(-1, 1, 1) / sampling
    )
    keep = ((pos >= -1.0) & (pos <= size)).to(lo.dtype) / sampling  # [N, bins, sampling]
    pos = pos.clamp(min=0)
    low = pos.floor().long()
    at_end = low >= size - 1
    low = low.clamp(max=size - 1)
    high = torch.where(at_end, low, low + 1)
    frac = torch.where(at_end, torch.zeros_like(pos), pos - low.to(pos.dtype))
    weights = torch.zeros(lo.shape[0], bins, size, dtype=lo.dtype, device=lo.device)
    weights.scatter_add_(2, low, (1 - frac) * keep)
    weights.scatter_add_(2, high, frac * keep)
    return weights


def separable_roi_align(
    features: torch.Tensor,
    boxes: list[torch.Tensor],
    output_size: int,
    spatial_scale: float,
    sampling_ratio: int,
) -> torch.Tensor:
    """``torchvision.ops.roi_align(features, boxes, output_size, spatial_scale, sampling_ratio,
    aligned=False)``, computed as two matrix products per image.

    RoIAlign's value in a bin is the mean of bilinear interpolations at a grid of points, and
    bilinear weights are products of a row weight and a column weight, so the output of a box is
    ``W_y F W_x^T`` with ``W_y`` [bins, H] and ``W_x`` [bins, W] (:func:`_axis_weights`). Same
    values up to float rounding; its backward is two more matrix products, several times cheaper
    on the CPU than torchvision's scattered accumulation (no gradient reaches the boxes, as with
    torchvision's).

    Args:
        features: float [B, C, H, W].
        boxes: B tensors [N_i, 4] (x1, y1, x2, y2) in image pixels (``spatial_scale`` maps them
            to cells).
        output_size: bins per side (7).
        sampling_ratio: points per bin side (> 0).

    Returns:
        float [sum N_i, C, output_size, output_size].
    """
    if sampling_ratio <= 0:
        raise ValueError(f"separable_roi_align needs a sampling_ratio > 0, got {sampling_ratio}")
    device = features.device.type
    if torch.is_autocast_enabled(device):  # as torchvision's roi_align: in float32 under autocast
        with torch.autocast(device, enabled=False):
            out = separable_roi_align(
                features.float(), boxes, output_size, spatial_scale, sampling_ratio
            )
        return out.to(features.dtype)
    weights = []
    for bx in boxes:
        bx = bx.detach().to(features.dtype)
        _, _, h, w = features.shape
        wy = _axis_weights(bx[:, 1], bx[:, 3], h, output_size, spatial_scale, sampling_ratio)
        wx = _axis_weights(bx[:, 0], bx[:, 2], w, output_size, spatial_scale, sampling_ratio)
        weights += [wy, wx]  # [N_i, k, H], [N_i, k, W]
    return _SeparableRoIAlign.apply(features, *weights)


#: Boxes per matrix product: bounds the [boxes k, C W] intermediates of forward and backward.
ROI_CHUNK = 16


class _SeparableRoIAlign(torch.autograd.Function):
    """``W_y F W_x^T`` for every box of every image, [B, C, H, W] -> [sum N_i, C, k, k], whose
    backward keeps only the axis weights (a few kB), not the row products autograd would save:
    ``dL/dF_b = sum_n W_y,n^T G_n W_x,n``, again two matrix products. Both run over chunks of
    :data:`ROI_CHUNK` boxes, so that the detection branch, the first to run in the low-memory
    backward of Sec. 4, stores and allocates little beyond its input and output."""

    @staticmethod
    def forward(ctx, features, *weights):
        ctx.save_for_backward(*weights)
        ctx.feature_shape = features.shape
        _, c, h, w = features.shape
        k = weights[0].shape[1] if weights else 0
        out = features.new_empty(sum(wy.shape[0] for wy in weights[::2]), c, k, k)
        start = 0  # the output is filled in place: a list of chunks and a cat would hold it twice
        for b in range(features.shape[0]):
            flat = features[b].transpose(0, 1).reshape(h, c * w)  # [H, C W]
            wy_all, wx_all = weights[2 * b], weights[2 * b + 1]
            for lo in range(0, wy_all.shape[0], ROI_CHUNK):
                wy, wx = wy_all[lo : lo + ROI_CHUNK], wx_all[lo : lo + ROI_CHUNK]
                n = wy.shape[0]
                rows = (wy.reshape(n * k, h) @ flat).view(n, k * c, w)  # W_y F: [n, (k, C), W]
                # (W_y F W_x^T)^T per box, W_x [k, W] on the left: [n, k_x, (k_y, C)]. The
                # product with W_x^T on the right ([k C, W] @ [W, k]) has 7 output columns and
                # costs three times more in MKL's batched GEMM on the CPU, transpose included
                cols = torch.bmm(wx, rows.transpose(1, 2))
                out[start : start + n] = cols.view(n, k, k, c).permute(0, 3, 2, 1)  # [n, C, k, k]
                start += n
        return out

    @staticmethod
    def backward(ctx, grad):
        weights = ctx.saved_tensors
        bsz, c, h, w = ctx.feature_shape
        grad_features = grad.new_zeros(bsz, h, c * w)
        start = 0
        for b in range(bsz):
            wy_all, wx_all = weights[2 * b], weights[2 * b + 1]
            for lo in range(0, wy_all.shape[0], ROI_CHUNK):
                wy, wx = wy_all[lo : lo + ROI_CHUNK], wx_all[lo : lo + ROI_CHUNK]
                n, k = wy.shape[:2]
                g = grad[start : start + n].reshape(n, c * k, k)  # [n, C k, k]
                start += n
                cols = (g @ wx).view(n, c, k, w).transpose(1, 2).reshape(n * k, c * w)
                grad_features[b].addmm_(wy.reshape(n * k, h).t(), cols)  # += W_y^T (G W_x)
        grad_features = grad_features.view(bsz, h, c, w).transpose(1, 2)
        return (grad_features, *([None] * len(weights)))


class RoIAlignDict(nn.Module):
    """RoIAlign with the call signature ``RoIHeads`` uses for its pooler, on one feature map:
    ``torchvision.ops.MultiScaleRoIAlign([FEATURE_KEY], output_size, sampling_ratio)``, computed
    by :func:`separable_roi_align`.

    ``forward(features, proposals, image_shapes)``: dict with one [B, C, h, w] map, list of B
    [N_i, 4] boxes, list of B image sizes -> [sum N_i, C, k, k]. The scale is inferred as
    ``MultiScaleRoIAlign`` does: the power of two nearest to feature size / largest image size.
    """

    def __init__(self, output_size: int, sampling_ratio: int):
        super().__init__()
        self.output_size, self.sampling_ratio = output_size, sampling_ratio

    def forward(self, features, proposals, image_shapes):
        x = features[FEATURE_KEY]
        size = (max(s[0] for s in image_shapes), max(s[1] for s in image_shapes))
        scales = {2.0 ** round(math.log2(f / s)) for f, s in zip(x.shape[-2:], size, strict=True)}
        if len(scales) != 1:
            raise ValueError(
                f"features {tuple(x.shape[-2:])} and images {size} have different strides"
            )
        return separable_roi_align(
            x, proposals, self.output_size, scales.pop(), self.sampling_ratio
        )


class DetectionBranch(nn.Module):
    """RPN + Fast R-CNN head on one stride-8 feature map.

    Args:
        in_channels: channels of the feature map.
        num_classes: classes incl. background (the detection ``TaskSpec.out_channels``).
        cfg: the :class:`~ubernet_lite.config.UberNetConfig` (anchors, RPN / RoI settings).
        stride: the feature map's stride (8).

    ``forward(features, level_size, image_size, targets=None)``:
        features [B, C, h8, w8] of the level of size ``level_size`` (h, w) of images of size
        ``image_size`` (H, W).
        Eval: list of B dicts ``boxes`` float [N, 4] xyxy in input pixels within [0, W] x [0, H],
        ``labels`` int64 [N] in 1..K, ``scores`` float [N].
        Train: ``targets`` a list of B dicts with ``boxes`` [N_i, 4] (input pixels) and
        ``labels`` [N_i], or None for an image without detection labels (skipped) -> torchvision's
        loss dict (:data:`LOSS_KEYS`), each a scalar tensor (zeros tied to the graph when no image
        of the batch is labelled).
    """

    def __init__(self, in_channels: int, num_classes: int, cfg, stride: int = 8):
        super().__init__()
        self.stride = stride
        sizes = tuple(cfg.anchor_sizes)
        ratios = tuple(cfg.anchor_ratios)
        anchors = AnchorGenerator(sizes=(sizes,), aspect_ratios=(ratios,))
        self.rpn = RegionProposalNetwork(
            anchors,
            RPNHead(in_channels, len(sizes) * len(ratios)),
            fg_iou_thresh=0.7,
            bg_iou_thresh=0.3,
            batch_size_per_image=cfg.rpn_batch_size_per_image,
            positive_fraction=0.5,
            pre_nms_top_n=dict(
                training=cfg.rpn_pre_nms_top_n_train, testing=cfg.rpn_pre_nms_top_n_test
            ),
            post_nms_top_n=dict(
                training=cfg.rpn_post_nms_top_n_train, testing=cfg.rpn_post_nms_top_n_test
            ),
            nms_thresh=0.7,
        )
        k = 7  # RoI grid, as Fast R-CNN on VGG-16
        if cfg.roi_pool == "align":
            pooler = RoIAlignDict(k, sampling_ratio=2)  # = MultiScaleRoIAlign, cheaper backward
        else:
            pooler = RoIPoolDict(k, stride)
        representation = cfg.fc_channels  # the width of the box head's two FC layers
        self.roi_heads = RoIHeads(
            pooler,
            TwoMLPHead(in_channels * k * k, representation),
            FastRCNNPredictor(representation, num_classes),
            fg_iou_thresh=0.5,
            bg_iou_thresh=0.5,
            batch_size_per_image=cfg.box_batch_size_per_image,
            positive_fraction=0.25,
            bbox_reg_weights=None,
            score_thresh=cfg.box_score_thresh,
            nms_thresh=0.5,
            detections_per_img=cfg.box_detections_per_img,
        )

    def _image_list(self, features: torch.Tensor, level_size: tuple[int, int]) -> ImageList:
        # torchvision reads ImageList.tensors only for its shape, to get the anchor stride as
        # tensor_size // feature_size. Our maps have n // 2 + 1 cells per stride-2 pool (321 -> 41),
        # so the padded image size 8 * cells gives the exact stride 8 (321 // 41 would give 7).
        # An expanded zero-size view: no memory. image_sizes (for clipping) are the true sizes.
        b, _, h, w = features.shape
        shape = (b, 3, h * self.stride, w * self.stride)
        tensors = features.new_zeros(()).expand(shape)
        return ImageList(tensors, [tuple(level_size)] * b)

    def forward(self, features, level_size, image_size, targets=None):
        sy = level_size[0] / image_size[0]
        sx = level_size[1] / image_size[1]
        scale = torch.tensor([sx, sy, sx, sy], dtype=features.dtype, device=features.device)
        if not self.training:
            images = self._image_list(features, level_size)
            feats = OrderedDict([(FEATURE_KEY, features)])
            proposals, _ = self.rpn(images, feats)
            dets, _ = self.roi_heads(feats, proposals, images.image_sizes)
            h, w = image_size
            for d in dets:  # level pixels -> input pixels, clipped to the image
                d["boxes"] = d["boxes"] / scale
                d["boxes"][:, 0::2] = d["boxes"][:, 0::2].clamp(0, w)
                d["boxes"][:, 1::2] = d["boxes"][:, 1::2].clamp(0, h)
            return dets
        if targets is None:
            raise ValueError(
                "the detection branch in train mode needs targets: a list of B dicts with 'boxes' "
                "[N, 4] and 'labels' [N] (None for an image without detection labels)"
            )
        if len(targets) != features.shape[0]:
            raise ValueError(
                f"expected {features.shape[0]} detection targets (one per image), got {len(targets)}"
            )
        keep = [i for i, t in enumerate(targets) if t is not None]
        if not keep:  # nothing labelled: zero losses that still reach the parameters
            zero = features.sum() * 0.0 + sum(p.sum() for p in self.parameters()) * 0.0
            return {k: zero for k in LOSS_KEYS}
        feats_kept = features[keep] if len(keep) < features.shape[0] else features
        level_targets = []
        for i in keep:
            t = targets[i]
            if "boxes" not in t or "labels" not in t:
                raise ValueError(
                    f"detection target {i} needs 'boxes' [N, 4] and 'labels' [N]; got {sorted(t)}"
                )
            boxes = torch.as_tensor(
                t["boxes"], dtype=features.dtype, device=features.device
            ).reshape(-1, 4)
            labels = torch.as_tensor(
                t["labels"], dtype=torch.int64, device=features.device
            ).reshape(-1)
            level_targets.append({"boxes": boxes * scale, "labels": labels})
        images = self._image_list(feats_kept, level_size)
        feats = OrderedDict([(FEATURE_KEY, feats_kept)])
        proposals, rpn_losses = self.rpn(images, feats, level_targets)
        _, det_losses = self.roi_heads(feats, proposals, images.image_sizes, level_targets)
        return {**rpn_losses, **det_losses}
