"""Benchmark: time to evaluate boundaries (ODS / OIS / AP, BSDS protocol) on 100 images of 321x481.

    python -m ubernet_lite.bench boundaries [--images 100] [--thresholds 9] [--workers 2]

The default of 9 thresholds (0.1, 0.2, .., 0.9) is what fits 60 s on a 2-core laptop; the
benchmark also times the full 99 thresholds on a few images and extrapolates.

The ground truth is rendered procedurally: the contours of a random segmentation into overlapping
ellipses and straight cuts (about 1.5 % of the pixels, like one BSDS annotator). The prediction
is that contour displaced by a smooth random warp of up to ~2 pixels, blurred, scaled by a smooth
random strength, plus smooth background clutter and missing pieces, so that NMS, thinning and the
matcher all have real work at every threshold.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch
from scipy import ndimage

from ..metrics.boundaries import BoundaryMeter

__all__ = ["main", "synthetic_boundary_pair"]


def synthetic_boundary_pair(rng: np.random.Generator, h: int = 321, w: int = 481):
    """One (probability map float32 [H, W], ground truth uint8 [H, W]) pair."""
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    seg = np.zeros((h, w), dtype=np.int32)
    for k in range(1, rng.integers(6, 11)):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        a, b = rng.uniform(20, 110), rng.uniform(20, 110)
        th = rng.uniform(0, np.pi)
        u = ((xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)) / a
        v = (-(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)) / b
        seg[u * u + v * v < 1] = k
    nx, ny = rng.normal(size=2)
    seg[(xx - w / 2) * nx + (yy - h / 2) * ny > rng.uniform(-60, 60) * np.hypot(nx, ny)] += 20
    gt = np.zeros((h, w), dtype=bool)
    gt[:, 1:] |= seg[:, 1:] != seg[:, :-1]
    gt[1:, :] |= seg[1:, :] != seg[:-1, :]
    # prediction: warped, blurred, unevenly strong contour + clutter
    dy = ndimage.gaussian_filter(rng.normal(size=(h, w)), 12) * 60
    dx = ndimage.gaussian_filter(rng.normal(size=(h, w)), 12) * 60
    warped = ndimage.map_coordinates(gt.astype(np.float32), [yy + dy, xx + dx], order=1)
    soft = ndimage.gaussian_filter(warped, 1.2)
    soft /= max(float(soft.max()), 1e-6)
    strength = np.clip(0.5 + ndimage.gaussian_filter(rng.normal(size=(h, w)), 8) * 8, 0.0, 1.0)
    clutter = np.clip(ndimage.gaussian_filter(rng.normal(size=(h, w)), 2.0) * 2.5, 0.0, None)
    prob = np.clip(soft * strength + 0.2 * clutter, 0.0, 1.0).astype(np.float32)
    return prob, gt.astype(np.uint8)


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the matching workers)."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _run(pairs, thresholds: int, workers: int):
    meter = BoundaryMeter(num_thresholds=thresholds, from_logits=False, workers=workers)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    for prob, gt in pairs:
        meter.update(torch.from_numpy(prob)[None, None], torch.from_numpy(gt)[None])
    res = meter.compute()
    return res, time.perf_counter() - t0, _cpu_seconds() - c0


def main(argv=None) -> dict:
    """Run the benchmark; returns ``{"seconds", "cpu_seconds", "ODS", "OIS", "AP", ...}``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--height", type=int, default=321)
    p.add_argument("--width", type=int, default=481)
    p.add_argument(
        "--thresholds", type=int, default=9, help="9 meets 60 s on 2 cores; 99 for final numbers"
    )
    p.add_argument(
        "--full-images", type=int, default=4, help="also time 99 thresholds on this many images"
    )
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    pairs = [synthetic_boundary_pair(rng, args.height, args.width) for _ in range(args.images)]
    t_data = time.perf_counter() - t0
    gt_share = float(np.mean([g.mean() for _, g in pairs]))
    load = os.getloadavg()
    res, wall, cpu = _run(pairs, args.thresholds, args.workers)
    print(
        f"boundaries benchmark: {args.images} images {args.height}x{args.width}, max_dist 0.0075, "
        f"NMS + thinning + correspond_pixels, {args.workers} worker(s), {os.cpu_count()} CPUs, "
        f"load average before {load[0]:.1f}"
    )
    print(
        f"  ground-truth pixels: {100 * gt_share:.2f} % of the image; data generated in {t_data:.1f} s"
    )
    print(
        f"  {args.thresholds} thresholds: ODS {res['ODS']:.4f}  OIS {res['OIS']:.4f}  AP {res['AP']:.4f}"
    )
    print(
        f"  {args.thresholds} thresholds: evaluation time {wall:.1f} s wall, {cpu:.1f} s CPU "
        f"({wall / max(args.images, 1):.2f} s per image; {cpu / max(args.workers, 1):.1f} s if the "
        f"{args.workers} worker(s) had the cores to themselves)"
    )
    out = {"seconds": wall, "cpu_seconds": cpu, **res}
    k = min(args.full_images, args.images)
    if k > 0 and args.thresholds != 99:
        full, wall99, cpu99 = _run(pairs[:k], 99, args.workers)
        scale = args.images / k
        print(
            f"  99 thresholds on {k} images: ODS {full['ODS']:.4f}  OIS {full['OIS']:.4f}  "
            f"AP {full['AP']:.4f}; {wall99:.1f} s wall, {cpu99:.1f} s CPU -> about "
            f"{wall99 * scale:.0f} s wall ({cpu99 * scale / max(args.workers, 1):.0f} s on idle cores) "
            f"for {args.images} images"
        )
        out.update(seconds_99_estimate=wall99 * scale, cpu_seconds_99_estimate=cpu99 * scale)
    return out


if __name__ == "__main__":
    main()
