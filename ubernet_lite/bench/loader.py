"""Loader throughput on the real data sets: ``python -m ubernet_lite.bench data --real``.

    python -m ubernet_lite.bench data --real --data-root ~/data/ubernet --workers 0 1 2 4

Builds the trainer's feed for ``data="real"`` (the union of the real training sets under
``--data-root``, ``real_transforms`` at ``--size`` px with augmentation, the micro-batch stream)
and prints, for each worker count, the images per second that :class:`.loader.LoaderFeed`
delivers (workers started and one micro-batch consumed before the clock starts; no training:
what the loader alone can feed). ``0`` workers loads in the main process, with ``--threads``
torch threads (default 1, as each DataLoader worker has: on a busy machine intra-op threads on
these small resizes made the main process about 10 times slower than one worker).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from ..data import TransformedDataset
from ..data.real import real_transforms
from ..tasks import TARGETS
from ..training.loader import LoaderFeed
from ..training.real_data import real_training_union
from ..training.stream import MicroBatchStream


def measure(root, size: int, workers: int, batches: int, micro_batch: int, seed: int = 0) -> dict:
    """Images per second of ``batches`` micro-batches from a ``workers``-process feed."""
    union = real_training_union(set(TARGETS), root)
    dataset = TransformedDataset(union, real_transforms(size, augment=True), seed=seed)
    stream = MicroBatchStream(union, set(TARGETS), micro_batch, seed, dataset)
    feed = LoaderFeed(stream, "cpu", workers=workers)
    try:
        feed.next_batch()  # start the workers
        t0, n = time.perf_counter(), 0
        for _ in range(batches):
            batch = feed.next_batch()
            n += 0 if batch is None else batch["images"].shape[0]
        seconds = time.perf_counter() - t0
    finally:
        feed.close()
    return {"workers": workers, "images": n, "seconds": seconds, "rate": n / seconds}


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(
        prog="python -m ubernet_lite.bench data --real",
        description="DataLoader images per second on the real data sets, against worker count",
    )
    p.add_argument("--real", action="store_true", help="(this benchmark)")
    p.add_argument("--data-root", default=None, help="default $UBERNET_DATA, else ~/data/ubernet")
    p.add_argument("--size", type=int, default=621, help="training crop side (px)")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2, 4])
    p.add_argument("--batches", type=int, default=10, help="micro-batches timed per count")
    p.add_argument("--micro-batch", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        cpus = os.cpu_count()
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"loader benchmark: real union, {args.size}-px augmented crops, micro-batch "
            f"{args.micro_batch}, {args.batches} micro-batches per worker count; {cpus} CPUs, "
            f"load average {load:.1f}; {args.threads} torch thread(s) in the main process"
        )
        rows = []
        for w in args.workers:
            r = measure(args.data_root, args.size, w, args.batches, args.micro_batch)
            rows.append(r)
            print(
                f"  workers {w:2d}: {r['rate']:7.2f} images/s ({r['images']} in {r['seconds']:.1f} s)"
            )
    finally:  # the caller's thread count (a test calls main in-process)
        torch.set_num_threads(threads)
    return rows
