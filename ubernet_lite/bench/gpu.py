"""The GPU benchmark: ``python -m ubernet_lite.bench gpu`` (under 8 minutes on one GPU).

For the paper preset (VGG-16 trunk, seven tasks, the 3-level pyramid 1, 1/2, 1/4) it prints:

1. **inference**: milliseconds per 621-px frame (eval mode, no grad, one image, every task;
   the paper: 0.7 s per frame on a Titan X), in float32 and in bf16 autocast;
2. **training**: images per second of one training step (``multitask_backward``: forward,
   masked losses, backward, with every task labelled) for the standard and the low-memory
   (Sec. 4) schedule, each in float32 and bf16 autocast, and the step's peak CUDA memory;
3. **widest input**: for each of those four steps, the widest square side whose peak fits in a
   fixed budget (default 12 GiB, the Titan X's memory): the peak is measured at the benchmark
   size and half of it, ``a + b side^2`` is fitted, and the prediction is measured and refined
   (at most ``--widest-steps`` more steps, default 3); the largest *measured* side that fits is printed.

Speed settings (:mod:`.accel`): bf16 rows run under bf16 autocast with float32 losses;
channels_last and ``cudnn.benchmark`` / TF32 are on for CUDA (``--no-speedups`` for none).

On the CPU the same code runs smaller (default: the lite preset at 96 px, a 64 MiB budget,
peaks from the profiler's allocation events); a CI test runs it so. Typical GPU run::

    python -m ubernet_lite.bench gpu                      # paper preset, 621 px, cuda
    python -m ubernet_lite.bench gpu --device cpu --preset lite --size 96 --repeats 1
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import time

import torch

from ..config import UberNetConfig
from ..model import UberNet
from ..training.accel import (
    Speedups,
    apply_backend_flags,
    autocast_model,
    prepare_images,
    prepare_model,
)
from ..training.backward import multitask_backward
from ..training.memory import peak_memory
from .memory import bench_batch

GIB = 1024**3
MIB = 1024**2
SCHEDULES = ("standard", "low")
PRECISIONS = ("fp32", "bf16")


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn, device, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build_model(preset: str, device, speed: Speedups, seed: int = 0) -> UberNet:
    """``UberNet(UberNetConfig.<preset>())`` on ``device`` (channels_last if ``speed`` says)."""
    cfg = getattr(UberNetConfig, preset)()
    torch.manual_seed(seed)
    return prepare_model(UberNet(cfg).to(device), speed)


def _speed(base: Speedups, precision: str) -> Speedups:
    return dataclasses.replace(base, autocast=precision == "bf16")


def inference_ms(model, size: int, device, speed: Speedups, repeats: int) -> float:
    """Median ms of one eval-mode forward of every task on a [1, 3, size, size] frame."""
    x = prepare_images(torch.rand(1, 3, size, size, device=device), speed)
    model.eval()

    def run():
        with torch.no_grad(), autocast_model(model, speed):
            model(x)

    try:
        return 1000 * _median_seconds(run, device, repeats)
    finally:
        model.train()


def _step(model, batch, memory: str, speed: Speedups):
    def run():
        with autocast_model(model, speed):
            multitask_backward(model, batch, memory=memory)
        model.zero_grad(set_to_none=True)

    return run


def _batch(size: int, batch_size: int, device, speed: Speedups) -> dict:
    batch = bench_batch(size, batch_size=batch_size, seed=0, device=device)
    batch["images"] = prepare_images(batch["images"], speed)
    return batch


def train_rate(
    model, size: int, batch_size: int, memory: str, speed: Speedups, device, repeats: int
) -> tuple[float, int]:
    """``(images per second, peak bytes)`` of one training step of ``batch_size`` images."""
    model.train()
    step = _step(model, _batch(size, batch_size, device, speed), memory, speed)
    seconds = _median_seconds(step, device, repeats)
    return batch_size / seconds, step_peak(model, size, batch_size, memory, speed, device)


def step_peak(model, size: int, batch_size: int, memory: str, speed: Speedups, device) -> int:
    """Peak bytes of one training step above what was allocated before it (a fresh batch)."""
    batch = _batch(size, batch_size, device, speed)
    return peak_memory(_step(model, batch, memory, speed), device)


def widest_input(
    model,
    memory: str,
    speed: Speedups,
    device,
    budget: float,
    measured: dict[int, int],
    batch_size: int = 1,
    steps: int = 2,
    multiple: int = 8,
) -> tuple[int, int, dict[int, int]]:
    """The widest measured square side (a multiple of ``multiple``) whose step fits ``budget``.

    ``measured``: ``{side: peak}`` already known (at least two sides). Fits ``a + b side^2`` to
    the two points nearest the budget, measures the predicted side, and repeats ``steps``
    times. Returns ``(side, its peak, every {side: peak} measured)``; side 0 if none fits.
    """
    pts = dict(measured)
    for _ in range(steps):
        fit = {s: p for s, p in pts.items() if p <= budget}
        near = sorted(pts, key=lambda s: abs(pts[s] - budget))[:2]
        (s0, s1) = sorted(near)
        p0, p1 = pts[s0], pts[s1]
        if p1 <= p0:
            break
        b = (p1 - p0) / (s1 * s1 - s0 * s0)  # bytes per pixel of the side^2 line
        side = int(math.sqrt(max(1.0, s0 * s0 + (budget - p0) / b))) // multiple * multiple
        if side < multiple or side in pts:
            break
        if fit and side <= max(fit):
            break
        try:
            pts[side] = step_peak(model, side, batch_size, memory, speed, device)
        except torch.cuda.OutOfMemoryError:  # the device itself is smaller than the budget
            pts[side] = int(budget) + 1
            torch.cuda.empty_cache()
        if pts[side] <= budget and pts[side] >= 0.97 * budget:
            break
    fit = {s: p for s, p in pts.items() if p <= budget}
    side = max(fit) if fit else 0
    return side, fit.get(side, 0), pts


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ubernet_lite.bench gpu",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    p.add_argument("--preset", default=None, help="paper (default on cuda) or lite (cpu)")
    p.add_argument("--size", type=int, default=None, help="frame side (621 cuda, 96 cpu)")
    p.add_argument("--batch", type=int, default=1, help="images per training step")
    p.add_argument("--repeats", type=int, default=None, help="timed runs (5 cuda, 2 cpu)")
    p.add_argument(
        "--budget-gib", type=float, default=None, help="memory budget (12 cuda, 1/16 cpu)"
    )
    p.add_argument("--widest-steps", type=int, default=3, help="refinements of the widest side")
    p.add_argument("--no-widest", action="store_true", help="skip the widest-input search")
    p.add_argument("--no-speedups", action="store_true", help="no channels_last/cudnn.benchmark")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = torch.device(device).type == "cuda"
    preset = args.preset or ("paper" if cuda else "lite")
    size = args.size or (621 if cuda else 96)
    repeats = args.repeats or (5 if cuda else 2)
    budget = (args.budget_gib if args.budget_gib is not None else (12 if cuda else 1 / 16)) * GIB
    base = Speedups.for_device(device, enabled=False if args.no_speedups else None)
    base = dataclasses.replace(base, autocast=False)
    apply_backend_flags(base)
    t_start = time.perf_counter()
    model = build_model(preset, device, base)
    cfg = model.cfg
    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(
        f"bench gpu: {name}, preset {preset} ({len(cfg.tasks)} tasks, pyramid "
        f"{tuple(cfg.pyramid_scales)}), {size}-px frames, batch {args.batch}, channels_last "
        f"{base.channels_last}, cudnn.benchmark {base.benchmark}, torch {torch.__version__}"
    )
    print("inference (eval, no grad, every task, one frame):")
    for prec in PRECISIONS:
        ms = inference_ms(model, size, device, _speed(base, prec), repeats)
        print(f"  {prec:>4}: {ms:9.1f} ms per {size}-px frame   (paper: 700 ms on a Titan X)")
    unit = "MiB"
    print(f"training step (forward + masked losses + backward, every task labelled), peak {unit}:")
    rows = {}
    for memory in SCHEDULES:
        for prec in PRECISIONS:
            rate, peak = train_rate(
                model, size, args.batch, memory, _speed(base, prec), device, repeats
            )
            rows[memory, prec] = peak
            print(f"  {memory:>8} {prec:>4}: {rate:8.2f} images/s   peak {peak / MIB:9.1f} {unit}")
    if not args.no_widest:
        half = max(model.min_input_size, size // 2 // 8 * 8)
        print(f"widest square input whose step fits in {budget / GIB:.3g} GiB (measured):")
        for memory in SCHEDULES:
            for prec in PRECISIONS:
                speed = _speed(base, prec)
                known = {
                    size: rows[memory, prec],
                    half: step_peak(model, half, args.batch, memory, speed, device),
                }
                side, peak, pts = widest_input(
                    model, memory, speed, device, budget, known, args.batch, args.widest_steps
                )
                tried = ", ".join(f"{s}:{p / MIB:.0f}" for s, p in sorted(pts.items()))
                print(
                    f"  {memory:>8} {prec:>4}: {side:5d} px (peak {peak / MIB:.0f} {unit}; "
                    f"side:MiB measured {tried})"
                )
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
