"""Training and testing on the paper's real data sets (issue 8): the union, the config check,
each task's test set, and evaluation at the images' own size.

Used by :class:`~ubernet_lite.training.Trainer` with ``data="real"``, by the CLI and by
``ubernet_lite.series``. The test sets are kept out of the training union: VOC 2012's
segmentation val (semantic segmentation), the PASCAL-Part val images (parts) and SBD val
(semantic boundaries).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from ..config import UberNetConfig
from ..data.real import (
    diverse_union_real,
    load_test_sets,
    members_for_targets,
    shortest_side_shape,
    voc2012_segmentation_val_ids,
)
from ..metrics import evaluate
from ..tasks import PART_NAMES, VOC_CLASSES


def check_real_config(cfg: UberNetConfig) -> None:
    """Raise a clear error unless ``cfg`` has PASCAL VOC's label space: 20 classes, six parts
    (semantic: 21 channels, semantic_boundaries: 20, detection: 21, parts: 7)."""
    K, P = len(VOC_CLASSES), len(PART_NAMES)
    expected = {"semantic": K + 1, "semantic_boundaries": K, "detection": K + 1, "parts": P + 1}
    wrong = [
        f"{t.name} has {t.out_channels} outputs, expected {expected[t.target]}"
        for t in cfg.tasks
        if t.target in expected and t.out_channels != expected[t.target]
    ]
    if cfg.num_classes != K:
        wrong.insert(0, f"num_classes is {cfg.num_classes}, expected {K}")
    if wrong:
        raise ValueError(
            f"data='real' needs a config with PASCAL VOC's {K} classes and {P} parts "
            f"({'; '.join(wrong)}); build it with "
            f"ubernet_lite.config.make_config(preset, tasks, data='real')"
        )


def real_training_union(targets, root=None):
    """The paper's union of real data sets (``data.real.diverse_union_real``) for ``targets``:
    only the members that carry one of them; VOC 2012's segmentation val images left out (the
    semantic test set) as well as the PASCAL-Part val images (the part test set); SBD's labels
    from SBD train only (SBD val is the semantic boundary test set)."""
    members = members_for_targets(targets)
    if not members:
        raise ValueError(f"no real data set carries the targets {sorted(targets)}")
    exclude = voc2012_segmentation_val_ids(root) if "voc2012" in members else []
    return diverse_union_real(root=root, members=members, sbd_split="train", exclude_ids=exclude)


def real_test_subsets(cfg: UberNetConfig, tasks, root=None, images: int | None = None) -> dict:
    """``{task: the first images of its test set labelled for it}`` (``data.real.TEST_SETS``;
    ``images=None``: all of them). A missing set raises ``DatasetNotFoundError`` naming it."""
    targets = {t: cfg.task(t).target for t in tasks}
    sets = load_test_sets(root, sorted(set(targets.values())))
    out = {}
    for task, target in targets.items():
        ds, idx = sets[target], []
        for i in range(len(ds)):
            if images is not None and len(idx) >= images:
                break
            if ds.label_flags(i)[target]:
                idx.append(i)
        if not idx:
            raise ValueError(
                f"task {task!r}: no image of the {ds.name} {ds.split!r} set is labelled for "
                f"{target!r}; expected at least one (is the set complete?)"
            )
        out[task] = Subset(ds, idx)
    return out


class ShortestSidePredictor(torch.nn.Module):
    """``model`` seeing each image at a shorter side of ``side`` pixels, its predictions brought
    back to the image's own size (the paper tests at a shortest side of 621).

    ``forward(images [B, 3, H, W], tasks=None)`` -> eval-mode outputs at [H, W]: dense
    predictions [B, C, h, w] bilinearly resized to [B, C, H, W]; detection boxes scaled back to
    the input's pixels. Has the model's ``cfg``, so ``ul.metrics.evaluate`` can take it.
    """

    def __init__(self, model: torch.nn.Module, side: int):
        super().__init__()
        if int(side) < 1:
            raise ValueError(f"side must be >= 1, got {side}")
        self.model, self.side, self.cfg = model, int(side), model.cfg
        self.train(model.training)  # evaluate() restores this mode: the model's own, not train

    def forward(self, images: torch.Tensor, tasks=None) -> dict:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {tuple(images.shape)}")
        H, W = images.shape[-2:]
        h, w = shortest_side_shape(H, W, self.side)
        x = images
        if (h, w) != (H, W):
            shrink = self.side < min(H, W)
            x = F.interpolate(
                images, (h, w), mode="bilinear", align_corners=False, antialias=shrink
            )
        out = self.model(x, tasks=tasks)
        back = {}
        scale = torch.tensor([W / w, H / h, W / w, H / h])
        for name, pred in out.items():
            if torch.is_tensor(pred) and pred.dim() == 4 and (h, w) != (H, W):
                back[name] = F.interpolate(pred, (H, W), mode="bilinear", align_corners=False)
            elif isinstance(pred, list) and (h, w) != (H, W):
                back[name] = [
                    {**d, "boxes": d["boxes"] * scale.to(d["boxes"].device)} for d in pred
                ]
            else:
                back[name] = pred
        return back


def evaluate_test_sets(
    model,
    sets: dict,
    side: int,
    device: str = "cpu",
    num_thresholds: int = 99,
    progress: bool = False,
    workers: int = 1,
) -> dict[str, dict[str, float]]:
    """``ul.metrics.evaluate`` of each task on its own data set (``{task: dataset}``, e.g.
    :func:`real_test_subsets`), one image at a time (real images differ in size), through
    :class:`ShortestSidePredictor`: metrics against the ground truth at its original size
    (``workers``: processes for the boundary matching, as ``evaluate``'s)."""
    predictor = ShortestSidePredictor(model, side)
    rows = {}
    for task, dataset in sets.items():
        rows.update(
            evaluate(
                predictor,
                dataset,
                tasks=[task],
                batch_size=1,
                device=device,
                num_thresholds=num_thresholds,
                progress=progress,
                workers=workers,
            )
        )
    return rows
