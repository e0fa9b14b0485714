"""The task losses of UberNet (Sec. 2 of the paper), one function per loss.

Every dense loss here returns a **per-sample** loss, float ``[B]``: the mean over the sample's valid
pixels (0 for a sample without a valid pixel). The objective of Eq. 1-2
(``ubernet_lite.training``) multiplies it by ``has_label`` (delta_{t,i}) and the task weight gamma_t
and sums over the samples. Pixels labelled 255 are ignored everywhere.

| ``spec.loss``          | function                          | used for                              |
| ---------------------- | --------------------------------- | ------------------------------------- |
| ``cross_entropy``      | :func:`cross_entropy`             | semantic segmentation, human parts    |
| ``binary_cross_entropy``| :func:`binary_cross_entropy`     | saliency (2-class CE with one logit)  |
| ``mil_boundary``       | :func:`mil_boundary`              | boundaries, semantic boundaries       |
| ``hed_balanced``       | :func:`hed_balanced`              | the HED alternative for boundaries    |
| ``normals_l1``         | :func:`normals_l1`                | surface normals                       |
| ``detection``          | :func:`detection`                 | RPN + Fast R-CNN (torchvision's)      |

:func:`task_loss` dispatches on ``spec.loss`` and adds up the fused output and every pyramid
scale's output (deep supervision, Sec. 2: "loss layers both at the outputs of the individual scales
and the final responses").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE = 255

#: The MIL boundary loss's bags, by default (every MIL function below, and ``collate``'s bags):
#: the annotated pixel and its neighbours within ``MIL_RADIUS`` along the boundary normal
#: (``"normal"``, the original definition; ``"window"``: the square around it).
MIL_RADIUS = 1
MIL_BAG = "normal"

__all__ = [
    "BINARY_TARGETS",
    "IGNORE",
    "LABEL_TARGETS",
    "LOSSES",
    "MIL_BAG",
    "MIL_RADIUS",
    "binary_cross_entropy",
    "boundary_bags",
    "check_target_values",
    "cross_entropy",
    "detection",
    "hed_balanced",
    "mil_bag_members",
    "mil_boundary",
    "mil_targets",
    "normals_l1",
    "per_sample_mean",
    "task_loss",
]


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def per_sample_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the ``valid`` entries of each sample.

    Args:
        values: float ``[B, ...]`` (entries where ``valid`` is False are ignored, even if NaN).
        valid: bool ``[B, ...]``, same shape.

    Returns:
        float ``[B]``; 0 for a sample without a valid entry.
    """
    b = values.shape[0]
    values = torch.where(valid, values, torch.zeros((), dtype=values.dtype, device=values.device))
    total = values.reshape(b, -1).sum(1)
    count = valid.reshape(b, -1).sum(1)
    return total / count.clamp(min=1).to(values.dtype)


def _check_dense(
    task: str, pred: torch.Tensor, target: torch.Tensor, channels: int | None, what: str
):
    """One clear error for a prediction/target shape mismatch (``pred`` [B, C, H, W])."""
    if pred.dim() != 4:
        raise ValueError(
            f"{task}: expected a prediction [B, C, H, W] ({what}), got shape {tuple(pred.shape)}"
        )
    b, c, h, w = pred.shape
    if channels is not None and c != channels:
        raise ValueError(
            f"{task}: expected {channels} prediction channels ({what}), got {tuple(pred.shape)}"
        )
    expected = (b, h, w) if target.dim() == 3 else (b, c, h, w)
    if tuple(target.shape) != expected:
        raise ValueError(
            f"{task}: prediction {tuple(pred.shape)} and target {tuple(target.shape)} do not match; "
            f"expected a target of shape {expected} ({what})"
        )


def _binary_target(task: str, target: torch.Tensor, check: bool = True):
    """``target`` in {0, 1, 255} -> (float target, bool valid); error on other values (when
    ``check``)."""
    valid = _binary_valid(task, target, check)
    return (target == 1).to(torch.get_default_dtype()), valid


def _binary_valid(task: str, target: torch.Tensor, check: bool = True) -> torch.Tensor:
    """``target != 255`` (bool), after checking (when ``check``; a host sync) that every value
    is 0, 1 or 255."""
    t = target if target.dtype == torch.uint8 else target.long()
    if check:
        _check_binary_values(task, t)
    return t != IGNORE


def _check_binary_values(task: str, t: torch.Tensor) -> None:
    bad = (t > 1) & (t != IGNORE) if t.dtype == torch.uint8 else (t != 0) & (t != 1) & (t != IGNORE)
    if bool(bad.any()):
        raise ValueError(
            f"{task}: binary target values must be 0, 1 or {IGNORE} (ignore), "
            f"found {sorted(set(t[bad].unique().tolist()))[:5]}"
        )


def _label_error(task: str, k: int, found) -> ValueError:
    return ValueError(
        f"{task}: labels must be in 0..{k - 1} or {IGNORE} (ignore) for {k} classes, found {found}"
    )


#: The targets whose values are 0 / 1 / 255 (binary maps) and those that are class labels
#: 0..K-1 / 255; normals are unit vectors (or zeros) and need no check of values.
BINARY_TARGETS = ("boundaries", "saliency", "semantic_boundaries")
LABEL_TARGETS = ("semantic", "parts")


