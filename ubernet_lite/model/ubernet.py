"""UberNet: the assembly of trunk, tap normalisation, task branches and pyramid (Sec. 2, Fig. 2).

    images [B, 3, H, W] --pyramid (scales s_l, tied weights)--> trunk (atrous VGG-16) --> C_1..C_6
      --> B_1..B_6 (shared)                                          <- encode(): PyramidFeatures
      --> per task t: E_i^t, upsample, F^t per level; up to H x W; S^t over levels  <- decode(t)
      --> detection: RPN + Fast R-CNN on the finest level's stride-8 features     <- decode("detection")

``forward`` is ``encode`` followed by ``decode`` of every requested task (lazy evaluation, Sec. 4: a
task that is not asked for costs nothing). The split is what the low-memory backward (Sec. 4)
cuts at: ``PyramidFeatures.tensors()`` lists what crosses from the trunk to the branches and
``with_tensors`` rebuilds the features from detached copies; branches never modify those tensors
in place and ``decode`` reads nothing but the features it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from ..tasks import TaskSpec
from .dense import decode_dense
from .detection import DetectionBranch
from .pyramid import ScaleFusion, image_pyramid, level_size, min_input_size, to_input_resolution
from .skip import SkipFusion, TapNorms
from .vgg import VGGTrunk

_TAP_INDEX = {"C1": 0, "C2": 1, "C3": 2, "C4": 3, "C5": 4, "C6": 5}


class TaskOutputs(dict):
    """Task name -> prediction at input resolution, plus ``.scales``: task name -> list of every
    pyramid level's prediction at input resolution (filled in train mode, for deep supervision;
    dense tasks only)."""

    def __init__(self, *args, scales: dict[str, list[torch.Tensor]] | None = None, **kw):
        super().__init__(*args, **kw)
        self.scales: dict[str, list[torch.Tensor]] = dict(scales or {})

    def update(self, other=(), **kw):  # keep .scales when merging TaskOutputs
        super().update(other, **kw)
        if isinstance(other, TaskOutputs):
            self.scales.update(other.scales)


@dataclass
class PyramidFeatures:
    """What the trunk hands to the task branches, for every pyramid level.

    Attributes:
        taps: per level, the six normalised taps B_i(C_i): ``taps[l][i]`` [B, C_i, h_li, w_li].
        detection: the finest level's raw stride-8 map read by the detection branch
            [B, C, h8, w8], or None when the model has no detection task.
        image_size: (H, W) of the input images.
        level_sizes: (h_l, w_l) of every pyramid level.
    """

    taps: list[list[torch.Tensor]]
    detection: torch.Tensor | None
    image_size: tuple[int, int]
    level_sizes: list[tuple[int, int]] = field(default_factory=list)

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor crossing from the trunk to the branches: the taps of level 0, level 1, ...
        then the detection map (if any)."""
        flat = [t for level in self.taps for t in level]
        if self.detection is not None:
            flat.append(self.detection)
        return flat

    def with_tensors(self, tensors: list[torch.Tensor]) -> PyramidFeatures:
        """The same features with the tensors replaced, in the order of :meth:`tensors`."""
        expected = len(self.tensors())
        if len(tensors) != expected:
            raise ValueError(
                f"with_tensors: expected {expected} tensors (as tensors() lists), got {len(tensors)}"
            )
        it = iter(tensors)
        taps = [[next(it) for _ in level] for level in self.taps]
        det = next(it) if self.detection is not None else None
        return replace(self, taps=taps, detection=det, level_sizes=list(self.level_sizes))


