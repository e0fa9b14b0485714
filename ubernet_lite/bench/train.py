"""Training throughput of the lite preset: ``python -m ubernet_lite.bench train``.

Runs the :class:`~ubernet_lite.training.Trainer` (seven tasks, synthetic union, async SGD) for a
few micro-batches on the CPU and prints images per second and the share of the step time spent
producing data (rendering, augmenting, collating), whose target is below 10 %.
"""

from __future__ import annotations

import argparse
import time

import torch

from ..config import UberNetConfig
from ..tasks import get_tasks
from ..training import Trainer


def measure(
    steps: int = 10,
    micro_batch: int = 2,
    image_size: int | None = None,
    tasks: str = "all",
    memory: str = "standard",
    threads: int | None = None,
    warmup: int = 2,
    prefetch: bool = True,
    augment: bool = True,
) -> dict:
    """Time ``steps`` training steps after ``warmup``; returns the numbers :func:`main` prints."""
    if threads:
        torch.set_num_threads(threads)
    cfg = UberNetConfig.lite(tasks=get_tasks(tasks))
    trainer = Trainer(
        cfg, steps=steps + warmup, micro_batch=micro_batch, image_size=image_size, memory=memory,
        progress=False, union_length=max(200, 4 * (steps + warmup) * micro_batch), prefetch=prefetch, augment=augment,
    )  # fmt: skip
    for _ in range(warmup):
        trainer.train_step()
    trainer.data_time = trainer.compute_time = 0.0
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    wall = time.perf_counter() - t0
    trainer.close()
    # what producing the data costs when done serially (render, augment, collate)
    t1 = time.perf_counter()
    for _ in range(steps):
        trainer.batches.load(trainer.stream.next_indices())
    produce = (time.perf_counter() - t1) / steps
    images = steps * micro_batch
    return {
        "tasks": len(cfg.tasks),
        "image_size": trainer.image_size,
        "micro_batch": micro_batch,
        "steps": steps,
        "threads": torch.get_num_threads(),
        "images_per_s": images / wall,
        "step_s": wall / steps,
        "prefetch": prefetch,
        "augment": augment,
        "produce_s": produce,
        "produce_share": produce / (wall / steps - trainer.data_time / steps + produce),
        "data_s": trainer.data_time / steps,
        "data_share": trainer.data_time / wall,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ubernet_lite.bench train", description=__doc__.split("\n")[0]
    )
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--micro-batch", type=int, default=2)
    p.add_argument("--image-size", type=int, default=None, help="default: the lite preset's 128")
    p.add_argument("--tasks", default="all")
    p.add_argument("--memory", default="standard")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-prefetch", action="store_true", help="render data in the training thread")
    p.add_argument("--no-augment", action="store_true", help="no random scale/crop/flip/jitter")
    args = p.parse_args(argv)
    r = measure(
        args.steps, args.micro_batch, args.image_size, args.tasks, args.memory, args.threads,
        prefetch=not args.no_prefetch, augment=not args.no_augment,
    )  # fmt: skip
    print(
        f"lite training, {r['tasks']} tasks, {r['image_size']} px, micro-batch {r['micro_batch']}, "
        f"{r['threads']} thread(s), {r['steps']} steps"
    )
    print(
        f"  throughput   {r['images_per_s']:.2f} images/s  ({r['step_s'] * 1000:.0f} ms per step)"
    )
    verdict = "ok" if r["data_share"] < 0.10 else "above the 10 % target"
    what = "render, augment, collate" if r["augment"] else "render, collate; no augmentation"
    print(
        f"  producing data ({what}) {r['produce_s'] * 1000:.0f} ms per micro-batch "
        f"= {r['produce_share']:.1%} of a step done serially"
    )
    how = "waiting for the prefetching thread" if r["prefetch"] else "producing data in the loop"
    print(
        f"  {how}: {r['data_s'] * 1000:.0f} ms per step = {r['data_share']:.1%} of the step time ({verdict})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
