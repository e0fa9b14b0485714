"""Boundary detection metrics with the BSDS protocol: ODS, OIS and AP (Table 7 of the paper).

The protocol (Martin et al., PAMI 2004; the BSDS500 benchmark code, as used by HED and by Kokkinos,
ICLR 2016):

1. *Thin the prediction*: non-maximum suppression along the edge normal (Dollar's ``edgesNms``,
   the C kernel ``pyEdgeEval.nms``; the orientation from second derivatives of the
   triangle-smoothed map, as in Dollar's ``edgesEvalImg``).
2. For each threshold t of ``T`` thresholds: binarise ``E >= t``, thin it to one pixel
   (morphological thinning as MATLAB's ``bwmorph(E, 'thin', inf)``), and *match* its pixels one to
   one with the ground-truth pixels within ``max_dist`` (a fraction of the image diagonal: 0.0075
   for BSDS) with the min-cost assignment of ``pyEdgeEval.correspond_pixels`` (the benchmark's
   ``matchEdgeMaps``).
3. Count, per image and threshold: matched GT pixels ``cnt_R`` of ``sum_R`` GT pixels (recall), and
   matched predicted pixels ``cnt_P`` of ``sum_P`` predicted pixels (precision).
4. ODS: F = 2PR / (P + R) of the counts summed over the data set, maximised over one threshold for
   the whole data set (linearly interpolated between thresholds, as the benchmark does). OIS: the
   counts of each image's best threshold, summed, then F. AP: the area under the data set's
   precision-recall curve, sampled at recall 0, 0.01, ..., 1.

Cost: the assignment is the expensive step, about 0.1 s of CPU per image and threshold at
321x481 (a few thousand candidate pixels), so 99 thresholds cost ~10 s per image: use
``workers`` (a process pool over images) and fewer thresholds (e.g. 9) for quick checks.
"""

from __future__ import annotations

import ctypes
import importlib
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
from pyEdgeEval import correspond_pixels
from pyEdgeEval import nms as _edge_nms_kernel

__all__ = [
    "BoundaryMeter",
    "boundary_counts",
    "boundary_metrics",
    "boundary_nms",
    "default_thresholds",
    "match_boundaries",
    "scores_from_counts",
    "thin",
]

#: BSDS tolerance: a fraction of the image diagonal.
BSDS_MAX_DIST = 0.0075

#: The seed of the matching's random outlier edges (:func:`match_boundaries`).
MATCH_SEED = 1


def _matching_reseed():
    """A function that reseeds the benchmark's random generator (``Random::rand`` of the BSDS
    C++ code inside ``pyEdgeEval``'s matching extension) with :data:`MATCH_SEED`, or None where
    that extension does not export it (then the counts keep their few-pixel jitter).

    The BSDS code seeds it from the clock when the library loads, and every matching draws from
    it, so without a reseed the same maps can match a pixel more or less in another process, or
    later in the same one. Reseeded before each matching, a count depends on the two maps only.
    """
    try:
        lib = ctypes.CDLL(importlib.import_module("pyEdgeEval._lib.correspond_pixels").__file__)
        reseed = lib._ZN6Random6reseedEm  # void Random::reseed(u_int64_t), ``this`` first
        generator = ctypes.addressof(ctypes.c_char.in_dll(lib, "_ZN6Random4randE"))
    except (ImportError, OSError, AttributeError, ValueError):
        return None
    reseed.argtypes, reseed.restype = [ctypes.c_void_p, ctypes.c_uint64], None
    return lambda: reseed(generator, MATCH_SEED)


_reseed_matching = _matching_reseed()


def default_thresholds(n: int = 99) -> np.ndarray:
    """``n`` thresholds evenly spaced in (0, 1), as the BSDS benchmark: ``1/(n+1) .. n/(n+1)``."""
    if n < 1:
        raise ValueError(f"num_thresholds must be >= 1, got {n}")
    return np.linspace(1.0 / (n + 1), 1.0 - 1.0 / (n + 1), n)


