"""``UberNetConfig``: every knob of the network in one dataclass, no hidden globals.

Two presets share one code path (docs/design.md):

| preset    | trunk                                    | input               | pyramid  |
| --------- | ---------------------------------------- | ------------------- | -------- |
| paper()   | VGG-16, atrous conv5 + fc6/fc7 (LargeFOV) | shortest side 621   | 3 levels |
| lite()    | same layer pattern, widths / 8, GroupNorm | 128 px             | 3 levels |
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .tasks import TASKS, VOC_CLASSES, VOC_TASKS, TaskSpec, get_tasks


@dataclass
class UberNetConfig:
    """Configuration of :class:`ubernet_lite.UberNet`.

    Attributes:
        tasks: the task specs whose branches the network has.
        width: multiplier of VGG-16's channel widths (1.0 = VGG-16's 64..512).
        fc_channels: channels of fc6 / fc7 (1024 in DeepLab-LargeFOV).
        fc6_dilation: dilation of the 3x3 fc6 (12 in DeepLab-LargeFOV).
        input_size: nominal shortest side of training images.
        pyramid_scales: image pyramid scales, finest first (tied weights across them).
        shared_batch_size: effective batch size of the shared trunk in async SGD (Table 1).
        num_classes: object classes (without background), for detection and semantic tasks.
        anchor_sizes / anchor_ratios: RPN anchors (pixels of the input image).
        rpn_*/box_*: settings of torchvision's RPN and RoI heads.
        roi_pool: "align" (torchvision MultiScaleRoIAlign) or "pool" (the paper's RoI pooling).
        detection_layer: which tap the detection branch reads ("C5" = conv5_3 or "C6" = fc7).
        dropout: dropout after fc6 and fc7 (DeepLab's 0.5).
        trunk_norm: ``"none"`` (VGG-16 as published, for ImageNet weights: the paper preset) or
            ``"group"`` (GroupNorm after every trunk conv: the lite preset, trained from scratch).
        preset: name of the preset this config came from.
    """

    tasks: list[TaskSpec] = field(default_factory=lambda: list(TASKS.values()))
    width: float = 1.0
    fc_channels: int = 1024
    fc6_dilation: int = 12
    input_size: int = 621
    pyramid_scales: tuple[float, ...] = (1.0, 0.5, 0.25)
    shared_batch_size: int = 30
    num_classes: int = 6
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_test: int = 300
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 128
    box_detections_per_img: int = 100
    box_score_thresh: float = 0.05
    roi_pool: str = "align"
    detection_layer: str = "C6"
    dropout: float = 0.5
    trunk_norm: str = "none"
    preset: str = "custom"

    def __post_init__(self):
        self.tasks = get_tasks(self.tasks)
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        if not self.pyramid_scales or any(s <= 0 or s > 1 for s in self.pyramid_scales):
            raise ValueError(f"pyramid_scales must be in (0, 1], got {self.pyramid_scales}")
        if self.trunk_norm not in ("none", "group"):
            raise ValueError(f"trunk_norm must be 'none' or 'group', got {self.trunk_norm!r}")
        if self.roi_pool not in ("align", "pool"):
            raise ValueError(f"roi_pool must be 'align' or 'pool', got {self.roi_pool!r}")

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"unknown task {name!r}; this config has {self.task_names}")

    def replace(self, **changes) -> UberNetConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def paper(cls, tasks=None, **overrides) -> UberNetConfig:
        """The paper's setting: full-width VGG-16, shortest side 621, a 3-level pyramid."""
        kw = dict(width=1.0, fc_channels=1024, input_size=621, preset="paper")
        kw.update(overrides)
        return cls(tasks=list(TASKS.values()) if tasks is None else tasks, **kw)

    @classmethod
    def lite(cls, tasks=None, **overrides) -> UberNetConfig:
        """The CPU teaching setting: the same layer pattern at 1/8 width on 128 px images, with
        GroupNorm in the trunk (it trains from random weights; see ``VGGTrunk``'s ``norm``)."""
        kw = dict(
            width=0.125,
            fc_channels=128,
            input_size=128,
            anchor_sizes=(16, 32, 64, 128),
            rpn_pre_nms_top_n_train=600,
            rpn_pre_nms_top_n_test=300,
            rpn_post_nms_top_n_train=300,
            rpn_post_nms_top_n_test=100,
            rpn_batch_size_per_image=128,
            box_batch_size_per_image=64,
            trunk_norm="group",
            preset="lite",
        )
        kw.update(overrides)
        return cls(tasks=list(TASKS.values()) if tasks is None else tasks, **kw)


#: The label spaces a run's config can have: task registry and config overrides per ``data``.
LABEL_SPACES: dict[str, tuple[dict[str, TaskSpec], dict]] = {
    "synthetic": (TASKS, {}),  # the synthetic world's 6 classes
    "real": (VOC_TASKS, {"num_classes": len(VOC_CLASSES)}),  # PASCAL VOC's 20 classes
}
#: The presets of :func:`make_config`.
PRESETS = {"lite": UberNetConfig.lite, "paper": UberNetConfig.paper}


def make_config(
    preset: str = "lite",
    tasks="all",
    data: str = "synthetic",
    gammas: dict | None = None,
    **overrides,
) -> UberNetConfig:
    """The network config of a run: ``preset`` ("lite" | "paper"), a task subset, data's label space.

    Args:
        preset: ``"lite"`` (CPU, narrow widths) or ``"paper"`` (VGG-16, shortest side 621).
        tasks: task names (``"all"``, a comma-separated string or a list).
        data: ``"synthetic"`` (6 classes) or ``"real"`` (PASCAL VOC's 20 classes).
        gammas: per-task loss weights gamma_t of Eq. 1, e.g. ``{"normals": 5.0}`` (Table 9).
        **overrides: fields of :class:`UberNetConfig` that differ from the preset's
            (``width=1 / 16``: a narrower network still).
    """
    if preset not in PRESETS:
        raise ValueError(f"preset must be 'lite' or 'paper', got {preset!r}")
    if data not in LABEL_SPACES:
        raise ValueError(f"data must be 'synthetic' or 'real', got {data!r}")
    registry, extra = LABEL_SPACES[data]
    specs = get_tasks(tasks, registry)
    for name in gammas or {}:
        if name not in [s.name for s in specs]:
            raise KeyError(f"gammas names task {name!r}, not among {[s.name for s in specs]}")
    specs = [
        s.replace(gamma=float(gammas[s.name])) if s.name in (gammas or {}) else s for s in specs
    ]
    return PRESETS[preset](tasks=specs, **{**extra, **overrides})
