"""``collate``: a micro-batch of partially labelled samples -> the batch dict of docs/design.md.

Images are zero-padded to the largest height and width of the batch. Every dense target that at
least one sample carries gets a ``[B, ...]`` tensor; where a sample is padded or does not carry
the target the value is the ignore label 255 (``uint8`` / ``int64``), and for normals the
all-zero (invalid) vector. ``has_label[t]`` is a ``[B]`` bool tensor for every one of the seven
targets, so a loss can multiply by it (``delta_{t,i}`` of Eq. 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..losses import check_target_values, mil_targets
from ..tasks import TARGETS

IGNORE = 255

#: The binary targets whose MIL bags (``losses.mil_targets``: the bags' members and the certain
#: negatives, which depend on the labels only) ``collate`` prepares for the loss.
MIL_TARGETS: tuple[str, ...] = ("boundaries", "semantic_boundaries")

#: dense target -> (dtype, fill value where padded / unlabelled, number of leading channel dims)
DENSE_TARGETS: dict[str, tuple[torch.dtype, float, int]] = {
    "boundaries": (torch.uint8, IGNORE, 0),
    "saliency": (torch.uint8, IGNORE, 0),
    "semantic": (torch.int64, IGNORE, 0),
    "parts": (torch.int64, IGNORE, 0),
    "semantic_boundaries": (torch.uint8, IGNORE, 1),
    "normals": (torch.float32, 0.0, 1),
}


def _check_sample(i: int, s) -> None:
    if not isinstance(s, dict):
        raise TypeError(
            f"collate: sample {i} must be a dict (docs/design.md), got {type(s).__name__}"
        )
    img = s.get("image")
    if not isinstance(img, torch.Tensor) or img.dim() != 3 or img.shape[0] != 3:
        shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
        raise ValueError(
            f"collate: sample {i}'s 'image' must be a float tensor [3, H, W], got {shape}"
        )
    has = s.get("has_label")
    if not isinstance(has, dict) or set(has) != set(TARGETS):
        raise ValueError(
            f"collate: sample {i}'s 'has_label' must be a dict over the targets {list(TARGETS)}, "
            f"got {has if not isinstance(has, dict) else sorted(has)}"
        )
    for t in DENSE_TARGETS:
        if has[t] and t not in s:
            raise ValueError(f"collate: sample {i} says has_label[{t!r}] but has no {t!r} key")
        if has[t] and s[t].shape[-2:] != img.shape[-2:]:
            raise ValueError(
                f"collate: sample {i}'s {t!r} is {tuple(s[t].shape)}, expected spatial size "
                f"{tuple(img.shape[-2:])} like its image"
            )
    if has["detection"] and not all(k in s for k in ("boxes", "labels")):
        raise ValueError(f"collate: sample {i} says has_label['detection'] but lacks boxes/labels")


def collate(samples: Sequence[dict], mil_bags: bool = True) -> dict:
    """Stack samples into a batch (docs/design.md, "A batch").

    Args:
        samples: B sample dicts (``image`` [3, H_i, W_i], targets, ``has_label``, ``meta``).
        mil_bags: prepare the MIL loss's bags (``mil_targets``), which only a training loss
            reads; False (evaluation) leaves ``mil_targets`` empty.

    Returns:
        ``{"images": [B, 3, H, W], "image_sizes": [(h, w)] * B, "has_label": {t: bool [B]},
        "targets": {...}, "meta": [dict] * B}``. ``targets`` holds a dense key when at least one
        sample carries it, and always the lists ``boxes`` ([N_i, 4] float32), ``labels`` ([N_i]
        int64) and ``difficult`` ([N_i] bool), empty for a sample without detection labels
        (``has_label["detection"]`` tells which are labelled). ``checked_labels``:
        ``{target: largest label}`` of the dense targets whose values were checked here, once
        per sample (0 / 1 / 255 for the binary maps, labels >= 0 or 255): the losses of the
        training objective do not read them again (``losses.task_loss``). ``mil_targets``:
        ``{target: losses.mil_targets(...)}`` for the boundary targets of :data:`MIL_TARGETS`
        the batch holds, the MIL loss's bags prepared once here (``losses.task_loss`` uses them).

    Raises:
        ValueError: a malformed sample, or a target value out of range (which sample, which
        target, which values).
    """
    if isinstance(samples, dict) or not isinstance(samples, Sequence) or len(samples) == 0:
        raise ValueError("collate: expected a non-empty list of sample dicts")
    for i, s in enumerate(samples):
        _check_sample(i, s)
    B = len(samples)
    sizes = [tuple(s["image"].shape[-2:]) for s in samples]
    H = max(h for h, _ in sizes)
    W = max(w for _, w in sizes)

    images = torch.zeros(B, 3, H, W, dtype=torch.float32)
    for i, s in enumerate(samples):
        h, w = sizes[i]
        images[i, :, :h, :w] = s["image"]

    has_label = {t: torch.tensor([bool(s["has_label"][t]) for s in samples]) for t in TARGETS}

    targets: dict = {}
    checked: dict[str, int] = {}
    for t, (dtype, fill, _) in DENSE_TARGETS.items():
        carriers = [s[t] for s in samples if s["has_label"][t]]
        if not carriers:
            continue
        largest = _check_values(t, samples)
        if largest is not None:
            checked[t] = largest
        lead = carriers[0].shape[:-2]
        if any(c.shape[:-2] != lead for c in carriers):
            raise ValueError(
                f"collate: {t!r} has different channel counts in one batch: "
                f"{sorted({tuple(c.shape[:-2]) for c in carriers})}"
            )
        out = torch.full((B, *lead, H, W), fill, dtype=dtype)
        for i, s in enumerate(samples):
            if s["has_label"][t]:
                h, w = sizes[i]
                out[i, ..., :h, :w] = s[t]
        targets[t] = out

    boxes, labels, difficult = [], [], []
    for s in samples:
        if s["has_label"]["detection"]:
            b = s["boxes"].to(torch.float32).reshape(-1, 4)
            boxes.append(b)
            labels.append(s["labels"].to(torch.int64))
            d = s.get("difficult")
            difficult.append(
                torch.zeros(len(b), dtype=torch.bool) if d is None else d.to(torch.bool)
            )
        else:
            boxes.append(torch.zeros(0, 4, dtype=torch.float32))
            labels.append(torch.zeros(0, dtype=torch.int64))
            difficult.append(torch.zeros(0, dtype=torch.bool))
    targets.update(boxes=boxes, labels=labels, difficult=difficult)
    # the MIL loss's bags (losses.MIL_RADIUS, MIL_BAG: the loss's defaults), here where the batch
    # is built (a DataLoader worker or the prefetching thread), not at every training step;
    # the values were checked above (not for evaluation: no loss reads them there)
    wanted = [t for t in MIL_TARGETS if t in targets] if mil_bags else []
    bags = {t: mil_targets(targets[t], t, check=False) for t in wanted}

    return {
        "images": images,
        "image_sizes": sizes,
        "has_label": has_label,
        "targets": targets,
        "checked_labels": checked,
        "mil_targets": bags,
        "meta": [dict(s.get("meta", {})) for s in samples],
    }


def _check_values(target: str, samples: Sequence[dict]) -> int | None:
    """The values of ``target`` checked once per sample (``losses.check_target_values``: 0, 1,
    255 for a binary map, labels >= 0 or 255), so that the training objective need not check
    them at every step; returns the largest label over the samples that carry it (None for
    targets without a check, normals)."""
    largest = None
    for i, s in enumerate(samples):
        if not s["has_label"][target]:
            continue
        try:
            v = check_target_values(target, s[target])
        except ValueError as e:
            raise ValueError(f"collate: sample {i}: {e}") from None
        if v is not None:
            largest = v if largest is None else max(largest, v)
    return largest
