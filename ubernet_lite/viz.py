"""Pictures of samples and predictions: colour maps, normals -> RGB, boxes, figure grids.

Every ``*_to_rgb`` function takes one map (no batch dimension) and returns a float numpy array
[H, W, 3] in [0, 1] for ``imshow``. Conventions:

- label maps (``semantic``, ``parts``): the PASCAL VOC palette (0 = background black); the ignore
  value 255 is white;
- ``normals`` [3, H, W]: ``rgb = (n + 1) / 2`` (x right -> red, y down -> green, z towards the
  camera -> blue; a wall facing the camera is lavender); invalid (zero) vectors are black;
- ``boundaries``, ``saliency`` [H, W] in {0, 1} or probabilities: dark on white; 255 (ignore) is
  light red;
- ``semantic_boundaries`` [K, H, W]: each contour pixel in the colour of its (first) class.

:func:`show_sample` draws the image and the seven annotations of one sample (a panel says "not
labelled" for a target the sample lacks); :func:`qualitative_figure` draws, per image, the image
and the seven outputs of a model (the paper's Fig. 1 / Fig. 4 style);
:func:`truth_and_prediction_figure` draws, per test image, its ground truth above the model's
prediction for every task, with legends of the class and part colours.
:func:`plot_loss_curves` draws a training run's per-task losses, :func:`plot_learning_curves`
every task's test metric against the labelled samples seen (one panel per task, several models).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import to_rgb
from matplotlib.patches import Patch, Rectangle

from .tasks import PART_NAMES, SYNTH_CLASSES

IGNORE = 255
#: The panels of :func:`show_sample` and the columns of :func:`qualitative_figure`, in order.
PANELS: tuple[str, ...] = (
    "image",
    "detection",
    "semantic",
    "parts",
    "semantic_boundaries",
    "boundaries",
    "normals",
    "saliency",
)
TITLES = {
    "image": "image",
    "detection": "detection",
    "semantic": "semantic segm.",
    "parts": "human parts",
    "semantic_boundaries": "semantic boundaries",
    "boundaries": "boundaries",
    "normals": "surface normals",
    "saliency": "saliency",
}


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map: float [n, 3] in [0, 1] (0 = black, 1 = dark red, ...)."""
    cmap = np.zeros((n, 3), dtype=np.float32)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap / 255.0


_PALETTE = palette(256)
_PALETTE[IGNORE] = 1.0  # ignore: white


def image_to_rgb(image) -> np.ndarray:
    """[3, H, W] float in [0, 1] -> [H, W, 3] (clipped)."""
    img = _np(image).astype(np.float32)
    if img.ndim != 3 or img.shape[0] != 3:
        raise ValueError(f"image_to_rgb: expected an image [3, H, W], got {img.shape}")
    return np.clip(img.transpose(1, 2, 0), 0.0, 1.0)


def labels_to_rgb(labels) -> np.ndarray:
    """[H, W] integer labels (0 background, 255 ignore) -> [H, W, 3] in the VOC palette."""
    lab = _np(labels).astype(np.int64)
    if lab.ndim != 2:
        raise ValueError(f"labels_to_rgb: expected a label map [H, W], got {lab.shape}")
    return _PALETTE[np.clip(lab, 0, 255)]


def normals_to_rgb(normals) -> np.ndarray:
    """[3, H, W] normals (camera coordinates) -> [H, W, 3] = (n / |n| + 1) / 2; zero vectors black."""
    n = _np(normals).astype(np.float32)
    if n.ndim != 3 or n.shape[0] != 3:
        raise ValueError(f"normals_to_rgb: expected normals [3, H, W], got {n.shape}")
    norm = np.linalg.norm(n, axis=0, keepdims=True)
    valid = norm > 1e-6
    rgb = np.where(valid, (n / np.maximum(norm, 1e-6) + 1.0) / 2.0, 0.0)
    return rgb.transpose(1, 2, 0)


def map_to_rgb(values) -> np.ndarray:
    """[H, W] map in [0, 1] (binary labels or probabilities) -> dark-on-white RGB; 255 light red."""
    v = _np(values).astype(np.float32)
    if v.ndim != 2:
        raise ValueError(f"map_to_rgb: expected a map [H, W], got {v.shape}")
    ignore = v == IGNORE
    g = 1.0 - np.clip(np.where(ignore, 0.0, v), 0.0, 1.0)
    rgb = np.repeat(g[..., None], 3, axis=2)
    rgb[ignore] = (1.0, 0.8, 0.8)
    return rgb


