"""The seven UberNet tasks as data: one :class:`TaskSpec` per task.

Adding a task to UberNet means: a ``TaskSpec`` (this file), a data set that carries its target,
and a loss (``ubernet_lite.losses``). Everything else (the skip layers, the pyramid fusion, the
optimiser's parameter groups, the low-memory backward) is generic over the specs.

Names are part of the public API (docs/design.md, "Tasks"):

| task name             | target key(s)                      | prediction                        |
| --------------------- | ---------------------------------- | --------------------------------- |
| boundaries            | boundaries [H, W] {0,1}            | logits [B, 1, H, W]               |
| normals               | normals [3, H, W] unit             | [B, 3, H, W]                      |
| saliency              | saliency [H, W] {0,1}              | logits [B, 1, H, W]               |
| semantic              | semantic [H, W] 0=bg, 255=ignore   | logits [B, K+1, H, W]             |
| parts                 | parts [H, W] 0=bg, 255=ignore      | logits [B, P+1, H, W]             |
| semantic_boundaries   | semantic_boundaries [K, H, W]      | logits [B, K, H, W]               |
| detection             | boxes, labels, difficult           | list of dicts boxes/labels/scores |
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

#: The seven ground-truth targets a sample may carry (keys of ``sample["has_label"]``).
TARGETS: tuple[str, ...] = (
    "boundaries",
    "normals",
    "saliency",
    "semantic",
    "parts",
    "semantic_boundaries",
    "detection",
)

#: Object classes of the embedded synthetic world (label 0 is background).
SYNTH_CLASSES: tuple[str, ...] = ("ball", "box", "can", "cone", "table", "person")

#: The 20 PASCAL VOC classes (label 0 is background).
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip

#: The six human parts of the paper's part-segmentation task (label 0 is background).
PART_NAMES: tuple[str, ...] = (
    "head", "torso", "upper arm", "lower arm", "upper leg", "lower leg",
)  # fmt: skip

#: What kind of output a task has; the skip layers and the losses dispatch on it.
KINDS = ("binary", "regression", "multiclass", "multilabel", "detection")


@dataclass(frozen=True)
class TaskSpec:
    """One task of the network.

    Attributes:
        name: unique name; names the branch and its parameters (``heads[name]``).
        target: the ground-truth key it learns from (one of :data:`TARGETS`).
        kind: ``binary`` (1 logit), ``regression`` (normals), ``multiclass`` (softmax over
            ``out_channels``), ``multilabel`` (one sigmoid per class), ``detection``.
        out_channels: channels of the dense prediction (for detection: classes incl. background).
        loss: name of the loss in :mod:`ubernet_lite.losses`.
        metric: name of the metric family in :mod:`ubernet_lite.metrics`.
        gamma: the task weight gamma_t of Eq. 1.
        batch_size: the effective batch size B_t of asynchronous SGD (Table 1).
    """

    name: str
    target: str
    kind: str
    out_channels: int
    loss: str
    metric: str
    gamma: float = 1.0
    batch_size: int = 10

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(
                f"TaskSpec {self.name!r}: unknown target {self.target!r}; expected one of {TARGETS}"
            )
        if self.kind not in KINDS:
            raise ValueError(
                f"TaskSpec {self.name!r}: unknown kind {self.kind!r}; expected one of {KINDS}"
            )
        if self.batch_size < 1:
            raise ValueError(
                f"TaskSpec {self.name!r}: batch_size must be >= 1, got {self.batch_size}"
            )

    def renamed(self, name: str) -> TaskSpec:
        """A copy with its own branch (own parameters) that learns from the same target."""
        return dataclasses.replace(self, name=name)

    def replace(self, **changes) -> TaskSpec:
        """A copy with some fields changed, e.g. ``spec.replace(gamma=5.0)``."""
        return dataclasses.replace(self, **changes)


def make_tasks(
    num_classes: int = len(SYNTH_CLASSES), num_parts: int = len(PART_NAMES)
) -> dict[str, TaskSpec]:
    """The seven task specs for a label space of ``num_classes`` objects and ``num_parts`` parts.

    The default gammas are the paper's (1 for every task, Eq. 1); effective batch sizes are the
    paper's Sec. 3 values: 2 for detection, 10 for every other task (30 for the shared trunk lives
    in the optimiser).
    """
    K, P = num_classes, num_parts
    specs = [
        TaskSpec("boundaries", "boundaries", "binary", 1, loss="mil_boundary", metric="boundaries"),
        TaskSpec("normals", "normals", "regression", 3, loss="normals_l1", metric="normals"),
        TaskSpec(
            "saliency", "saliency", "binary", 1, loss="binary_cross_entropy", metric="saliency"
        ),
        TaskSpec(
            "semantic", "semantic", "multiclass", K + 1, loss="cross_entropy", metric="segmentation"
        ),
        TaskSpec(
            "parts", "parts", "multiclass", P + 1, loss="cross_entropy", metric="segmentation"
        ),
        TaskSpec(
            "semantic_boundaries",
            "semantic_boundaries",
            "multilabel",
            K,
            loss="mil_boundary",
            metric="semantic_boundaries",
        ),  # fmt: skip
        TaskSpec(
            "detection",
            "detection",
            "detection",
            K + 1,
            loss="detection",
            metric="detection",
            batch_size=2,
        ),
    ]
    return {s.name: s for s in specs}


#: The seven tasks of the synthetic world (6 classes, 6 parts).
TASKS: dict[str, TaskSpec] = make_tasks()

#: The seven tasks with PASCAL VOC's 20 classes, for the real data sets.
VOC_TASKS: dict[str, TaskSpec] = make_tasks(num_classes=len(VOC_CLASSES))


def get_tasks(names, registry: dict[str, TaskSpec] | None = None) -> list[TaskSpec]:
    """Look up task specs by name (``"all"`` for all seven), with a clear error for unknown names."""
    registry = TASKS if registry is None else registry
    if names == "all" or names is None:
        return list(registry.values())
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out = []
    for n in names:
        if isinstance(n, TaskSpec):
            out.append(n)
            continue
        if n not in registry:
            raise KeyError(f"unknown task {n!r}; the tasks are {sorted(registry)} (or 'all')")
        out.append(registry[n])
    return out