class DenseBranch(nn.Module):
    """One dense task's branch: skip layers + fusion (shared by the levels) and scale fusion.

    ``forward(feats, levels=None)`` -> (fused [B, C, H, W], list of L per-level outputs
    [B, C, H, W]). ``levels``: the :meth:`levels` of this branch when they were computed
    together with other branches' (:func:`~.dense.decode_dense`); only S^t is applied then.
    """

    def __init__(self, spec: TaskSpec, tap_channels, tap_strides, num_scales: int):
        super().__init__()
        self.skip = SkipFusion(tap_channels, tap_strides, spec.out_channels)  # E^t, F^t
        self.scale_fusion = ScaleFusion(num_scales, spec.out_channels)  # S^t

    def levels(self, feats: PyramidFeatures) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per pyramid level ``(z [B, C, h_l, w_l], y [B, C, H, W])``: the skip fusion at the
        level's resolution and brought to the input resolution."""
        folded = self.skip.folded()  # F^t folded into E^t once for every level
        out = []
        for taps, size in zip(feats.taps, feats.level_sizes, strict=True):
            z = self.skip(taps, size, folded)
            out.append((z, to_input_resolution(z, feats.image_size)))
        return out

    def forward(self, feats: PyramidFeatures, levels=None):
        levels = self.levels(feats) if levels is None else levels
        per_level = [y for _, y in levels]
        # The per-level outputs handed out (deep supervision) are aliases made before S^t: a
        # backward from them and from the fused output then adds S^t's gradient first and the
        # outputs' own onto it in place (one full-size buffer less at the low-memory peak)
        handed = [y.view_as(y) for y in per_level]
        # S^t; the sources z let its backward work at each level's own resolution
        return self.scale_fusion(per_level, [z for z, _ in levels]), handed


