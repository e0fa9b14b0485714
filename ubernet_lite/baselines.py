"""Trivial baselines: what a task's metric gives without looking at the image.

A trained model must beat these clearly before its numbers mean anything:

| task                | trivial prediction                                          |
| ------------------- | ----------------------------------------------------------- |
| semantic, parts     | the majority class of the training labels, everywhere       |
| normals             | the mean training normal (renormalised), everywhere         |
| saliency            | the training foreground rate, everywhere                    |
| boundaries          | an empty boundary map                                       |
| semantic_boundaries | empty per-class boundary maps                               |
| detection           | no detections                                               |

``TrivialBaseline`` has the model's call signature, so ``ubernet_lite.metrics.evaluate`` scores it
exactly like a network.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import UberNetConfig
from .tasks import TaskSpec

_EMPTY_LOGIT = -20.0  # sigmoid(-20) ~ 2e-9: "no boundary anywhere"


class TrivialBaseline(nn.Module):
    """Constant predictions fitted on labelled training samples.

    Args:
        tasks: the task specs to predict.
        samples: an iterable of samples (the dicts of docs/design.md); only samples labelled
            for a task are used to fit its constant.
    """

    def __init__(self, tasks: list[TaskSpec], samples):
        super().__init__()
        tasks = list(tasks)
        if not tasks:
            raise ValueError("TrivialBaseline: expected at least one TaskSpec, got none")
        # ``evaluate`` reads the model's task specs from ``model.cfg``
        self.cfg = UberNetConfig(tasks=tasks)
        self.specs = {t.name: t for t in tasks}
        counts = {t.name: torch.zeros(t.out_channels, dtype=torch.float64) for t in tasks}
        normal_sum = torch.zeros(3, dtype=torch.float64)
        fg = torch.zeros(2, dtype=torch.float64)  # salient pixels, all pixels
        for s in samples:
            for name, spec in self.specs.items():
                if not s["has_label"].get(spec.target, False):
                    continue
                y = s[spec.target] if spec.target != "detection" else None
                if spec.kind == "multiclass":
                    y = y[y != 255]
                    counts[name] += torch.bincount(y.flatten(), minlength=spec.out_channels)[
                        : spec.out_channels
                    ].double()
                elif spec.kind == "regression":
                    normal_sum += y.double().flatten(1).sum(1)
                elif spec.name == "saliency" or spec.target == "saliency":
                    valid = y != 255
                    fg += torch.tensor([float((y[valid] == 1).sum()), float(valid.sum())])
        self.constants: dict[str, torch.Tensor] = {}
        for name, spec in self.specs.items():
            if spec.kind == "multiclass":
                logits = torch.full((spec.out_channels,), _EMPTY_LOGIT)
                logits[int(counts[name].argmax())] = 0.0
                self.constants[name] = logits
            elif spec.kind == "regression":
                n = normal_sum if normal_sum.norm() > 0 else torch.tensor([0.0, 0.0, 1.0]).double()
                self.constants[name] = (n / n.norm()).float()
            elif spec.kind == "binary" and spec.target == "saliency":
                p = (fg[0] / fg[1].clamp(min=1)).clamp(1e-4, 1 - 1e-4)
                self.constants[name] = torch.logit(p).float().reshape(1)
            elif spec.kind in ("binary", "multilabel"):
                self.constants[name] = torch.full((spec.out_channels,), _EMPTY_LOGIT)

    def forward(self, images: torch.Tensor, tasks=None, targets=None) -> dict:
        """images [B, 3, H, W] -> {task: prediction} in the formats of docs/design.md's task table."""
        B, _, H, W = images.shape
        out = {}
        for name in tasks or list(self.specs):
            if name not in self.specs:
                raise KeyError(f"TrivialBaseline has no task {name!r}; it has {list(self.specs)}")
            spec = self.specs[name]
            if spec.kind == "detection":
                out[name] = [
                    {
                        "boxes": torch.zeros(0, 4),
                        "labels": torch.zeros(0, dtype=torch.int64),
                        "scores": torch.zeros(0),
                    }
                    for _ in range(B)
                ]
            else:
                c = self.constants[name].to(images.device)
                out[name] = c.view(1, -1, 1, 1).expand(B, -1, H, W).clone()
        return out