def check_target_values(target: str, values: torch.Tensor, task: str | None = None) -> int | None:
    """Check one target's values once, where a sample is built (``ubernet_lite.data.collate``
    calls it for every sample), so that the training objective need not check them at every
    step (see :func:`task_loss`).

    Args:
        target: the target's name (a key of ``ubernet_lite.tasks.TARGETS``).
        values: the target of one sample or of a batch (any shape).
        task: the name the error message starts with (default ``target``).

    Returns:
        For a label target (semantic, parts), the largest label other than 255 (-1 if none),
        which the loss compares with its class count; for a binary target 1; None otherwise.

    Raises:
        ValueError: a binary target with a value other than 0, 1, 255, or a label target with
        a negative label.
    """
    task = task or target
    if target in BINARY_TARGETS:
        _check_binary_values(task, values if values.dtype == torch.uint8 else values.long())
        return 1
    if target in LABEL_TARGETS:
        t = values.long()
        labelled = t[t != IGNORE]
        if labelled.numel() and int(labelled.min()) < 0:
            raise ValueError(
                f"{task}: labels must be in 0..K-1 or {IGNORE} (ignore), "
                f"found {sorted(set(labelled[labelled < 0].unique().tolist()))[:5]}"
            )
        return int(labelled.max()) if labelled.numel() else -1
    return None


# ----------------------------------------------------------------------------------------------
# discrete labelling: semantic segmentation, parts, saliency
# ----------------------------------------------------------------------------------------------
def cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, task: str = "semantic"
) -> torch.Tensor:
    """Pixel-wise softmax cross-entropy with ignore value 255 (semantic segmentation, parts).

    ``L_i = 1/|V_i| sum_{p in V_i} -log softmax(f(p))_{y_p}``, V_i the pixels of sample i whose
    label is not 255.

    Args:
        logits: float ``[B, K, H, W]``.
        target: int64 ``[B, H, W]`` in ``0..K-1`` or 255.

    Returns:
        float ``[B]``.
    """
    return _cross_entropy_apply(logits, _cross_entropy_prepare(logits, target, task), task)


def _cross_entropy_prepare(
    logits: torch.Tensor,
    target: torch.Tensor,
    task: str,
    check: bool = True,
    largest: int | None = None,
) -> dict:
    """The target side of :func:`cross_entropy`, checked once: labels and per-sample counts.
    ``check=False``: the values were checked where the sample was built
    (:func:`check_target_values`) and ``largest`` is their largest label, compared here with
    the class count without reading the tensor."""
    if target.dim() != 3:
        raise ValueError(
            f"{task}: expected labels [B, H, W] next to logits [B, K, H, W], got {tuple(target.shape)}"
        )
    _check_dense(task, logits, target, None, "logits [B, K, H, W], labels [B, H, W]")
    k = logits.shape[1]
    target = target.long()
    if check:
        bad = (target != IGNORE) & ((target < 0) | (target >= k))
        if bool(bad.any()):
            raise _label_error(task, k, sorted(set(target[bad].unique().tolist()))[:5])
    elif largest is not None and largest >= k:
        raise _label_error(task, k, f"a label {largest}")
    valid = target != IGNORE
    count = valid.reshape(target.shape[0], -1).sum(1)
    safe = torch.where(valid, target, 0)  # labels with 0 at the ignored pixels, for gather
    return {"target": target, "count": count, "classes": k, "valid": valid, "safe": safe}


def _cross_entropy_apply(logits: torch.Tensor, prep: dict, task: str) -> torch.Tensor:
    target = prep["target"]
    if logits.shape[1] != prep["classes"]:
        raise ValueError(
            f"{task}: expected {prep['classes']} logit channels, got {tuple(logits.shape)}"
        )
    _check_dense(task, logits, target, None, "logits [B, K, H, W], labels [B, H, W]")
    return _PixelCrossEntropy.apply(logits, prep["safe"], prep["valid"], prep["count"])