class UberNet(nn.Module):
    """The UberNet network of Fig. 2 for the tasks of ``cfg.tasks`` (any list of TaskSpecs).

    ``forward(images, tasks=None, targets=None)``:
        images: float RGB in [0, 1], [B, 3, H, W] with ``min(H, W) >= self.min_input_size``.
        tasks: task names to run (default: every task of the config); others cost nothing.
        targets: list of B detection targets (dicts with ``boxes``, ``labels``; None for an
            unlabelled image), needed for detection in train mode only.
        Returns a :class:`TaskOutputs`. Eval: ``out[name]`` is the prediction at input resolution
        (dense [B, C, H, W]; detection a list of B dicts boxes/labels/scores in input pixels).
        Train: ``out[name]`` the fused prediction, ``out.scales[name]`` every level's prediction
        (dense tasks), and ``out["detection"]`` torchvision's loss dict.
    """

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.specs: dict[str, TaskSpec] = {t.name: t for t in cfg.tasks}
        self.trunk = VGGTrunk(
            cfg.width, cfg.fc_channels, cfg.fc6_dilation, cfg.dropout, norm=cfg.trunk_norm
        )
        self.taps = TapNorms(self.trunk.tap_channels)  # B_1..B_6
        if cfg.detection_layer not in ("C5", "C6"):
            raise ValueError(f"detection_layer must be 'C5' or 'C6', got {cfg.detection_layer!r}")
        self.detection_tap = _TAP_INDEX[cfg.detection_layer]
        self.scales = tuple(cfg.pyramid_scales)
        self.min_input_size = min_input_size(self.scales, self.trunk.stride)
        heads = {}
        for spec in cfg.tasks:
            if spec.kind == "detection":
                c = self.trunk.tap_channels[self.detection_tap]
                heads[spec.name] = DetectionBranch(
                    c, spec.out_channels, cfg, stride=self.trunk.stride
                )
            else:
                heads[spec.name] = DenseBranch(
                    spec, self.trunk.tap_channels, self.trunk.tap_strides, len(self.scales)
                )
        self.heads = nn.ModuleDict(heads)

    # ---------------------------------------------------------------- checks
    @property
    def task_names(self) -> list[str]:
        return list(self.specs)

    def _check_images(self, images) -> None:
        if (
            not torch.is_tensor(images)
            or images.dim() != 4
            or images.shape[1] != 3
            or not images.is_floating_point()
        ):
            got = (
                f"{images.dtype} tensor of shape {list(images.shape)}"
                if torch.is_tensor(images)
                else type(images).__name__
            )
            raise ValueError(f"UberNet expects float RGB images [B, 3, H, W] in [0, 1]; got {got}")
        h, w = images.shape[-2:]
        if min(h, w) < self.min_input_size:
            raise ValueError(
                f"image {h}x{w} is too small: the coarsest pyramid level (scale {min(self.scales)}) "
                f"must keep one stride-{self.trunk.stride} cell, so H and W must be >= {self.min_input_size}"
            )

    def _check_tasks(self, tasks) -> list[str]:
        if tasks is None:
            return self.task_names
        if isinstance(tasks, str):
            tasks = [tasks]
        unknown = [t for t in tasks if t not in self.specs]
        if unknown:
            raise KeyError(f"unknown task(s) {unknown}; this model has {self.task_names}")
        return list(tasks)

    # ---------------------------------------------------------------- halves
    def encode(self, images: torch.Tensor) -> PyramidFeatures:
        """Pyramid + trunk + tap BatchNorms: [B, 3, H, W] -> :class:`PyramidFeatures`.
        Float images of another precision than the weights (float64, float16) are cast to it."""
        self._check_images(images)
        weight_dtype = next(self.trunk.parameters()).dtype
        if images.dtype != weight_dtype:  # (under autocast the convolutions recast anyway)
            images = images.to(weight_dtype)
        size = tuple(images.shape[-2:])
        taps, det = [], None
        for l, level in enumerate(image_pyramid(images, self.scales)):
            raw = self.trunk(level)  # C_1..C_6 of this level (tied weights)
            taps.append(self.taps(raw))  # B_i(C_i)
            if l == 0 and any(s.kind == "detection" for s in self.specs.values()):
                det = raw[self.detection_tap]
        sizes = [level_size(size, s) for s in self.scales]
        return PyramidFeatures(taps=taps, detection=det, image_size=size, level_sizes=sizes)

    def decode(self, name: str, feats: PyramidFeatures, targets=None) -> TaskOutputs:
        """One task's branch on the features: a :class:`TaskOutputs` with the key ``name``
        (and ``.scales[name]`` in train mode for a dense task)."""
        (name,) = self._check_tasks([name])
        spec, head = self.specs[name], self.heads[name]
        if spec.kind == "detection":
            if feats.detection is None:
                raise ValueError("these PyramidFeatures carry no detection map")
            sizes = feats.level_sizes[0]
            return TaskOutputs({name: head(feats.detection, sizes, feats.image_size, targets)})
        fused, per_level = head(feats)
        return TaskOutputs({name: fused}, scales={name: per_level} if self.training else None)

    def decode_all(self, names: list[str], feats: PyramidFeatures, targets=None) -> TaskOutputs:
        """Several tasks' branches on the features, as ``decode`` of each: the dense ones in one
        pass (:func:`~.dense.decode_dense`: their layers side by side, the same values at a
        fraction of the calls), detection on its own."""
        names = self._check_tasks(names)
        dense = [n for n in names if self.specs[n].kind != "detection"]
        if "decode" in self.__dict__:
            # ``decode`` replaced on this instance (``training.accel.autocast_model`` wraps it
            # in bf16 autocast): honour the replacement, one task at a time
            dense = []
        out = TaskOutputs()
        levels = dict(zip(dense, decode_dense([self.heads[n] for n in dense], feats), strict=True))
        for name in names:
            if name not in levels:
                out.update(self.decode(name, feats, targets))
                continue
            fused, per_level = self.heads[name](feats, levels=levels[name])
            out.update(
                TaskOutputs({name: fused}, scales={name: per_level} if self.training else None)
            )
        return out

    def forward(self, images: torch.Tensor, tasks=None, targets=None) -> TaskOutputs:
        names = self._check_tasks(tasks)
        return self.decode_all(names, self.encode(images), targets)

    # ---------------------------------------------------------------- reporting
    def describe(self, print_fn=print) -> dict[str, int]:
        """Print and return the parameter count per part: trunk, taps (B_i), each task."""
        counts = {
            "trunk": sum(p.numel() for p in self.trunk.parameters()),
            "taps": sum(p.numel() for p in self.taps.parameters()),
        }
        for name, head in self.heads.items():
            counts[name] = sum(p.numel() for p in head.parameters())
        total = sum(counts.values())
        if print_fn is not None:
            width = max(len(k) for k in counts) + 2
            print_fn(f"UberNet ({self.cfg.preset}): {len(self.specs)} tasks, pyramid {self.scales}")
            for k, v in counts.items():
                print_fn(f"  {k:<{width}}{v:>12,d}")
            print_fn(f"  {'total':<{width}}{total:>12,d}")
        return counts