def semantic_boundaries_to_rgb(maps, threshold: float | None = None) -> np.ndarray:
    """[K, H, W] per-class contours (or probabilities) -> [H, W, 3] on white.

    ``threshold=None`` (default): each pixel in the colour of its strongest class (class k in the
    palette's colour k + 1), blended with white by that class's value, so that a prediction whose
    probabilities stay below 0.5 still shows where it puts boundaries (binary labels look the
    same either way). With a ``threshold``: each pixel above it in the colour of the first class
    above it, the rest white. 255 (ignore) everywhere: light red."""
    m = _np(maps).astype(np.float32)
    if m.ndim != 3:
        raise ValueError(f"semantic_boundaries_to_rgb: expected maps [K, H, W], got {m.shape}")
    ignore = (m == IGNORE).all(axis=0)
    valid = np.where(m == IGNORE, 0.0, m)
    rgb = np.ones((*m.shape[1:], 3), dtype=np.float32)
    if threshold is None:
        strength = np.clip(valid.max(axis=0), 0.0, 1.0)[..., None]
        colour = _PALETTE[valid.argmax(axis=0) + 1]
        rgb = 1.0 - strength * (1.0 - colour)
    else:
        on = (m > threshold) & (m != IGNORE)
        any_on = on.any(axis=0)
        first = on.argmax(axis=0)
        rgb[any_on] = _PALETTE[first[any_on] + 1]
    rgb[ignore] = (1.0, 0.8, 0.8)
    return rgb.astype(np.float32)


