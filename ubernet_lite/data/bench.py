"""Benchmark of the synthetic world: samples per second of :class:`SynthWorld` in one process.

    python -m ubernet_lite.data.bench                 # 128 and 321 px, style "scene"
    python -m ubernet_lite.data.bench --sizes 128 --n 500 --style indoor

Prints, per image size, the rate in wall-clock time (what a training loop sees) and in the
process's CPU time (what it would see on an idle machine; on a shared machine the two differ), with
the machine's load average so that the numbers can be judged, and on a second line the median of
the wall-clock rates of chunks of :data:`CHUNK` samples (less sensitive to bursts of other
processes; rendering stays single-threaded in one process).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from .synth_scene import STYLES
from .synthetic import SPLITS, SynthWorld

#: Samples per chunk for the chunked (median) rate.
CHUNK = 25


def measure(size: int, n: int, style: str = "scene", split: str = "train", seed: int = 0) -> dict:
    """Render ``n`` samples of ``SynthWorld(split, size, seed, style=style)`` (after 3 warm-up
    samples); returns ``{"size", "n", "wall_s", "cpu_s", "wall_rate", "cpu_rate",
    "median_chunk_rate"}``, the last the median of the wall-clock rates of consecutive chunks of
    :data:`CHUNK` samples (a burst of other processes on a shared machine slows a few chunks only)."""
    world = SynthWorld(split=split, size=size, seed=seed, length=n + 3, style=style)
    for i in range(3):
        world[i]
    chunk_rates = []
    w0, c0 = time.perf_counter(), time.process_time()
    t = w0
    for i in range(3, n + 3):
        world[i]
        if (i - 2) % CHUNK == 0:
            now = time.perf_counter()
            chunk_rates.append(CHUNK / (now - t))
            t = now
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {
        "size": size,
        "n": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "wall_rate": n / wall,
        "cpu_rate": n / max(cpu, 1e-9),
        "median_chunk_rate": statistics.median(chunk_rates) if chunk_rates else n / wall,
    }


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="python -m ubernet_lite.data.bench", description="SynthWorld samples per second"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 321], help="image sizes (px)")
    parser.add_argument("--n", type=int, default=None, help="samples per size (default 400 / 100)")
    parser.add_argument("--style", default="scene", choices=STYLES)
    parser.add_argument("--split", default="train", choices=SPLITS)
    args = parser.parse_args(argv)
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(
        f"SynthWorld benchmark: style={args.style}, split={args.split}, one process, OMP_NUM_THREADS={threads}"
    )
    results = []
    for size in args.sizes:
        n = args.n if args.n is not None else (400 if size <= 160 else 100)
        r = measure(size, n, style=args.style, split=args.split)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"  {size:4d} px: {r['wall_rate']:7.1f} samples/s wall-clock, "
            f"{r['cpu_rate']:7.1f} samples/s of process CPU time "
            f"({n} samples in {r['wall_s']:.2f} s; load average {load:.2f} on {os.cpu_count()} cores)"
        )
        print(
            f"           median over chunks of {CHUNK}: {r['median_chunk_rate']:7.1f} samples/s wall-clock"
        )
        results.append(r)
    return results


if __name__ == "__main__":
    main()
