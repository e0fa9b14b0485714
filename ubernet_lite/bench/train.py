"""Training cost of the lite preset: ``python -m ubernet_lite.bench train``.

Two measurements, in one run:

1. **The step against the trunk** (:func:`step_cost`): one seven-task training step (forward of
   every labelled task, the masked objective of Eq. 1-2, backward) on a micro-batch, against the
   forward + backward of the trunk alone over the same images' pyramid levels, as a ratio; once
   on a fully labelled batch and once on a partially labelled union batch. The three are timed
   round-robin (one of each per round), so a change of machine load affects them alike; the
   medians over the rounds are compared. Target: at most 2.5 with all labels. The batches are
   ``collate``'s, as the trainer's data pipeline makes them: their label values are checked and
   the MIL loss's bags gathered there (``batch["mil_targets"]``), once per batch, not in the step.
2. **Throughput** (:func:`measure`): the :class:`~ubernet_lite.training.Trainer` (seven tasks,
   synthetic union, async SGD) for a few micro-batches, images per second and the share of the
   step time spent producing data (rendering, augmenting, collating), whose target is below 10 %.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ..config import UberNetConfig
from ..data import SynthWorld, collate, diverse_union
from ..model import UberNet
from ..model.pyramid import image_pyramid
from ..tasks import get_tasks
from ..training import Trainer
from ..training.backward import multitask_backward

#: The step-to-trunk ratio :func:`step_cost` aims at, with all labels.
STEP_RATIO_TARGET = 2.5


def trunk_backward(model: UberNet, images: torch.Tensor) -> None:
    """Forward + backward of ``model``'s trunk alone over the pyramid levels of ``images``
    [B, 3, H, W] (the loss is the sum of the six taps' means, so backward reaches every layer)."""
    model.zero_grad(set_to_none=True)
    loss = None
    for level in image_pyramid(images, model.scales):
        term = sum(t.mean() for t in model.trunk(level))
        loss = term if loss is None else loss + term
    loss.backward()


def step_cost(
    rounds: int = 7, micro_batch: int = 4, image_size: int = 128, threads: int | None = 1
) -> dict:
    """Median wall-clock and process-CPU seconds of the trunk's forward + backward and of a
    seven-task training step (``multitask_backward``) on a fully labelled batch (the synthetic
    world's first ``micro_batch`` images) and on a union batch (the union sampler's first draws,
    the same images' size), timed round-robin over ``rounds`` rounds after one warm-up round."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = UberNet(UberNetConfig.lite()).train()
    world = SynthWorld(split="train", size=image_size, seed=0)
    full = collate([world[i] for i in range(micro_batch)])
    union = diverse_union(split="train", size=image_size, seed=0)
    draws = iter(union.sampler(seed=0))
    part = collate([union[next(draws)] for _ in range(micro_batch)])
    jobs = {
        "trunk": lambda: trunk_backward(model, full["images"]),
        "all labels": lambda: multitask_backward(model, full),
        "union batch": lambda: multitask_backward(model, part),
    }
    wall: dict[str, list[float]] = {k: [] for k in jobs}
    cpu: dict[str, list[float]] = {k: [] for k in jobs}
    for r in range(rounds + 1):
        for name, job in jobs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            job()
            if r:  # round 0 is the warm-up
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    labelled = {t: int(v.sum()) for t, v in part["has_label"].items()}
    return {
        "image_size": image_size,
        "micro_batch": micro_batch,
        "rounds": rounds,
        "threads": torch.get_num_threads(),
        "union_labels": labelled,
        "wall": {k: statistics.median(v) for k, v in wall.items()},
        "cpu": {k: statistics.median(v) for k, v in cpu.items()},
    }


def print_step_cost(r: dict) -> None:
    """Print :func:`step_cost`'s result: times and the step / trunk ratios."""
    print(
        f"lite step vs trunk, 7 tasks, {r['image_size']} px, micro-batch {r['micro_batch']}, "
        f"{r['threads']} thread(s), median of {r['rounds']} round-robin rounds after a warm-up round"
    )
    labels = ", ".join(f"{t} {n}" for t, n in r["union_labels"].items())
    print(f"  union batch labels (samples per target): {labels}")
    print("                              wall-clock      CPU   ratio to trunk (wall / CPU)")
    trunk_w, trunk_c = r["wall"]["trunk"], r["cpu"]["trunk"]
    for name in ("trunk", "all labels", "union batch"):
        w, c = r["wall"][name], r["cpu"][name]
        what = "trunk fwd+bwd, 3 levels" if name == "trunk" else f"step, {name}"
        print(
            f"  {what:<26s}{w * 1000:8.0f} ms {c * 1000:6.0f} ms   {w / trunk_w:5.2f} / {c / trunk_c:5.2f}"
        )
    ratio = r["cpu"]["all labels"] / trunk_c
    verdict = "met" if ratio <= STEP_RATIO_TARGET else "NOT met"
    print(f"  all labels, CPU ratio {ratio:.2f} (target <= {STEP_RATIO_TARGET}: {verdict})")


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
    p.add_argument(
        "--rounds", type=int, default=7, help="round-robin rounds of the step/trunk ratio"
    )
    p.add_argument(
        "--ratio-threads", type=int, default=1, help="threads of the step/trunk ratio (default 1)"
    )
    p.add_argument("--ratio-batch", type=int, default=4, help="micro-batch of the step/trunk ratio")
    p.add_argument("--ratio-size", type=int, default=128, help="image side of the step/trunk ratio")
    p.add_argument("--no-throughput", action="store_true", help="only the step/trunk ratio")
    args = p.parse_args(argv)
    threads = torch.get_num_threads()
    print_step_cost(step_cost(args.rounds, args.ratio_batch, args.ratio_size, args.ratio_threads))
    if args.no_throughput:
        return 0
    torch.set_num_threads(args.threads or threads)
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