# ----------------------------------------------------------------------------------------------
# thinning the prediction
# ----------------------------------------------------------------------------------------------
def _conv_tri(img: np.ndarray, r: int) -> np.ndarray:
    """Dollar's ``convTri``: separable triangle filter of radius ``r`` with symmetric padding."""
    if r <= 0:
        return img
    if r == 1:
        f = np.array([1.0, 2.0, 1.0]) / 4.0
    else:
        f = (
            np.concatenate([np.arange(1, r + 2), np.arange(r, 0, -1)]).astype(np.float64)
            / (r + 1) ** 2
        )
    x = np.pad(img, r, mode="symmetric")
    # rows then columns
    k = len(f)
    out = sum(f[i] * x[i : x.shape[0] - k + 1 + i, :] for i in range(k))
    out = sum(f[i] * out[:, i : out.shape[1] - k + 1 + i] for i in range(k))
    return out


def edge_orientation(edge: np.ndarray) -> np.ndarray:
    """Normal orientation of an edge map in [0, pi), as Dollar's ``edgesEvalImg``.

    ``O = mod(atan(Oyy sign(-Oxy) / (Oxx + 1e-5)), pi)`` with the derivatives of ``convTri(E, 4)``.

    Args:
        edge: float ``[H, W]``.

    Returns:
        float64 ``[H, W]``.
    """
    e = _conv_tri(edge.astype(np.float64), 4)
    oy, ox = np.gradient(e)
    _, oxx = np.gradient(ox)
    oyy, oxy = np.gradient(oy)
    return np.mod(np.arctan(oyy * np.sign(-oxy) / (oxx + 1e-5)), np.pi)


def boundary_nms(edge: np.ndarray, r: int = 1, s: int = 5, m: float = 1.01) -> np.ndarray:
    """Non-maximum suppression of a boundary probability map (``pyEdgeEval.nms``, Dollar's kernel).

    A pixel survives if it is not smaller than ``m`` times its two interpolated neighbours at
    distance 1..r along the normal; values within ``s`` pixels of the image border are damped.

    Args:
        edge: float ``[H, W]`` in [0, 1].

    Returns:
        float64 ``[H, W]``: the thinned map.
    """
    edge = np.asarray(edge, dtype=np.float64)
    if edge.shape[0] < 3 or edge.shape[1] < 3:
        return edge.copy()
    return _edge_nms_kernel(edge, edge_orientation(edge), r=r, s=s, m=m)


def _thin_luts() -> tuple[np.ndarray, np.ndarray]:
    """The two lookup tables (512 entries: keep the centre pixel or not) of the thinning algorithm
    of Lam, Lee and Suen (1992), the one of MATLAB's ``bwmorph(..., 'thin')``.

    Neighbours x1..x8 counter-clockwise from the east; a pixel is deleted in sub-iteration 1 if
    G1 (crossing number X_H = 1), G2 (2 <= min(n1, n2) <= 3) and G3 ((x2 | x3 | ~x8) & x1 == 0)
    hold, in sub-iteration 2 with G3' ((x6 | x7 | ~x4) & x5 == 0) instead of G3.
    """
    codes = np.arange(512)
    # bit of each neighbour in the 3x3 code (row-major bits 0..8; centre = bit 4)
    bit = {"E": 5, "NE": 2, "N": 1, "NW": 0, "W": 3, "SW": 6, "S": 7, "SE": 8}
    order = ["E", "NE", "N", "NW", "W", "SW", "S", "SE"]
    x = [None] + [((codes >> bit[n]) & 1).astype(bool) for n in order]  # x[1..8]
    x.append(x[1])  # x9 = x1
    centre = ((codes >> 4) & 1).astype(bool)
    xh = sum((~x[2 * i - 1]) & (x[2 * i] | x[2 * i + 1]) for i in range(1, 5))
    n1 = sum(x[2 * k - 1] | x[2 * k] for k in range(1, 5))
    n2 = sum(x[2 * k] | x[2 * k + 1] for k in range(1, 5))
    g12 = (xh == 1) & (np.minimum(n1, n2) >= 2) & (np.minimum(n1, n2) <= 3)
    g3 = ~((x[2] | x[3] | ~x[8]) & x[1])
    g3p = ~((x[6] | x[7] | ~x[4]) & x[5])
    return centre & ~(g12 & g3), centre & ~(g12 & g3p)


