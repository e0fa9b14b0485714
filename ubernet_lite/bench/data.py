"""Benchmark of the synthetic world: samples per second of :class:`SynthWorld` in one process.

    python -m ubernet_lite.bench data                 # 128 and 321 px, style "scene", 5 runs
    python -m ubernet_lite.bench data --sizes 128 --n 500 --repeats 9 --style indoor

Runs ``--repeats`` rounds; each round renders ``--n`` new samples at every size (sizes
interleaved, so that a slow spell of a shared machine hits all of them alike). Prints, per image
size, the median over the rounds of the rate in wall-clock time (what a training loop sees) with
the slowest and fastest round, and of the rate in the process's CPU time (what it would see on an
idle machine), with the machine's load average so that the numbers can be judged; on a second
line the median of the wall-clock rates of all chunks of :data:`CHUNK` samples. Rendering stays
single-threaded in one process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from ..data.synthetic.scene import STYLES
from ..data.synthetic.world import SPLITS, SynthWorld
from . import loader as loader_bench

#: Samples per chunk for the chunked (median) rate.
CHUNK = 25


def measure(
    size: int, n: int, style: str = "scene", split: str = "train", seed: int = 0, start: int = 0
) -> dict:
    """Render samples ``start + 3 .. start + n + 2`` of ``SynthWorld(split, size, seed,
    style=style)`` (after 3 warm-up samples); returns ``{"size", "n", "wall_s", "cpu_s",
    "wall_rate", "cpu_rate", "chunk_rates", "median_chunk_rate"}``, the last the median of the
    wall-clock rates of consecutive chunks of :data:`CHUNK` samples (a burst of other processes on a
    shared machine slows a few chunks only)."""
    world = SynthWorld(split=split, size=size, seed=seed, length=start + n + 3, style=style)
    for i in range(start, start + 3):
        world[i]
    chunk_rates = []
    w0, c0 = time.perf_counter(), time.process_time()
    t = w0
    for i in range(start + 3, start + n + 3):
        world[i]
        if (i - start - 2) % CHUNK == 0:
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
        "chunk_rates": chunk_rates,
        "median_chunk_rate": statistics.median(chunk_rates) if chunk_rates else n / wall,
    }


def summarize(runs: list[dict]) -> dict:
    """Rounds of :func:`measure` at one size -> ``{"size", "n", "runs", "wall_rate" (median),
    "wall_min", "wall_max", "cpu_rate" (median), "median_chunk_rate" (over all chunks)}``."""
    walls = [r["wall_rate"] for r in runs]
    chunks = [c for r in runs for c in r["chunk_rates"]]
    return {
        "size": runs[0]["size"],
        "n": runs[0]["n"],
        "runs": len(runs),
        "wall_rate": statistics.median(walls),
        "wall_min": min(walls),
        "wall_max": max(walls),
        "cpu_rate": statistics.median(r["cpu_rate"] for r in runs),
        "median_chunk_rate": statistics.median(chunks) if chunks else statistics.median(walls),
    }


def main(argv=None) -> list[dict]:
    if argv is not None and "--real" in argv:  # the DataLoader on the real sets: bench/loader.py
        return loader_bench.main(argv)
    parser = argparse.ArgumentParser(
        prog="python -m ubernet_lite.bench data", description="SynthWorld samples per second"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 321], help="image sizes (px)")
    parser.add_argument("--n", type=int, default=None, help="samples per size (default 400 / 100)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="rounds over the sizes (the median is printed)"
    )
    parser.add_argument("--style", default="scene", choices=STYLES)
    parser.add_argument("--split", default="train", choices=SPLITS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(
        f"SynthWorld benchmark: style={args.style}, split={args.split}, one process, "
        f"OMP_NUM_THREADS={threads}, median of {args.repeats} rounds over the sizes"
    )
    counts = {s: args.n if args.n is not None else (400 if s <= 160 else 100) for s in args.sizes}
    runs: dict[int, list[dict]] = {s: [] for s in args.sizes}
    for k in range(args.repeats):  # rounds over the sizes: a slow spell hits every size alike
        for size in args.sizes:
            n = counts[size]
            runs[size].append(measure(size, n, args.style, args.split, start=k * (n + 3)))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results = []
    for size in args.sizes:
        r = summarize(runs[size])
        print(
            f"  {size:4d} px: {r['wall_rate']:7.1f} samples/s wall-clock "
            f"(rounds {r['wall_min']:.1f} to {r['wall_max']:.1f}), "
            f"{r['cpu_rate']:7.1f} samples/s of process CPU time "
            f"({r['runs']} x {r['n']} samples; load average {load:.2f} on {os.cpu_count()} cores)"
        )
        print(
            f"           median over chunks of {CHUNK}: {r['median_chunk_rate']:7.1f} samples/s wall-clock"
        )
        results.append(r)
    return results


if __name__ == "__main__":
    main()