def draw_boxes(
    ax,
    boxes,
    labels=None,
    scores=None,
    class_names: Sequence[str] = SYNTH_CLASSES,
    difficult=None,
    color=None,
    lw: float = 1.5,
    alpha: float = 1.0,
) -> list:
    """Draw xyxy ``boxes`` [N, 4] on a matplotlib axis that shows the image, coloured by class
    (``labels`` [N] in 1..K; ``color`` overrides it), with the class name (and ``scores`` [N])
    in a small tag; difficult boxes dashed.

    A tag sits just above its box, or inside it at the image's top (right-aligned when the box
    is in the right part of the image); a tag that would cover one drawn before it moves down
    below that one, so that crowded detections stay readable. Returns the tags' ``Text``s.
    """
    b = _np(boxes).reshape(-1, 4)
    lab = None if labels is None else _np(labels).reshape(-1)
    sc = None if scores is None else _np(scores).reshape(-1)
    diff = None if difficult is None else _np(difficult).reshape(-1)
    (xa, xb), (ya, yb) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    # a tag's size in data units (6 pt text, tight padding), from the axis' size in pixels
    px_x = (xb - xa) / max(ax.bbox.width, 1.0)
    px_y = (yb - ya) / max(ax.bbox.height, 1.0)
    pt = ax.figure.dpi / 72
    tag_h = 6 * 1.45 * pt * px_y
    placed: list[tuple[float, float, float, float]] = []  # tags' (left, right, top, bottom)
    tags = []
    for k, (x0, y0, x1, y1) in enumerate(b):
        if color is not None:
            c = color
        else:
            c = _PALETTE[int(lab[k]) % 255] if lab is not None else (1.0, 1.0, 0.0)
        ls = "--" if diff is not None and bool(diff[k]) else "-"
        # pixel edges: pixel x covers [x - 0.5, x + 0.5] in imshow's coordinates
        ax.add_patch(
            Rectangle(
                (x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=c, lw=lw, ls=ls, alpha=alpha
            )
        )
        text = []
        if lab is not None:
            i = int(lab[k])
            text.append(class_names[i - 1] if 1 <= i <= len(class_names) else str(i))
        if sc is not None:
            text.append(f"{sc[k]:.2f}")
        if not text:
            continue
        words = " ".join(text)
        tag_w = (0.62 * 6 * len(words) + 2) * pt * px_x
        right = x0 > xa + 0.6 * (xb - xa)
        x = min(x1 + 0.5, xb) if right else max(x0 - 0.5, xa)
        left_edge = x - tag_w if right else x
        # the tag's top edge (y grows downwards on an image): above the box, or inside it
        top = max(y0 - 0.5, ya) - tag_h if y0 - ya >= 0.12 * (yb - ya) else max(y0 - 0.5, ya)
        moved = True
        while moved:  # below every earlier tag it would cover
            moved = False
            for o_left, o_right, o_top, o_bottom in placed:
                if (
                    left_edge < o_right and o_left < left_edge + tag_w
                    and top < o_bottom and o_top < top + tag_h
                ):  # fmt: skip
                    top, moved = o_bottom, True
        placed.append((left_edge, left_edge + tag_w, top, top + tag_h))
        red, green, blue = to_rgb(c)  # dark text on a light tag (lime, yellow), white on dark
        ink = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.6 else "white"
        tags.append(
            ax.text(
                x,
                top,
                words,
                color=ink,
                fontsize=6,
                ha="right" if right else "left",
                va="top",
                bbox=dict(facecolor=c, alpha=0.7, pad=0.5, lw=0),
                clip_on=True,
            )
        )
    return tags


def legend_handles(names: Sequence[str]) -> list[Patch]:
    """Legend patches for classes 1..len(names) in the palette's colours."""
    return [Patch(color=_PALETTE[i + 1], label=n) for i, n in enumerate(names)]


def _blank(ax, text: str) -> None:
    ax.set_facecolor((0.93, 0.93, 0.93))
    ax.text(
        0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=8, color="0.4"
    )


def _panel(ax, key: str, sample: Mapping, class_names: Sequence[str]) -> None:
    """Draw the annotation ``key`` of ``sample`` (or "not labelled") on ``ax``."""
    has = sample.get("has_label", {})
    target = "detection" if key == "detection" else key
    present = key == "image" or (
        has.get(target, True) and (("boxes" in sample) if key == "detection" else (key in sample))
    )
    if not present:
        _blank(ax, "not labelled")
    elif key == "image":
        ax.imshow(image_to_rgb(sample["image"]))
    elif key == "detection":
        ax.imshow(image_to_rgb(sample["image"]))
        draw_boxes(
            ax, sample["boxes"], sample.get("labels"), sample.get("scores"), class_names,
            sample.get("difficult"),
        )  # fmt: skip
    elif key in ("semantic", "parts"):
        ax.imshow(labels_to_rgb(sample[key]), interpolation="nearest")
    elif key == "semantic_boundaries":
        ax.imshow(semantic_boundaries_to_rgb(sample[key]), interpolation="nearest")
    elif key == "normals":
        ax.imshow(normals_to_rgb(sample[key]), interpolation="nearest")
    else:  # boundaries, saliency
        ax.imshow(map_to_rgb(sample[key]), interpolation="nearest")


def _style(ax, title: str | None) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def show_sample(sample: Mapping, axes=None, class_names: Sequence[str] = SYNTH_CLASSES, title=None):
    """The image and the seven annotations of one sample (8 panels, :data:`PANELS` order).

    Args:
        sample: a sample dict (docs/design.md); absent targets get a "not labelled" panel.
        axes: 8 matplotlib axes to draw into (e.g. one row of :func:`show_samples`); default a
            new 2 x 4 figure.
        title: the figure title (default ``meta["dataset"]`` and index).

    Returns:
        the matplotlib figure.
    """
    if axes is None:
        fig, axes = plt.subplots(2, 4, figsize=(10, 5.4), layout="constrained")
        meta = sample.get("meta", {})
        if title is None and meta:
            title = f"{meta.get('dataset', '')} #{meta.get('index', '')}"
        if title:
            fig.suptitle(title, fontsize=10)
    axes = np.asarray(axes).ravel()
    if len(axes) != len(PANELS):
        raise ValueError(f"show_sample: needs {len(PANELS)} axes, got {len(axes)}")
    for ax, key in zip(axes, PANELS, strict=True):
        _panel(ax, key, sample, class_names)
        _style(ax, TITLES[key])
    return axes[0].figure


def show_samples(
    samples: Sequence[Mapping], class_names: Sequence[str] = SYNTH_CLASSES, size: float = 1.5
):
    """One row of :func:`show_sample` per sample (``len(samples)`` x 8 panels); each row is
    labelled with its data set; returns the figure."""
    if not samples:
        raise ValueError("show_samples: expected at least one sample")
    n = len(samples)
    fig, axes = plt.subplots(
        n,
        len(PANELS),
        figsize=(size * len(PANELS), size * n + 0.4),
        layout="constrained",
        squeeze=False,
    )
    for r, s in enumerate(samples):
        show_sample(s, axes=axes[r], class_names=class_names)
        if r > 0:
            for ax in axes[r]:
                ax.set_title("")
        meta = s.get("meta", {})
        axes[r, 0].set_ylabel(meta.get("dataset", ""), fontsize=8)
    return fig


def _prediction_panel(key: str, pred, b: int, class_names) -> dict | None:
    """The ``b``-th prediction of task ``key`` as a sample-like dict for :func:`_panel`."""
    if key == "detection":
        d = pred[b]
        return {"boxes": d["boxes"], "labels": d.get("labels"), "scores": d.get("scores")}
    p = pred[b].detach().float().cpu()
    if key in ("semantic", "parts"):
        return {key: p.argmax(0)}
    if key == "normals":
        return {key: p}
    if key == "semantic_boundaries":
        return {key: p.sigmoid()}
    return {key: p.sigmoid().squeeze(0)}  # boundaries, saliency: logits [1, H, W]


def _confident(ax, sample: dict, score_threshold: float, max_boxes: int | None = None) -> dict:
    """``sample`` with only its detections scoring >= ``score_threshold`` (the ``max_boxes``
    best); when none is left, ``ax`` says so (with the best score), rather than showing an image
    that looks unprocessed."""
    if sample.get("scores") is None:
        return sample
    scores = _np(sample["scores"]).reshape(-1)
    keep = np.flatnonzero(scores >= score_threshold)
    keep = keep[np.argsort(-scores[keep], kind="stable")][:max_boxes]
    if keep.size == 0:
        best = f" (best {scores.max():.2f})" if scores.size else ""
        ax.text(
            0.5, 0.04, f"no box >= {score_threshold:g}{best}",
            transform=ax.transAxes, ha="center", va="bottom", fontsize=6,
            color="white", bbox={"facecolor": "black", "alpha": 0.6, "pad": 1},
        )  # fmt: skip
    return {
        **sample,
        "boxes": _np(sample["boxes"]).reshape(-1, 4)[keep],
        "labels": None if sample["labels"] is None else _np(sample["labels"]).reshape(-1)[keep],
        "scores": scores[keep],
    }


def _draw_prediction(
    ax,
    key: str,
    image,
    pred,
    b: int,
    class_names,
    score_threshold: float,
    max_boxes: int | None = None,
) -> None:
    """Draw the ``b``-th prediction of task ``key`` on ``ax`` (over ``image`` for detection,
    whose boxes below ``score_threshold`` are hidden)."""
    shown = {"image": image, **_prediction_panel(key, pred, b, class_names)}
    if key == "detection":
        shown = _confident(ax, shown, score_threshold, max_boxes)
    _panel(ax, key, shown, class_names)


def qualitative_figure(
    images,
    predictions: Mapping,
    class_names: Sequence[str] = SYNTH_CLASSES,
    score_threshold: float = 0.5,
    size: float = 1.5,
):
    """Per image, the image and the seven outputs of a model (one row each, :data:`PANELS` order).

    Args:
        images: float [B, 3, H, W] in [0, 1].
        predictions: ``model(images)`` in eval mode (docs/design.md): task -> logits [B, C, H, W]
            (``semantic``/``parts`` argmax; ``boundaries``/``saliency``/``semantic_boundaries``
            sigmoid; ``normals`` normalised), ``detection`` a list of B dicts with ``boxes``,
            ``labels``, ``scores`` (boxes below ``score_threshold`` are hidden). A task the model
            lacks gets an empty panel.

    Returns:
        the matplotlib figure (B x 8 axes).
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"qualitative_figure: images must be a tensor [B, 3, H, W], got {got}")
    unknown = [k for k in predictions if k not in PANELS]
    if unknown:
        raise ValueError(
            f"qualitative_figure: unknown tasks {unknown}; expected some of {list(PANELS[1:])}"
        )
    B = images.shape[0]
    fig, axes = plt.subplots(
        B,
        len(PANELS),
        figsize=(size * len(PANELS), size * B + 0.4),
        layout="constrained",
        squeeze=False,
    )
    for b in range(B):
        for c, key in enumerate(PANELS):
            ax = axes[b, c]
            if key == "image":
                _panel(ax, key, {"image": images[b]}, class_names)
            elif key not in predictions:
                _blank(ax, "no branch")
            else:
                _draw_prediction(
                    ax, key, images[b], predictions[key], b, class_names, score_threshold
                )
            _style(ax, TITLES[key] if b == 0 else None)
    return fig


def task_comparison_figure(
    sample: Mapping,
    predictions: Mapping[str, Mapping],
    task: str,
    class_names: Sequence[str] = SYNTH_CLASSES,
    score_threshold: float = 0.5,
    size: float = 2.2,
):
    """One task of one image, side by side: the image, its ground truth, and each model's output.

    Args:
        sample: a sample dict (docs/design.md) with ``image`` float [3, H, W] and the task's target.
        predictions: model name -> ``model(image[None], tasks=[task])`` in eval mode (a batch of
            one: dense logits [1, C, H, W], detection a list of one dict).
        task: the task to compare (a key of :data:`TITLES` other than ``"image"``).

    Returns:
        the matplotlib figure (one row of ``2 + len(predictions)`` axes).
    """
    if task not in PANELS or task == "image":
        raise ValueError(
            f"task_comparison_figure: task must be one of {list(PANELS[1:])}, got {task!r}"
        )
    missing = [name for name, pred in predictions.items() if task not in pred]
    if missing:
        raise ValueError(f"task_comparison_figure: no {task!r} output from {missing}")
    n = 2 + len(predictions)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size + 0.4), layout="constrained")
    _panel(axes[0], "image", sample, class_names)
    _style(axes[0], "image")
    _panel(axes[1], task, sample, class_names)
    _style(axes[1], f"{TITLES[task]}: ground truth")
    for ax, (name, pred) in zip(axes[2:], predictions.items(), strict=True):
        _draw_prediction(ax, task, sample["image"], pred[task], 0, class_names, score_threshold)
        _style(ax, name)
    classes = ("semantic", "detection", "semantic_boundaries")
    names = {**dict.fromkeys(classes, class_names), "parts": PART_NAMES}.get(task)
    if names:  # the colours of the classes or parts
        fig.legend(
            handles=legend_handles(names), loc="outside lower center", ncols=len(names),
            fontsize=7, frameon=False,
        )  # fmt: skip
    return fig


def parts_legend(ax=None):
    """A legend of the six human parts' colours (on ``ax`` or the current axis)."""
    ax = ax or plt.gca()
    return ax.legend(handles=legend_handles(PART_NAMES), fontsize=7, loc="best")


def plot_loss_curves(history: list[dict], tasks: list[str], smooth: int = 10, ax=None):
    """Per-task loss curves (running mean over ``smooth`` labelled steps) against samples seen.

    ``history``: the trainer's log rows (``{"samples", task: loss or nan, ...}``)."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4))
    for t in tasks:
        pts = [(r["samples"], r[t]) for r in history if not math.isnan(r.get(t, math.nan))]
        if not pts:
            continue
        x, y = np.array(pts).T
        k = max(1, min(smooth, len(y)))
        ys = np.convolve(y, np.ones(k) / k, mode="valid")
        ax.plot(x[k - 1 :], ys, label=t)
    ax.set_xlabel("samples seen")
    ax.set_ylabel("task loss (running mean)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    return fig if fig is not None else ax.figure


def truth_and_prediction_figure(
    samples: Sequence[Mapping],
    predictions: Mapping,
    class_names: Sequence[str] = SYNTH_CLASSES,
    part_names: Sequence[str] = PART_NAMES,
    score_threshold: float = 0.5,
    max_boxes: int = 6,
    size: float = 1.45,
    title: str | None = None,
):
    """Per test image two rows: its ground truth, then the model's prediction, for every task
    (columns in :data:`PANELS` order), with legends of the class and part colours.

    Args:
        samples: N sample dicts with their labels (``image`` [3, H, W] and the targets).
        predictions: ``model(torch.stack([s["image"] for s in samples]))`` in eval mode (see
            :func:`qualitative_figure`); a task the model lacks gets a "no branch" panel.
        class_names, part_names: the legends' names (classes 1..K, parts 1..P in the palette).
        score_threshold, max_boxes: the predicted detections drawn (the best ``max_boxes``
            scoring >= the threshold, each with its class name and score); ground-truth boxes
            carry their class names.
        title: the figure's title.

    Returns:
        the matplotlib figure: 2 N rows x 8 columns of panels, two legends below them.
    """
    if not samples:
        raise ValueError("truth_and_prediction_figure: expected at least one sample")
    unknown = [k for k in predictions if k not in PANELS]
    if unknown:
        raise ValueError(
            f"truth_and_prediction_figure: unknown tasks {unknown}; expected some of "
            f"{list(PANELS[1:])}"
        )
    n = len(samples)
    fig, axes = plt.subplots(
        2 * n, len(PANELS), figsize=(size * len(PANELS), size * 2 * n + 1.3),
        layout="constrained", squeeze=False,
    )  # fmt: skip
    for i, truth in enumerate(samples):
        top, bottom = axes[2 * i], axes[2 * i + 1]
        index = truth.get("meta", {}).get("index", i)
        for c, key in enumerate(PANELS):
            _panel(top[c], key, truth, class_names)
            _style(top[c], TITLES[key] if i == 0 else None)
            ax = bottom[c]
            if key == "image":
                _panel(ax, key, truth, class_names)
            elif key not in predictions:
                _blank(ax, "no branch")
            else:
                _draw_prediction(
                    ax, key, truth["image"], predictions[key], i, class_names, score_threshold,
                    max_boxes,
                )  # fmt: skip
            _style(ax, None)
        top[0].set_ylabel(f"#{index} truth", fontsize=8)
        bottom[0].set_ylabel(f"#{index} predicted", fontsize=8, color="tab:blue")
        for ax in bottom:  # a blue frame: the model's row
            for spine in ax.spines.values():
                spine.set_edgecolor("tab:blue")
    fig.legend(
        handles=legend_handles(class_names), loc="outside lower left", fontsize=7,
        title="classes (detection, semantic segm. and boundaries)", title_fontsize=7,
        ncol=min(len(class_names), 10 if len(class_names) > 6 else 6), frameon=False,
    )  # fmt: skip
    fig.legend(
        handles=legend_handles(part_names), loc="outside lower right", fontsize=7,
        title="human parts", title_fontsize=7, ncol=min(len(part_names), 6), frameon=False,
    )  # fmt: skip
    notes = (
        f"detections: the best {max_boxes} scoring >= {score_threshold:g}, class and score; "
        "boundaries and saliency: dark = on; normals: x right -> red, y down -> green, "
        "z to the camera -> blue"
    )
    fig.suptitle((title + "\n" if title else "") + notes, fontsize=8 if not title else 9)
    return fig


def plot_learning_curves(
    curves: Mapping[str, Mapping[str, Sequence[tuple]]],
    metrics: Mapping[str, str],
    lower_is_better: Sequence[str] = ("normals",),
    targets: Mapping[str, float] | None = None,
    caption: str | None = None,
    size: float = 2.6,
):
    """Every task's test metric against the labelled samples of that task seen, one panel per
    task, one line per model.

    Args:
        curves: ``{model: {task: [(labelled samples, value), ...]}}`` (e.g.
            ``{"seven-task": ..., "single-task": ...}``; ``results.learning_curve`` of each run).
        metrics: ``{task: column}`` drawn in each panel (its y label); fractions are drawn as
            percentages, the tasks in ``lower_is_better`` (degrees) as they are.
        targets: optional ``{task: value}`` drawn as a dashed line (the scale's target).
        caption: a line below the panels (what was evaluated, how often, on what).

    Returns:
        the figure; a panel without any point says so.
    """
    tasks = list(metrics)
    if not tasks:
        raise ValueError("plot_learning_curves: expected at least one task in metrics")
    cols = min(4, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(size * cols, size * 0.8 * rows + 0.6), layout="constrained",
        squeeze=False,
    )  # fmt: skip
    styles = ["-o", "--s", ":^", "-.v"]
    for k, task in enumerate(tasks):
        ax = axes.flat[k]
        scale = 1.0 if task in lower_is_better else 100.0
        drawn = False
        for m, (model, per_task) in enumerate(curves.items()):
            pts = list(per_task.get(task, []))
            if not pts:
                continue
            x, y = np.asarray(pts, dtype=float).T
            ax.plot(x, y * scale, styles[m % len(styles)], ms=3, lw=1.2, label=model)
            drawn = True
        if targets and task in targets:
            ax.axhline(targets[task] * scale, color="0.5", ls="--", lw=0.8, label="target")
        unit = "deg, lower is better" if task in lower_is_better else "%"
        ax.set_title(task.replace("_", " "), fontsize=9)
        ax.set_ylabel(f"{metrics[task]} ({unit})", fontsize=8)
        ax.set_xlabel(f"labelled {task.replace('_', ' ')} samples seen", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if not drawn:
            _blank(ax, "no periodic evaluation")
    handles, labels = [], []
    for ax in axes.flat[: len(tasks)]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    spare = axes.flat[len(tasks) :]
    for ax in spare:
        ax.axis("off")
    if handles:
        if len(spare):
            spare[0].legend(handles, labels, loc="center", fontsize=8, frameon=False)
        else:
            fig.legend(handles, labels, loc="outside lower center", fontsize=8, ncol=len(labels))
    if caption:
        fig.suptitle(caption, fontsize=8)
    return fig