class _PixelCrossEntropy(torch.autograd.Function):
    """Per-sample mean over the valid pixels of ``-log softmax(f(p))_{y_p}`` (:func:`cross_entropy`).

    ``forward(logits [B, K, H, W], safe [B, H, W] int64 (labels, 0 where ignored), valid
    [B, H, W] bool, count [B])`` -> [B]. The values are ``F.cross_entropy``'s (the same
    ``log_softmax``, the same sum); the backward writes the gradient in one pass,
    ``(softmax(f) - onehot(y)) * g_i / |V_i|`` at the valid pixels and 0 elsewhere, where
    autograd would zero-fill a [B, K, H, W] tensor for the NLL, scatter into it and then run the
    log-softmax backward over it. It keeps the logits (which the model's outputs hold anyway)
    rather than the log-probabilities, so the deep supervision's four predictions of a task do
    not each store a second [B, K, H, W] tensor until the backward (Sec. 4's memory).
    """

    @staticmethod
    def forward(ctx, logits, safe, valid, count):
        log_p = torch.log_softmax(logits, 1)  # [B, K, H, W]
        picked = log_p.gather(1, safe.unsqueeze(1)).squeeze(1)  # log p_{y_p}, [B, H, W]
        del log_p
        zero = torch.zeros((), dtype=picked.dtype, device=picked.device)
        nll = torch.where(valid, -picked, zero)
        ctx.save_for_backward(logits, safe, valid, count)
        return nll.reshape(nll.shape[0], -1).sum(1) / count.clamp(min=1).to(nll.dtype)

    @staticmethod
    def backward(ctx, grad):
        logits, safe, valid, count = ctx.saved_tensors
        p = torch.softmax(logits, 1, dtype=torch.promote_types(logits.dtype, torch.float32))
        per_sample = grad.to(p.dtype) / count.clamp(min=1).to(p.dtype)  # [B]
        coef = torch.where(valid, per_sample.view(-1, 1, 1), 0.0).unsqueeze(1)  # [B, 1, H, W]
        if torch.is_grad_enabled():  # a double backward (create_graph): out of place
            grad_logits = (p * coef).scatter_add(1, safe.unsqueeze(1), -coef)
        else:
            grad_logits = p.mul_(coef)  # softmax * g / |V|
            grad_logits.scatter_add_(1, safe.unsqueeze(1), -coef)  # - onehot(y) * g / |V|
        return grad_logits.to(logits.dtype), None, None, None


def binary_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, task: str = "saliency"
) -> torch.Tensor:
    """Sigmoid cross-entropy with one logit (saliency), ignore value 255.

    The paper trains saliency with cross-entropy; with one logit ``f`` the two-class softmax is the
    sigmoid, so ``L_i = 1/|V_i| sum_p -[y_p log s(f_p) + (1-y_p) log(1-s(f_p))]``.

    Args:
        logits: float ``[B, 1, H, W]`` (or ``[B, C, H, W]`` with a ``[B, C, H, W]`` target).
        target: uint8 ``[B, H, W]`` (or ``[B, C, H, W]``) in {0, 1, 255}.

    Returns:
        float ``[B]``.
    """
    return _bce_apply(logits, _binary_prepare(logits, target, task), task)


def _binary_prepare(
    logits: torch.Tensor,
    target: torch.Tensor,
    task: str,
    check: bool = True,
    largest: int | None = None,
) -> dict:
    """The target side of the binary losses, checked once (when ``check``): ``y`` float {0, 1},
    ``valid`` bool and the per-sample count of valid entries, all ``[B, C, H, W]`` (count
    ``[B]``)."""
    logits, target = _as_channels(task, logits, target)
    y, valid = _binary_target(task, target, check)
    count = valid.reshape(valid.shape[0], -1).sum(1)
    return {"y": y, "valid": valid, "count": count}


def _check_prepared(task: str, pred: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``pred`` brought to ``valid``'s [B, C, H, W] (a [B, 1, H, W] pred keeps its shape)."""
    if pred.dim() != 4 or tuple(pred.shape) != tuple(valid.shape):
        raise ValueError(
            f"{task}: prediction {tuple(pred.shape)} does not match the target {tuple(valid.shape)}"
        )
    return pred


def _sum_valid(values: torch.Tensor, valid: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """:func:`per_sample_mean` with the per-sample ``count`` of ``valid`` already known."""
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    total = torch.where(valid, values, zero).reshape(values.shape[0], -1).sum(1)
    return total / count.clamp(min=1).to(values.dtype)


def _bce_apply(logits: torch.Tensor, prep: dict, task: str) -> torch.Tensor:
    logits = _check_prepared(task, logits, prep["valid"])
    bce = F.binary_cross_entropy_with_logits(logits, prep["y"].to(logits.dtype), reduction="none")
    return _sum_valid(bce, prep["valid"], prep["count"])


def _as_channels(task: str, logits: torch.Tensor, target: torch.Tensor):
    """Bring a ``[B, H, W]`` target next to ``[B, 1, H, W]`` logits; check shapes."""
    if logits.dim() == 4 and target.dim() == 3:
        if logits.shape[1] != 1:
            raise ValueError(
                f"{task}: a [B, H, W] target needs logits [B, 1, H, W], got {tuple(logits.shape)}"
            )
        target = target.unsqueeze(1)
    _check_dense(
        task, logits, target, None, "logits [B, C, H, W], target [B, C, H, W] or [B, H, W]"
    )
    return logits, target


# ----------------------------------------------------------------------------------------------
# boundaries: MIL (Kokkinos, ICLR 2016) and HED's class-balanced cross-entropy
# ----------------------------------------------------------------------------------------------
# The four directions a normal is quantised to (dy, dx): 0, 45, 90, 135 degrees.
_DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1))