_LUT1, _LUT2 = _thin_luts()
_OFFSETS = [(dy, dx, 1 << (3 * (dy + 1) + (dx + 1))) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def _sub_iteration(p: np.ndarray, ys: np.ndarray, xs: np.ndarray, lut: np.ndarray) -> bool:
    """One parallel sub-iteration on the set pixels (``ys``, ``xs`` in the 1-padded ``p``)."""
    code = np.zeros(len(ys), dtype=np.int32)
    for dy, dx, w in _OFFSETS:
        code += p[ys + dy, xs + dx] * w
    keep = lut[code]
    if keep.all():
        return False
    p[ys[~keep], xs[~keep]] = False
    return True


def thin(binary: np.ndarray, max_iter: int | None = None) -> np.ndarray:
    """Morphological thinning to one-pixel-wide curves (MATLAB's ``bwmorph(b, 'thin', inf)``).

    Works on the set pixels only (predictions after NMS are sparse).

    Args:
        binary: bool ``[H, W]``.

    Returns:
        bool ``[H, W]``.
    """
    p = np.pad(np.asarray(binary, dtype=bool), 1)
    it = 0
    while max_iter is None or it < max_iter:
        ys, xs = np.nonzero(p)
        changed = _sub_iteration(p, ys, xs, _LUT1)
        ys, xs = np.nonzero(p)
        changed = _sub_iteration(p, ys, xs, _LUT2) or changed
        it += 1
        if not changed:
            break
    return p[1:-1, 1:-1]


# ----------------------------------------------------------------------------------------------
# matching
# ----------------------------------------------------------------------------------------------
def match_boundaries(pred: np.ndarray, gt: np.ndarray, max_dist: float = BSDS_MAX_DIST):
    """One-to-one matching of predicted and ground-truth boundary pixels (``correspond_pixels``).

    The benchmark's ``matchEdgeMaps``: a min-cost assignment in which a pair within
    ``max_dist x diagonal`` costs its distance and an unmatched pixel costs 100 times that
    tolerance, so it matches as many pixels as it can, then as close as it can. It adds a few random
    outlier edges per pixel; their generator, which the benchmark seeds from the clock, is reseeded
    with :data:`MATCH_SEED` before each call (:func:`_matching_reseed`), so the same maps give the
    same matching in every run and process (unseeded, a count can change by a pixel or so).

    Args:
        pred: bool ``[H, W]``, thinned prediction.
        gt: bool ``[H, W]``.
        max_dist: tolerance as a fraction of the image diagonal.

    Returns:
        ``(matched_pred, matched_gt)``: bool ``[H, W]`` each.
    """
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if not pred.any() or not gt.any():
        return np.zeros(pred.shape, bool), np.zeros(gt.shape, bool)
    if _reseed_matching is not None:
        _reseed_matching()
    a, b, _, _ = correspond_pixels(pred, gt, max_dist=max_dist)
    return a > 0, b > 0


def boundary_counts(
    prob: np.ndarray,
    gt: np.ndarray,
    thresholds: np.ndarray | int = 99,
    max_dist: float = BSDS_MAX_DIST,
    apply_nms: bool = True,
    apply_thin: bool = True,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Per-threshold match counts of one image (step 2-3 of the BSDS protocol).

    Args:
        prob: float ``[H, W]`` boundary probabilities in [0, 1].
        gt: ``[H, W]``, non-zero on boundary pixels.
        thresholds: an array of thresholds or their number (see :func:`default_thresholds`).
        valid: optional bool ``[H, W]``; predictions and GT outside it are dropped.

    Returns:
        float64 ``[T, 4]``: ``cnt_R, sum_R, cnt_P, sum_P`` per threshold.
    """
    thresholds = (
        default_thresholds(thresholds) if isinstance(thresholds, int) else np.asarray(thresholds)
    )
    prob = np.asarray(prob, dtype=np.float64)
    gt = np.asarray(gt) > 0
    if prob.shape != gt.shape:
        raise ValueError(
            f"boundaries: prediction {prob.shape} and ground truth {gt.shape} differ; expected both [H, W]"
        )
    if apply_nms:
        prob = boundary_nms(prob)
    if valid is not None:
        prob = np.where(valid, prob, 0.0)
        gt = gt & valid
    out = np.zeros((len(thresholds), 4))
    n_gt = gt.sum()
    prev = None
    for i, t in enumerate(thresholds):
        b = prob >= t
        if apply_thin:
            b = thin(b)
        if prev is not None and np.array_equal(b, prev[0]):
            out[i] = prev[1]
            continue
        m1, m2 = match_boundaries(b, gt, max_dist=max_dist)
        out[i] = (m2.sum(), n_gt, m1.sum(), b.sum())
        prev = (b, out[i].copy())
    return out


# ----------------------------------------------------------------------------------------------
# scores
# ----------------------------------------------------------------------------------------------
def _f(p, r):
    p, r = np.asarray(p, dtype=np.float64), np.asarray(r, dtype=np.float64)
    s = p + r
    return np.where(s > 0, 2 * p * r / np.where(s > 0, s, 1), 0.0)


def _rp(c):
    """Recall and precision from ``[..., 4]`` counts (0/0 -> 0, as the benchmark)."""
    rec = c[..., 0] / np.maximum(c[..., 1], 1e-300) * (c[..., 1] > 0)
    prec = c[..., 2] / np.maximum(c[..., 3], 1e-300) * (c[..., 3] > 0)
    return rec, prec


def scores_from_counts(counts: np.ndarray, thresholds: np.ndarray) -> dict[str, float]:
    """ODS, OIS and AP from per-image counts.

    Args:
        counts: float ``[N, T, 4]`` (``cnt_R, sum_R, cnt_P, sum_P``).
        thresholds: float ``[T]``.

    Returns:
        ``{"ODS", "OIS", "AP", "ODS_threshold"}``; NaN when there is no image.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 3 or counts.shape[0] == 0:
        return {"ODS": math.nan, "OIS": math.nan, "AP": math.nan, "ODS_threshold": math.nan}
    thresholds = np.asarray(thresholds, dtype=np.float64)
    total = counts.sum(0)  # [T, 4]
    rec, prec = _rp(total)
    # ODS: best F over thresholds, interpolating R and P linearly between neighbours (100 steps)
    f = _f(prec, rec)
    best_i = int(np.argmax(f))
    ods, ods_t = float(f[best_i]), float(thresholds[best_i])
    if len(thresholds) > 1:
        d = np.linspace(0, 1, 101)[None, :]
        ri = rec[1:, None] * d + rec[:-1, None] * (1 - d)
        pi = prec[1:, None] * d + prec[:-1, None] * (1 - d)
        fi = _f(pi, ri)
        j = np.unravel_index(int(np.argmax(fi)), fi.shape)
        if fi[j] > ods:
            ods = float(fi[j])
            ods_t = float(thresholds[j[0] + 1] * d[0, j[1]] + thresholds[j[0]] * (1 - d[0, j[1]]))
    # OIS: every image at its own best threshold (no interpolation), counts summed
    r_img, p_img = _rp(counts)
    best = np.argmax(_f(p_img, r_img), axis=1)  # [N]
    chosen = counts[np.arange(counts.shape[0]), best].sum(0)
    r_o, p_o = _rp(chosen)
    ois = float(_f(p_o, r_o))
    # AP: precision interpolated at recall 0:0.01:1 over the unique recalls (benchmark's Area_PR)
    ap = 0.0
    ru, idx = np.unique(rec, return_index=True)
    if len(ru) > 1:
        pu = prec[idx]
        grid = np.linspace(0, 1, 101)
        inside = (grid >= ru[0]) & (grid <= ru[-1])
        ap = float(np.interp(grid[inside], ru, pu).sum() * 0.01)
    return {"ODS": ods, "OIS": ois, "AP": ap, "ODS_threshold": ods_t}


# ----------------------------------------------------------------------------------------------
# accumulator + functional form
# ----------------------------------------------------------------------------------------------
def _one_image(args):
    prob, gt, valid, thresholds, max_dist, apply_nms = args
    return boundary_counts(
        prob, gt, thresholds, max_dist=max_dist, apply_nms=apply_nms, valid=valid
    )


def _to_maps(pred, target, from_logits: bool, task: str):
    """``pred`` [B, 1, H, W] / [B, H, W] / [H, W] and ``target`` alike -> lists of numpy maps."""
    pred = torch.as_tensor(pred).detach()
    target = torch.as_tensor(target).detach()
    if pred.dim() == 4:
        if pred.shape[1] != 1:
            raise ValueError(
                f"{task}: expected a prediction [B, 1, H, W] or [B, H, W], got {tuple(pred.shape)}"
            )
        pred = pred[:, 0]
    if target.dim() == 4 and target.shape[1] == 1:
        target = target[:, 0]
    if pred.dim() == 2:
        pred, target = pred[None], target[None] if target.dim() == 2 else target
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(
            f"{task}: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ; "
            f"expected a target [B, H, W] = {tuple(pred.shape)}"
        )
    if not bool(torch.isfinite(pred).all()):
        raise ValueError(
            f"{task}: the prediction holds NaN or infinite values (a diverged model?); "
            "expected finite scores"
        )
    t = target.long()
    bad = (t != 0) & (t != 1) & (t != 255)
    if bool(bad.any()):
        raise ValueError(
            f"{task}: boundary targets must be 0, 1 or 255 (ignore), found {sorted(t[bad].unique().tolist())[:5]}"
        )
    prob = torch.sigmoid(pred.float()) if from_logits else pred.float()
    return prob.cpu().numpy(), (t == 1).cpu().numpy(), (t != 255).cpu().numpy()


class BoundaryMeter:
    """Accumulates BSDS counts image by image; :meth:`compute` gives ODS, OIS and AP.

    Args:
        num_thresholds: thresholds in (0, 1) (99 for final numbers, e.g. 9 for quick checks).
        max_dist: matching tolerance as a fraction of the image diagonal (0.0075 for BSDS).
        from_logits: ``update`` receives logits (the model's output) rather than probabilities.
        apply_nms: thin the predictions by non-maximum suppression first.
        workers: processes that match images in parallel (1: in the calling process).
        task: name used in error messages.
    """

    def __init__(
        self,
        num_thresholds: int = 99,
        max_dist: float = BSDS_MAX_DIST,
        from_logits: bool = True,
        apply_nms: bool = True,
        workers: int = 1,
        task: str = "boundaries",
    ):
        self.thresholds = default_thresholds(num_thresholds)
        self.max_dist = max_dist
        self.from_logits = from_logits
        self.apply_nms = apply_nms
        self.workers = workers
        self.task = task
        self.counts: list[np.ndarray] = []  # one [T, 4] per image
        self._pending: list[tuple] = []

    def update(self, pred, target) -> None:
        """Add a batch: ``pred`` logits (or probabilities) ``[B, 1, H, W]``, ``target`` ``[B, H, W]``
        in {0, 1, 255}; an image without a valid pixel is skipped."""
        probs, gts, valids = _to_maps(pred, target, self.from_logits, self.task)
        for p, g, v in zip(probs, gts, valids, strict=True):
            if not v.any():
                continue
            job = (p, g, None if v.all() else v, self.thresholds, self.max_dist, self.apply_nms)
            if self.workers > 1:
                self._pending.append(job)
                if len(self._pending) >= 8 * self.workers:
                    self._flush()
            else:
                self.counts.append(_one_image(job))

    def _flush(self) -> None:
        if not self._pending:
            return
        self.counts.extend(_parallel_map(_one_image, self._pending, self.workers))
        self._pending = []

    def compute(self) -> dict[str, float]:
        """``{"ODS", "OIS", "AP", "ODS_threshold"}`` over every image seen (NaN if none)."""
        self._flush()
        if not self.counts:
            return scores_from_counts(np.zeros((0, len(self.thresholds), 4)), self.thresholds)
        return scores_from_counts(np.stack(self.counts), self.thresholds)


def _parallel_map(fn, jobs, workers: int):
    method = (
        "fork"
        if "fork" in multiprocessing.get_all_start_methods() and os.name == "posix"
        else "spawn"
    )
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context(method)
    ) as ex:
        return list(ex.map(fn, jobs))


def boundary_metrics(
    preds,
    targets,
    num_thresholds: int = 99,
    max_dist: float = BSDS_MAX_DIST,
    from_logits: bool = False,
    workers: int = 1,
) -> dict[str, float]:
    """ODS / OIS / AP of a list of probability maps ``[H, W]`` against ``[H, W]`` ground truths."""
    meter = BoundaryMeter(num_thresholds, max_dist, from_logits=from_logits, workers=workers)
    for p, t in zip(preds, targets, strict=True):
        meter.update(torch.as_tensor(p)[None], torch.as_tensor(t)[None])
    return meter.compute()
