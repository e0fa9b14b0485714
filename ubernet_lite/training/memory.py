"""Measuring training memory: :func:`peak_memory` and the CPU allocator's timeline.

:func:`peak_memory` gives the bytes at the peak while a function runs, above what was allocated
when it started: on CUDA from ``torch.cuda.max_memory_allocated`` after a reset of the peak
counter; on the CPU from the PyTorch profiler's memory events (``profile_memory=True``): every
allocation and free the CPU allocator reports, in time order, summed cumulatively; the peak is
the maximum of that running sum. On the CPU it is deterministic (the same code allocates the same
tensors in the same order).

The memory benchmark of Sec. 4 (Figs. 3-4) that uses these is :mod:`ubernet_lite.bench.memory`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

__all__ = ["memory_events", "memory_timeline", "peak_memory"]


def _raw_events(prof) -> list[tuple[int, int]]:
    """(time ns, bytes) of every CPU allocation (+) and free (-) the profiler recorded."""
    try:  # the raw Kineto events: one per allocation / free, with its signed size
        raw = prof.profiler.kineto_results.events()
        events = [
            (e.start_ns(), e.nbytes())
            for e in raw
            if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
        ]
    except AttributeError:  # fallback: allocations attributed to ops, plus the bare frees
        events = [
            (int(e.time_range.start * 1000), e.self_cpu_memory_usage)
            for e in prof.events()
            if e.self_cpu_memory_usage
        ]
    return events


def memory_events(fn: Callable[[], object]) -> list[tuple[int, int]]:
    """Run ``fn()`` under the CPU profiler with memory events: ``(time ns, signed bytes)`` of
    every allocation and free, in time order (ties keep their order). Kineto's start/stop log
    lines (written by C++ to file descriptor 2) are silenced meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            try:
                with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                    fn()
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
    return sorted(_raw_events(prof), key=lambda e: e[0])


def _timeline_ns(fn: Callable[[], object]) -> list[tuple[int, int]]:
    """``(time ns, bytes in use above the start)`` after every CPU allocation / free of ``fn()``."""
    out, running = [], 0
    for t, nbytes in memory_events(fn):
        running += nbytes
        out.append((t, running))
    return out


def memory_timeline(fn: Callable[[], object]) -> tuple[list[float], list[int]]:
    """CPU memory over time while ``fn()`` runs: ``(seconds since the start, bytes in use above
    the start)``, one point per allocation or free the profiler recorded (Figs. 3-4 measured)."""
    tl = _timeline_ns(fn)
    if not tl:
        return [0.0], [0]
    t0 = tl[0][0]
    return [(t - t0) * 1e-9 for t, _ in tl], [b for _, b in tl]


def _cpu_peak(fn: Callable[[], object]) -> int:
    return int(max([0] + [b for _, b in _timeline_ns(fn)]))


def _cuda_peak(fn: Callable[[], object], device) -> int:
    torch.cuda.synchronize(device)
    start = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - start)


def peak_memory(fn: Callable[[], object], device: str | torch.device | None = None) -> int:
    """Bytes at the peak while ``fn()`` runs, above those allocated when it started.

    Args:
        fn: a function of no arguments (its result is discarded).
        device: ``"cpu"`` or a CUDA device; default CUDA when available, else the CPU.

    Returns:
        int bytes. CUDA: ``max_memory_allocated`` after ``reset_peak_memory_stats``, minus the
        bytes allocated at the start. CPU: the maximum of the cumulative sum of the profiler's
        allocation / free events (``torch.profiler.profile(profile_memory=True)``), which is
        deterministic.
    """
    if not callable(fn):
        raise TypeError(f"peak_memory expects a function of no arguments, got {type(fn).__name__}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        return _cuda_peak(fn, device)
    if device.type != "cpu":
        raise ValueError(f"peak_memory measures 'cpu' or 'cuda' devices, got {device}")
    return _cpu_peak(fn)
