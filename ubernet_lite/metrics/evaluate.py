"""``evaluate(model, dataset, tasks=...)``: every task's metric row over a data set.

Reads the model's eval-mode predictions in the formats fixed by docs/design.md's task table and
feeds each task's accumulator with the samples labelled for that task only (``has_label[spec.target]``),
each cropped to its image size before padding:

| metric family (``spec.metric``) | prediction                 | accumulator               | row keys                       |
| ------------------------------- | -------------------------- | ------------------------- | ------------------------------ |
| ``boundaries``                  | logits [B, 1, H, W]        | :class:`BoundaryMeter`    | ODS, OIS, AP                   |
| ``normals``                     | [B, 3, H, W]               | :class:`NormalsMeter`     | mean, median, 11.25, 22.5, 30  |
| ``saliency``                    | logits [B, 1, H, W]        | :class:`SaliencyMeter`    | maxF, MAE                      |
| ``segmentation``                | logits [B, K+1, H, W]      | :class:`SegmentationMeter`| mIoU                           |
| ``semantic_boundaries``         | logits [B, K, H, W]        | :class:`SemanticBoundaryMeter` | mAP, mMF                  |
| ``detection``                   | B dicts boxes/labels/scores| :class:`DetectionMeter`   | mAP_voc07, mAP                 |
"""

from __future__ import annotations

import torch

from ..data import collate
from ..progress import progress_bar
from ..tasks import get_tasks
from .boundaries import BSDS_MAX_DIST, BoundaryMeter
from .detection import DetectionMeter
from .normals import NormalsMeter
from .saliency import SaliencyMeter
from .segmentation import SegmentationMeter
from .semantic_boundaries import SBD_MAX_DIST, SemanticBoundaryMeter

__all__ = ["COLUMNS", "evaluate", "make_meter"]

#: The row keys of each metric family (docs/design.md).
COLUMNS: dict[str, tuple[str, ...]] = {
    "boundaries": ("ODS", "OIS", "AP"),
    "normals": ("mean", "median", "11.25", "22.5", "30"),
    "saliency": ("maxF", "MAE"),
    "segmentation": ("mIoU",),
    "semantic_boundaries": ("mAP", "mMF"),
    "detection": ("mAP_voc07", "mAP"),
}


def make_meter(spec, num_thresholds: int = 99, workers: int = 1):
    """The accumulator of a task spec (``spec.metric``, ``spec.out_channels``)."""
    m = spec.metric
    if m == "boundaries":
        return BoundaryMeter(
            num_thresholds, BSDS_MAX_DIST, from_logits=True, workers=workers, task=spec.name
        )
    if m == "normals":
        return NormalsMeter(task=spec.name)
    if m == "saliency":
        return SaliencyMeter(from_logits=True, task=spec.name)
    if m == "segmentation":
        return SegmentationMeter(spec.out_channels, task=spec.name)
    if m == "semantic_boundaries":
        return SemanticBoundaryMeter(
            spec.out_channels,
            num_thresholds,
            SBD_MAX_DIST,
            from_logits=True,
            workers=workers,
            task=spec.name,
        )
    if m == "detection":
        return DetectionMeter(spec.out_channels - 1, task=spec.name)
    raise ValueError(f"{spec.name}: unknown metric {m!r}; expected one of {sorted(COLUMNS)}")


def _specs(model, tasks):
    registry = {s.name: s for s in model.cfg.tasks}
    if tasks is None:
        return list(registry.values()), False
    return get_tasks(tasks, registry), True


def _crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return x[..., :h, :w]


@torch.no_grad()
def evaluate(
    model,
    dataset,
    tasks=None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    num_thresholds: int = 99,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """Evaluate ``model`` on ``dataset``, task by task.

    Args:
        model: an :class:`ubernet_lite.UberNet` (put in eval mode here; the mode it had, train or
            eval, is restored on return, so a training step can follow).
        dataset: a sequence of sample dicts (docs/design.md), e.g. ``SynthWorld(split="val")``.
        tasks: task names (default: every task of the model; then a task without any labelled
            sample is left out of the result, while a requested one is an error).
        batch_size: samples per forward pass.
        device: where the model runs.
        num_thresholds: thresholds of the boundary metrics (99 for final numbers, 5-9 for quick
            checks).
        workers: processes for the boundary matching.
        progress: show a tqdm progress bar.

    Returns:
        ``{task: {column: value}}`` with the columns of docs/design.md (fractions, or degrees for
        the normals' ``mean`` / ``median``).
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("evaluate: the data set is empty; expected at least one sample dict")
    specs, explicit = _specs(model, tasks)
    names = [s.name for s in specs]
    meters = {s.name: make_meter(s, num_thresholds, workers) for s in specs}
    seen = dict.fromkeys(names, 0)
    was_training = model.training
    model.eval()
    model.to(device)
    try:
        starts = range(0, n, batch_size)
        for start in progress_bar(starts, enabled=progress, desc="evaluate", unit="batch"):
            samples = [dataset[i] for i in range(start, min(start + batch_size, n))]
            batch = collate(samples, mil_bags=False)  # no loss here: the bags are not needed
            wanted = [s for s in specs if bool(torch.as_tensor(batch["has_label"][s.target]).any())]
            if not wanted:
                continue
            out = model(batch["images"].to(device), tasks=[s.name for s in wanted])
            for spec in wanted:
                labelled = torch.as_tensor(batch["has_label"][spec.target]).bool().tolist()
                pred = out[spec.name]
                for i, ok in enumerate(labelled):
                    if not ok:
                        continue
                    h, w = batch["image_sizes"][i]
                    _update(meters[spec.name], spec, pred, batch, i, h, w)
                    seen[spec.name] += 1
    finally:
        model.train(was_training)
    rows = {}
    for spec in specs:
        if seen[spec.name] == 0:
            if explicit:
                raise ValueError(
                    f"evaluate: no sample of the data set is labelled for task {spec.name!r} "
                    f"(has_label[{spec.target!r}] is False everywhere); expected at least one"
                )
            continue
        res = meters[spec.name].compute()
        rows[spec.name] = {k: float(res[k]) for k in COLUMNS[spec.metric]}
    return rows


def _update(meter, spec, pred, batch, i: int, h: int, w: int) -> None:
    """Feed sample ``i`` of a batch (cropped to ``h x w``) to the task's accumulator."""
    t = batch["targets"]
    if spec.metric == "detection":
        p = pred[i]
        meter.update(
            [{k: p[k].cpu() for k in ("boxes", "labels", "scores")}],
            [{"boxes": t["boxes"][i], "labels": t["labels"][i], "difficult": t["difficult"][i]}],
        )
        return
    target = _crop(t[spec.target][i : i + 1], h, w)
    p = _crop(pred[i : i + 1], h, w).float().cpu()
    if (
        spec.metric in ("boundaries", "saliency")
        and p.dim() == 4
        and tuple(p.shape[-2:]) != tuple(target.shape[-2:])
    ):
        raise ValueError(
            f"{spec.name}: prediction {tuple(p.shape)} does not match the target {tuple(target.shape)}; "
            f"expected logits [1, 1, {h}, {w}]"
        )
    meter.update(p, target)