def _shift(x: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """``out[..., y, x] = x[..., y + dy, x + dx]`` (``fill`` outside the image)."""
    h, w = x.shape[-2:]
    out = torch.full_like(x, fill)
    ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
    xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def _normal_direction(positive: torch.Tensor) -> torch.Tensor:
    """Index (0..3 into ``_DIRECTIONS``) of the boundary normal at every pixel, from the ground truth.

    The annotation is blurred (5x5 triangle filter) into a ridge along the contour; across the ridge
    the curvature is the most negative, so the normal is the eigenvector of the Hessian
    ``[[hxx, hxy], [hxy, hyy]]`` with the smallest eigenvalue, at angle
    ``0.5 atan2(2 hxy, hxx - hyy) + pi / 2``; it is quantised to 0/45/90/135 degrees.

    The blur and the Hessian are computed exactly (integers, :func:`_blur`), so a normal exactly
    half-way between two directions (``|2 hxy| = |hxx - hyy|``, frequent on pixel grids) always
    goes the same way; a rounded blur would decide those pixels by its rounding error.

    Args:
        positive: bool ``[N, H, W]``.

    Returns:
        int64 ``[N, H, W]``.
    """
    x = _blur(positive)
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")[:, 0]
    c = p[:, 1:-1, 1:-1]
    hxx = p[:, 1:-1, 2:] - 2 * c + p[:, 1:-1, :-2]
    hyy = p[:, 2:, 1:-1] - 2 * c + p[:, :-2, 1:-1]
    hxy = (p[:, 2:, 2:] - p[:, 2:, :-2] - p[:, :-2, 2:] + p[:, :-2, :-2]) / 4
    return _quantised_normal(2 * hxy, hxx - hyy)


def _quantised_normal(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``round(angle / 45 deg) % 4`` of the normal at ``angle = 0.5 atan2(a, b) + pi / 2`` in
    ``[0, pi)``, from ``a = 2 hxy`` and ``b = hxx - hyy`` (any shape, exact values): int64.
    In float64, so that the pixels exactly half-way between two directions round the same way
    whatever the precision of the logits."""
    angle = (0.5 * torch.atan2(a.double(), b.double()) + math.pi / 2) % math.pi  # [0, pi)
    return torch.round(angle / (math.pi / 4)).long() % 4


def _blur(positive: torch.Tensor) -> torch.Tensor:
    """81 x the annotation blurred by the 5x5 triangle filter ``t t^T / 81``, ``t = (1, 2, 3, 2, 1)``,
    with replicated borders: bool [N, H, W] -> float32 [N, 1, H, W].

    The weights are the integers ``t t^T`` and the inputs 0 or 1, so every partial sum is an
    integer (at most 81): the values are exact in float32 whatever the convolution's order of
    summation, and so is the Hessian of :func:`_normal_direction` computed from them (the scale
    81 does not change the normal's angle). One depthwise convolution over the N planes (a
    1-channel convolution of N images is several times slower on the CPU).
    """
    n, h, w = positive.shape
    x = F.pad(positive.to(torch.float32).unsqueeze(0), (2, 2, 2, 2), mode="replicate")
    t = torch.tensor([1.0, 2.0, 3.0, 2.0, 1.0], device=positive.device)
    kernel = (t[:, None] * t[None, :]).expand(n, 1, 5, 5)
    return F.conv2d(x, kernel, groups=n).view(n, 1, h, w)


def _normal_direction_at(positive: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """:func:`_normal_direction` at the flat indices ``at`` [P] only: int64 [P] (the blur is
    computed on the planes that hold one of those pixels, the Hessian and its angle at those
    pixels; a semantic-boundary class absent from an image has no plane to blur)."""
    n, h, w = positive.shape
    if at.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=positive.device)
    planes, k = torch.unique(at // (h * w), return_inverse=True)  # k: at's plane among them
    p = F.pad(_blur(positive[planes]), (1, 1, 1, 1), mode="replicate").reshape(-1)
    # p: [planes, H + 2, W + 2], flat
    y, xx = (at % (h * w)) // w, at % w
    centre = k * ((h + 2) * (w + 2)) + (y + 1) * (w + 2) + (xx + 1)

    def q(dy: int, dx: int) -> torch.Tensor:  # the padded blur at (y + dy, x + dx)
        return p[centre + dy * (w + 2) + dx]

    c = q(0, 0)
    hxx = q(0, 1) - 2 * c + q(0, -1)
    hyy = q(1, 0) - 2 * c + q(-1, 0)
    hxy = (q(1, 1) - q(1, -1) - q(-1, 1) + q(-1, -1)) / 4
    return _quantised_normal(2 * hxy, hxx - hyy)


def boundary_bags(
    logits: torch.Tensor,
    positive: torch.Tensor,
    valid: torch.Tensor,
    radius: int = MIL_RADIUS,
    bag: str = MIL_BAG,
):
    """The bag maxima and the negatives of the MIL boundary loss.

    Args:
        logits: float ``[N, H, W]``.
        positive: bool ``[N, H, W]``, annotated boundary pixels.
        valid: bool ``[N, H, W]``, pixels not labelled 255.
        radius: half-size of a bag (pixels).
        bag: ``"normal"``: the ``2 radius + 1`` pixels on the line through the annotated pixel
            along its normal (the original definition); ``"window"``: the
            ``(2 radius + 1)^2`` square around it.

    Returns:
        ``(bag_max, negative)``: float ``[N, H, W]``, the largest logit of the bag centred at each
        pixel (used at positive pixels), and bool ``[N, H, W]``, the pixels farther than
        ``radius`` (in the max norm) from every annotated pixel (the certain negatives).
    """
    neg_inf = torch.finfo(logits.dtype).min
    masked = logits.masked_fill(~valid, neg_inf)  # an ignored pixel never wins a bag
    if bag == "window":
        k = 2 * radius + 1
        bag_max = F.max_pool2d(masked.unsqueeze(1), k, stride=1, padding=radius).squeeze(1)
    elif bag == "normal":
        direction = _normal_direction(positive)
        bag_max = masked.clone()
        for d, (dy, dx) in enumerate(_DIRECTIONS):
            along = masked
            for r in range(1, radius + 1):
                along = torch.maximum(along, _shift(masked, r * dy, r * dx, neg_inf))
                along = torch.maximum(along, _shift(masked, -r * dy, -r * dx, neg_inf))
            bag_max = torch.where(direction == d, along, bag_max)
    else:
        raise ValueError(f"bag must be 'normal' or 'window', got {bag!r}")
    k = 2 * radius + 1
    near = F.max_pool2d(positive.float().unsqueeze(1), k, stride=1, padding=radius).squeeze(1) > 0
    negative = valid & ~near
    return bag_max, negative


def mil_boundary(
    logits: torch.Tensor,
    target: torch.Tensor,
    radius: int = MIL_RADIUS,
    bag: str = MIL_BAG,
    balanced: bool = False,
    task: str = "boundaries",
) -> torch.Tensor:
    """The Multiple Instance Learning boundary loss (Kokkinos, ICLR 2016, Sec. 3; UberNet Sec. 2).

    An annotated contour is only known up to a pixel or two, so each annotated pixel i becomes a
    *positive bag* B_i: the pixels within ``radius`` of it along the boundary normal (``bag="normal"``)
    or in a ``(2 radius + 1)^2`` window (``bag="window"``). The bag is positive if *one* of its
    pixels is, so the loss scores the bag by its maximum; certain negatives are the pixels farther
    than ``radius`` from any annotated pixel, and the pixels in between are not penalised::

        L = sum_{j in Y-} -log(1 - s(f_j)) + sum_{i in Y+} -log s(max_{j in B_i} f_j)

    (s the sigmoid; with ``balanced=True`` the two sums are weighted by |Y-|/|Y| and |Y+|/|Y| as in
    HED). Per sample the sum is divided by the number of terms |Y+| + |Y-|. The loss is a
    piecewise-smooth function of the logits (the max picks one pixel per bag).

    The bags are gathered at the annotated pixels only (:func:`mil_bag_members`), which is what
    :func:`boundary_bags` computes densely at every pixel; the values and gradients are the same,
    ties included.

    Args:
        logits: float ``[B, 1, H, W]`` (boundaries) or ``[B, K, H, W]`` (semantic boundaries).
        target: uint8 ``[B, H, W]`` or ``[B, K, H, W]`` in {0, 1, 255}.

    Returns:
        float ``[B]``.
    """
    prep = _mil_prepare(logits, target, task, radius=radius, bag=bag)
    return _mil_apply(logits, prep, task, balanced=balanced)


def mil_bag_members(
    positive: torch.Tensor,
    valid: torch.Tensor,
    radius: int = MIL_RADIUS,
    bag: str = MIL_BAG,
    center: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The members of every positive bag, as flat indices (the target side of the MIL loss).

    Args:
        positive: bool ``[N, H, W]``, annotated boundary pixels.
        valid: bool ``[N, H, W]``, pixels not labelled 255.
        radius, bag: as :func:`boundary_bags`.
        center: ``positive.reshape(-1).nonzero().squeeze(1)`` when the caller has it already.

    Returns:
        ``(center, members, ok)``: int64 ``[P]``, the flat index (into ``N * H * W``) of each of the
        P annotated pixels; int64 ``[P, K]``, the flat indices of its bag's K candidates (the pixel
        itself first, then, for ``"normal"``, the pixels at ``+1, -1, ..., +radius, -radius`` steps
        along the normal; for ``"window"``, the square in row-major order); bool ``[P, K]``, the
        candidates inside the image and not ignored (the others point at the centre).
    """
    n, h, w = positive.shape
    idx = positive.reshape(-1).nonzero().squeeze(1) if center is None else center  # [P]
    pn, rem = idx // (h * w), idx % (h * w)
    py, px = rem // w, rem % w
    if bag == "normal":
        table = torch.tensor(_DIRECTIONS, dtype=torch.long, device=positive.device)  # [4, 2]
        d = _normal_direction_at(positive, idx)
        dy, dx = table[d, 0], table[d, 1]
        steps = [0] + [s for r in range(1, radius + 1) for s in (r, -r)]
        oy = torch.stack([s * dy for s in steps], 1)  # [P, K]
        ox = torch.stack([s * dx for s in steps], 1)
    elif bag == "window":
        r = torch.arange(-radius, radius + 1, device=positive.device)
        gy, gx = torch.meshgrid(r, r, indexing="ij")
        oy = gy.reshape(1, -1).expand(len(idx), -1)
        ox = gx.reshape(1, -1).expand(len(idx), -1)
    else:
        raise ValueError(f"bag must be 'normal' or 'window', got {bag!r}")
    yy, xx = py[:, None] + oy, px[:, None] + ox
    inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    members = pn[:, None] * (h * w) + yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)
    ok = inside & valid.reshape(-1)[members]
    members = torch.where(ok, members, idx[:, None])
    return idx, members, ok


def _mil_prepare(
    logits: torch.Tensor,
    target: torch.Tensor,
    task: str,
    radius: int = MIL_RADIUS,
    bag: str = MIL_BAG,
    check: bool = True,
    largest: int | None = None,
) -> dict:
    """The target side of :func:`mil_boundary`, once for every prediction of a task: the bags'
    members, the certain negatives, the per-sample counts (:func:`mil_targets`)."""
    logits, target = _as_channels(task, logits, target)
    return mil_targets(target, task, radius=radius, bag=bag, check=check)


def mil_targets(
    target: torch.Tensor,
    task: str = "boundaries",
    radius: int = MIL_RADIUS,
    bag: str = MIL_BAG,
    check: bool = True,
) -> dict:
    """The target side of the MIL boundary loss, which depends on the labels only: computed once
    per micro-batch where it is collated (``ubernet_lite.data.collate``, ``mil_targets``), not
    at every training step, and shared by the fused output and every pyramid scale.

    Args:
        target: uint8 ``[B, C, H, W]`` (or ``[B, H, W]``, one channel) in {0, 1, 255}.
        radius, bag: as :func:`mil_boundary`.
        check: check the values (0, 1, 255) first.

    Returns:
        ``{"valid": bool [B, C, H, W], "center": int64 [P], "members": int64 [P, K],
        "ok": bool [P, K], "sample": int64 [P], "negative": bool [B, C, H, W], "n_pos": [B],
        "n_neg": [B], "bag", "radius"}`` (:func:`mil_bag_members`; ``negative`` the pixels
        farther than ``radius`` from every annotated pixel).
    """
    if bag not in ("normal", "window"):
        raise ValueError(f"bag must be 'normal' or 'window', got {bag!r}")
    if target.dim() == 3:
        target = target.unsqueeze(1)
    valid = _binary_valid(task, target, check)
    b, c, h, w = valid.shape
    positive = (target == 1).reshape(b * c, h, w)
    vflat = valid.reshape(b * c, h, w)
    center = positive.reshape(-1).nonzero().squeeze(1)  # [P], found once for both uses below
    center, members, ok = mil_bag_members(positive, vflat, radius=radius, bag=bag, center=center)
    # the pixels within ``radius`` (max norm) of an annotated one: boundary_bags' max_pool2d
    # dilation, written at the (few) annotated pixels' windows only
    _, window, _ = mil_bag_members(
        positive, torch.ones_like(vflat), radius=radius, bag="window", center=center
    )
    near = torch.zeros_like(vflat)
    near.view(-1)[window.reshape(-1)] = True
    negative = (vflat & ~near).reshape(b, c, h, w)
    sample = center // (c * h * w)  # [P], the sample of each annotated pixel
    n_pos = torch.bincount(sample, minlength=b)  # annotated pixels per sample
    n_neg = negative.reshape(b, -1).count_nonzero(1)
    return {
        "valid": valid,
        "center": center,
        "members": members,
        "ok": ok,
        "sample": sample,
        "negative": negative,
        "n_pos": n_pos,
        "n_neg": n_neg,
        "bag": bag,
        "radius": radius,
    }


def _mil_apply(logits: torch.Tensor, prep: dict, task: str, balanced: bool = False) -> torch.Tensor:
    logits = _check_prepared(task, logits, prep["valid"])
    b = logits.shape[0]
    members = prep["members"]
    neg_inf = torch.finfo(logits.dtype).min
    cand = logits.reshape(-1).index_select(0, members.reshape(-1)).view(members.shape)
    cand = torch.where(
        prep["ok"], cand, torch.full((), neg_inf, dtype=cand.dtype, device=cand.device)
    )  # [P, K]
    if prep["bag"] == "normal":  # the chain of maximums of boundary_bags (same ties)
        bag_max = cand[:, 0]
        for j in range(1, cand.shape[1]):
            bag_max = torch.maximum(bag_max, cand[:, j])
    else:  # max_pool2d's: the first maximum in row-major order
        bag_max = cand.max(1).values
    pos_term = F.softplus(-bag_max)  # -log s(max_B f), [P]
    neg_term = F.softplus(logits)  # -log(1 - s(f)), [B, C, H, W]
    zero = torch.zeros((), dtype=logits.dtype, device=logits.device)
    neg_sum = torch.where(prep["negative"], neg_term, zero).reshape(b, -1).sum(1)
    pos_sum = torch.zeros(b, dtype=logits.dtype, device=logits.device)
    pos_sum = pos_sum.index_add(0, prep["sample"], pos_term)
    n_pos, n_neg = prep["n_pos"].to(logits.dtype), prep["n_neg"].to(logits.dtype)
    total = (n_pos + n_neg).clamp(min=1)
    if balanced:
        pos_sum, neg_sum = pos_sum * (n_neg / total), neg_sum * (n_pos / total)
    return (pos_sum + neg_sum) / total


def hed_balanced(
    logits: torch.Tensor, target: torch.Tensor, task: str = "boundaries"
) -> torch.Tensor:
    """HED's class-balanced sigmoid cross-entropy (Xie & Tu, ICCV 2015, Eq. 2).

    ``L = -beta sum_{j in Y+} log s(f_j) - (1 - beta) sum_{j in Y-} log(1 - s(f_j))``,
    ``beta = |Y-| / |Y|`` counted per sample over its valid pixels, divided by |Y| (a mean).

    Args:
        logits: float ``[B, 1, H, W]`` or ``[B, K, H, W]``.
        target: uint8 ``[B, H, W]`` or ``[B, K, H, W]`` in {0, 1, 255}.

    Returns:
        float ``[B]``.
    """
    return _hed_apply(logits, _binary_prepare(logits, target, task), task)


def _hed_apply(logits: torch.Tensor, prep: dict, task: str) -> torch.Tensor:
    logits = _check_prepared(task, logits, prep["valid"])
    y, valid = prep["y"].to(logits.dtype), prep["valid"]
    b = logits.shape[0]
    pos = (y > 0.5) & valid
    n_pos = pos.reshape(b, -1).sum(1).to(logits.dtype)
    n_all = prep["count"].to(logits.dtype).clamp(min=1)
    beta = ((n_all - n_pos) / n_all).view(b, *([1] * (logits.dim() - 1)))  # Eq. 2 of HED
    weight = torch.where(pos, beta, 1 - beta)
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return _sum_valid(weight * bce, valid, prep["count"])


# ----------------------------------------------------------------------------------------------
# normals
# ----------------------------------------------------------------------------------------------
def normals_l1(
    pred: torch.Tensor, target: torch.Tensor, task: str = "normals", eps: float = 1e-6
) -> torch.Tensor:
    """L2 normalisation of the prediction followed by an L1 penalty (UberNet Sec. 2).

    ``L_i = 1/|V_i| sum_{p in V_i} || f_p / ||f_p||_2 - n_p ||_1``; V_i the pixels whose ground-truth
    vector is non-zero (zero vectors mark missing depth, padding or unlabelled samples).

    Args:
        pred: float ``[B, 3, H, W]``, unnormalised.
        target: float ``[B, 3, H, W]``, unit vectors or zeros.

    Returns:
        float ``[B]``.
    """
    return _normals_apply(pred, _normals_prepare(pred, target, task), task, eps=eps)


def _normals_prepare(
    pred: torch.Tensor,
    target: torch.Tensor,
    task: str,
    check: bool = True,
    largest: int | None = None,
) -> dict:
    if pred.dim() != 4 or pred.shape[1] != 3 or tuple(target.shape) != tuple(pred.shape):
        raise ValueError(
            f"{task}: expected prediction and target of the same shape [B, 3, H, W], "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    valid = target.abs().sum(1) > 0  # [B, H, W]
    return {"target": target, "valid": valid, "count": valid.reshape(valid.shape[0], -1).sum(1)}


def _normals_apply(pred: torch.Tensor, prep: dict, task: str, eps: float = 1e-6) -> torch.Tensor:
    target = prep["target"]
    if pred.dim() != 4 or tuple(target.shape) != tuple(pred.shape):
        raise ValueError(
            f"{task}: expected prediction and target of the same shape [B, 3, H, W], "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    # F.normalize's max(||f||_2, eps), with the three channels added explicitly (a reduction over
    # the channel dimension of [B, 3, H, W] is several times slower on the CPU); clamping the
    # square before the root keeps the gradient of a zero vector finite, as F.normalize does
    x, y, z = pred.unbind(1)
    norm = (x * x + y * y + z * z).clamp_min(eps * eps).sqrt().unsqueeze(1)
    unit = pred / norm
    l1 = (unit - target.to(unit.dtype)).abs().sum(1)
    return _sum_valid(l1, prep["valid"], prep["count"])


# ----------------------------------------------------------------------------------------------
# detection
# ----------------------------------------------------------------------------------------------
def detection(loss_dict: dict, labelled: torch.Tensor, task: str = "detection") -> torch.Tensor:
    """The RPN and Fast R-CNN losses, as a per-sample vector.

    torchvision's ``RegionProposalNetwork`` and ``RoIHeads`` return the four losses
    (``loss_objectness``, ``loss_rpn_box_reg``: the RPN's Eq. 1 of Ren et al.; ``loss_classifier``,
    ``loss_box_reg``: Fast R-CNN's multi-task loss) already averaged over the anchors and RoIs they
    sampled from all labelled images together, so they do not split into exact per-image terms.
    **Approximation:** every labelled sample gets the batch's total ``sum(loss_dict.values())``,
    and an unlabelled one 0; summing over samples (as the objective of Eq. 2 does) gives
    ``n_labelled x`` the batch mean, the same scale as the sum of per-sample losses of the dense
    tasks.

    Args:
        loss_dict: ``{name: float scalar}``.
        labelled: bool ``[B]``, the samples that carry detection labels.

    Returns:
        float ``[B]``.
    """
    if not isinstance(loss_dict, dict) or not loss_dict:
        raise ValueError(
            f"{task}: expected the model's detection loss dict (train mode with targets), "
            f"got {type(loss_dict).__name__}"
        )
    total = sum(v for v in loss_dict.values())
    labelled = labelled.to(device=total.device, dtype=torch.bool)
    return torch.where(
        labelled,
        total.expand(labelled.shape),
        torch.zeros((), dtype=total.dtype, device=total.device),
    )


# ----------------------------------------------------------------------------------------------
# dispatch + deep supervision
# ----------------------------------------------------------------------------------------------
#: The dense losses by name (``spec.loss``); ``detection`` is handled by :func:`task_loss`.
LOSSES = {
    "cross_entropy": cross_entropy,
    "binary_cross_entropy": binary_cross_entropy,
    "mil_boundary": mil_boundary,
    "hed_balanced": hed_balanced,
    "normals_l1": normals_l1,
}


#: loss name -> (the public function, prepare(pred, target, task, **kw) -> prepared target,
#: apply(pred, prepared, task, **kw) -> [B], the keyword arguments that go to prepare).
_FAST = {
    "cross_entropy": (cross_entropy, _cross_entropy_prepare, _cross_entropy_apply, ()),
    "binary_cross_entropy": (binary_cross_entropy, _binary_prepare, _bce_apply, ()),
    "mil_boundary": (mil_boundary, _mil_prepare, _mil_apply, ("radius", "bag")),
    "hed_balanced": (hed_balanced, _binary_prepare, _hed_apply, ()),
    "normals_l1": (normals_l1, _normals_prepare, _normals_apply, ()),
}


def _collated_bags(spec, batch: dict, kw: dict) -> dict | None:
    """The MIL bags ``collate`` prepared for ``spec``'s target (``batch["mil_targets"]``, see
    :func:`mil_targets`), when the task's loss is MIL with the same ``radius`` and ``bag``."""
    if spec.loss != "mil_boundary":
        return None
    prep = (batch.get("mil_targets") or {}).get(spec.target)
    if (
        prep is None
        or prep["radius"] != kw.get("radius", MIL_RADIUS)
        or prep["bag"] != kw.get("bag", MIL_BAG)
    ):
        return None
    return prep


def task_loss(spec, out, batch: dict, **loss_kwargs) -> torch.Tensor:
    """The per-sample loss of one task, summed over the fused output and every pyramid scale.

    Args:
        spec: the task's :class:`ubernet_lite.tasks.TaskSpec` (``name``, ``target``, ``loss``).
        out: the model's ``TaskOutputs`` (``out[spec.name]`` the fused prediction,
            ``out.scales[spec.name]`` the list of per-scale predictions, each at input resolution),
            a plain ``dict`` of fused predictions, or a single prediction tensor.
        batch: the batch dict of ``ubernet_lite.data.collate`` (``targets``, ``has_label``;
            ``checked_labels``, ``{target: largest label}`` of the targets whose values
            ``collate`` checked per sample (:func:`check_target_values`): those are not read
            again here, only the shapes and the class count are checked; ``mil_targets``, the
            MIL bags ``collate`` prepared (:func:`mil_targets`), used as they are).
        loss_kwargs: passed to the loss (e.g. ``radius=2`` for MIL).

    Returns:
        float ``[B]``: ``L(fused) + sum_s L(scale s)`` per sample (deep supervision, Sec. 2).
    """
    if spec.loss == "detection":
        loss_dict = out[spec.name] if isinstance(out, dict) and spec.name in out else out
        b = batch["images"].shape[0] if "images" in batch else None
        labelled = batch.get("has_label", {}).get(spec.target)
        if labelled is None:
            labelled = torch.ones(b, dtype=torch.bool)
        return detection(loss_dict, torch.as_tensor(labelled), task=spec.name)
    if spec.loss not in LOSSES:
        raise ValueError(
            f"{spec.name}: unknown loss {spec.loss!r}; expected one of {sorted(LOSSES) + ['detection']}"
        )
    fn = LOSSES[spec.loss]
    targets = batch.get("targets", batch)
    if spec.target not in targets:
        raise KeyError(
            f"{spec.name}: the batch has no target {spec.target!r} (targets: {sorted(targets)}); "
            "no sample of this batch is labelled for the task"
        )
    target = targets[spec.target]
    if isinstance(out, torch.Tensor):
        preds = [out]
    else:
        if spec.name not in out:
            raise KeyError(
                f"{spec.name}: the model output has no prediction for this task ({sorted(out)})"
            )
        preds = [out[spec.name], *getattr(out, "scales", {}).get(spec.name, [])]
    if fn is _FAST.get(spec.loss, (None,))[0]:
        # the target is checked and prepared once, for the fused output and every scale
        _, prepare, apply, prep_kwargs = _FAST[spec.loss]
        kw = {k: loss_kwargs.pop(k) for k in prep_kwargs if k in loss_kwargs}
        target = target.to(preds[0].device)
        checked = batch.get("checked_labels") or {}
        if spec.target in checked:  # values checked once per sample, where it was built
            kw.update(check=False, largest=checked[spec.target])
        prep = _collated_bags(spec, batch, kw)
        if prep is None:
            prep = prepare(preds[0], target, spec.name, **kw)
        losses = [apply(p, prep, spec.name, **loss_kwargs) for p in preds]
    else:
        losses = [fn(p, target.to(p.device), task=spec.name, **loss_kwargs) for p in preds]
    total = losses[0]
    for loss in losses[1:]:
        total = total + loss
    return total
