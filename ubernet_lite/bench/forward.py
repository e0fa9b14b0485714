"""The ``forward`` benchmark: ``python -m ubernet_lite.bench forward``.

One eval-mode forward of the shared trunk with all seven tasks against seven single-task networks
(the point of a shared trunk, Sec. 1 and Sec. 4), and the images per second of forward + backward
of the lite preset in train mode.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from ..config import UberNetConfig
from ..model import UberNet
from ..tasks import TASKS


def _median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _eval_forward_times(
    cfgs: dict, size: int, repeats: int, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of one eval-mode, no-grad forward of ``UberNet(cfg)`` on
    [1, 3, size, size], for every config of ``cfgs`` (name -> config).

    The networks are timed round-robin (one run of each per round, after one warm-up round), so
    that a change of machine load during the benchmark affects all of them alike. CPU time is
    this process's (``time.process_time``): on a shared machine it does not count the time the
    process waited for a core, so it is the steadier of the two.
    """
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
    models = {}
    for name, cfg in cfgs.items():
        torch.manual_seed(seed)
        models[name] = UberNet(cfg).eval()
    wall: dict[str, list[float]] = {name: [] for name in cfgs}
    cpu: dict[str, list[float]] = {name: [] for name in cfgs}
    for r in range(repeats + 1):
        for name, model in models.items():
            t0, c0 = time.perf_counter(), time.process_time()
            with torch.no_grad():
                model(x)
            if r:  # round 0 is the warm-up
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in cfgs}


def _lite_train_throughput(batch: int, size: int, steps: int, seed: int = 0) -> float:
    """Images per second of forward + backward of the lite preset, all tasks, train mode.

    The loss is a simple stand-in (mean square of every dense output and scale output, plus the
    detection losses), enough to make backward traverse every branch.
    """
    torch.manual_seed(seed)
    model = UberNet(UberNetConfig.lite()).train()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, size, size, generator=g)
    targets = []
    for i in range(batch):
        lo = torch.rand(2, 2, generator=g) * size * 0.5
        hi = lo + size * 0.25 + torch.rand(2, 2, generator=g) * size * 0.25
        targets.append(
            {
                "boxes": torch.cat([lo, hi], 1).clamp(max=size),
                "labels": torch.tensor([1 + i % 6, 2]),
            }
        )

    def step():
        model.zero_grad(set_to_none=True)
        out = model(x, targets=targets)
        loss = 0.0
        for name, y in out.items():
            if isinstance(y, dict):
                loss = loss + sum(y.values())
            else:
                loss = loss + y.pow(2).mean() + sum(s.pow(2).mean() for s in out.scales[name])
        loss.backward()

    return batch / _median_time(step, steps)


def main(argv: list[str] | None = None) -> int:
    """The ``forward`` benchmark: the point of a shared trunk (Sec. 1, Sec. 4)."""
    p = argparse.ArgumentParser(
        prog="python -m ubernet_lite.bench forward", description=main.__doc__
    )
    p.add_argument("--size", type=int, default=321, help="image side of the paper-preset forward")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per network (median)")
    p.add_argument("--lite-batch", type=int, default=4)
    p.add_argument("--lite-size", type=int, default=128)
    p.add_argument("--lite-steps", type=int, default=5)
    p.add_argument(
        "--detection-layer", choices=["C5", "C6"], default=None, help="default: the config's"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, eval mode, no grad")
    print(
        f"paper preset, image 1x3x{args.size}x{args.size}, median of {args.repeats} round-robin rounds after a warm-up round"
    )

    overrides = {"detection_layer": args.detection_layer} if args.detection_layer else {}
    cfgs = {"all": UberNetConfig.paper(**overrides)}
    cfgs.update(
        {name: UberNetConfig.paper(tasks=[spec], **overrides) for name, spec in TASKS.items()}
    )
    print(f"detection branch on {cfgs['all'].detection_layer}; times: wall-clock / process CPU")
    times = _eval_forward_times(cfgs, args.size, args.repeats)
    shared = times.pop("all")
    print(f"  one network, all 7 tasks:           {shared[0]:8.3f} s / {shared[1]:8.3f} s")
    for name, (w, c) in times.items():
        print(f"    single-task network {name:<20s}{w:8.3f} s / {c:8.3f} s")
    total = tuple(sum(t[k] for t in times.values()) for k in (0, 1))
    print(f"  seven single-task networks, summed: {total[0]:8.3f} s / {total[1]:8.3f} s")
    for k, kind in enumerate(("wall-clock", "CPU")):
        ratio = shared[k] / total[k]
        verdict = "met" if ratio <= 0.25 else "NOT met"
        print(f"  ratio shared / separate, {kind:<11}{ratio:8.3f}   (target <= 0.25: {verdict})")

    ips = _lite_train_throughput(args.lite_batch, args.lite_size, args.lite_steps)
    print(
        f"lite preset, train mode, all 7 tasks, batch {args.lite_batch} at {args.lite_size} px, "
        f"forward + backward: {ips:.2f} images/s (median of {args.lite_steps} steps)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
