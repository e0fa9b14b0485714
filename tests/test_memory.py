"""peak_memory (profiler timeline on the CPU) and the memory benchmark's pieces (Sec. 4)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ubernet_lite import UberNet, UberNetConfig
from ubernet_lite.bench.memory import (
    bench_batch,
    bench_tasks,
    main,
    measure,
    step_peak,
    step_timeline,
    strategies,
    widest_size,
)
from ubernet_lite.training.memory import memory_timeline, peak_memory

MiB = 2**20


def _conv_step(size):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 4, 3, padding=1)
    )
    x = torch.rand(2, 3, size, size)

    def step():
        net(x).square().mean().backward()

    return step


def test_peak_memory_counts_live_tensors():
    def fn():
        a = torch.ones(MiB // 4)  # 1 MiB of float32
        b = torch.ones(MiB // 4)
        del a, b
        c = torch.ones(MiB // 4)  # only 1 MiB live now
        del c

    peak = peak_memory(fn, "cpu")
    assert 2 * MiB <= peak < 2 * MiB + 64 * 1024


def test_peak_memory_is_deterministic_on_cpu_and_grows_with_input():
    small = [peak_memory(_conv_step(24), "cpu") for _ in range(2)]
    big = peak_memory(_conv_step(48), "cpu")
    assert small[0] == small[1] > 0
    assert big > 2 * small[0]  # 4x the pixels


def test_memory_timeline_ends_where_it_started():
    times, used = memory_timeline(lambda: torch.ones(1000).sum())
    assert times == sorted(times) and used[-1] == 0 and max(used) >= 4000


def test_step_timeline_counts_the_step_from_zero_and_peaks_at_step_peak():
    # notebook 08's Fig. 3-4 curves: a warm model holds the previous step's gradients, which
    # the step's zero_grad frees; counted in the step they took the curve below zero
    torch.manual_seed(0)
    model = UberNet(UberNetConfig.lite(tasks=bench_tasks(3))).train()
    batch = bench_batch(40)
    for name in ("standard", "low"):
        fn = strategies()[name]
        times, used = step_timeline(model, batch, fn)
        assert times == sorted(times) and times[0] == 0.0
        assert min(used) == 0 == used[-1], name
        assert max(used) == step_peak(model, batch, fn, warm=True) > MiB // 2, name


def test_peak_memory_bad_input():
    with pytest.raises(TypeError, match="function of no arguments"):
        peak_memory(3)
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        peak_memory(lambda: None, "meta")


def test_bench_tasks_adds_renamed_copies_of_dense_tasks():
    specs = bench_tasks(16)
    names = [s.name for s in specs]
    assert len(set(names)) == 16
    assert {s.name for s in specs[:7]} == {s.name for s in bench_tasks(7, "registry")}
    copies = specs[7:]
    assert all(
        s.kind != "detection" and s.name.startswith(s.target) and s.name != s.target for s in copies
    )
    with pytest.raises(ValueError, match="unknown task order"):
        bench_tasks(3, "random")


def test_widest_size_inverts_the_fitted_area_law():
    sizes = [100, 200, 300]
    peaks = [5e6 + 40.0 * s * s for s in sizes]
    assert widest_size(sizes, peaks, 5e6 + 40.0 * 450**2) == pytest.approx(450)
    assert math.isnan(widest_size(sizes, peaks, 1e6))  # below the fixed cost


def test_widest_measured_searches_by_measurement(monkeypatch):
    """The read-off is searched by measuring: the first proposal (the peak taken proportional to
    the pixels) underestimates a curve with a fixed part, and the search refines it."""
    import argparse

    from ubernet_lite.bench import memory

    def curve(side):  # flat then steep: no single parabola
        return (100 + 0.001 * side**2) if side < 300 else 200 + 0.002 * side**2

    calls = []

    def fake_measure(preset, n, side, names, **k):
        calls.append(side)
        return {"low": {"peak": curve(side)}}

    monkeypatch.setattr(memory, "measure", fake_measure)
    sizes = [100, 200, 300]
    budget = 540.0
    rows = [(s, {"low": {"peak": curve(s)}, "standard": {"peak": budget}}) for s in sizes]
    args = argparse.Namespace(device="cpu", batch_size=1, seed=0)
    ((text, ok),) = memory._verify_widest(args, rows, "paper", 300)
    true_widest = math.sqrt((budget - 200) / 0.002)  # 412.3
    best = int(text.split("low-memory ")[1].split("x")[0])
    assert ok and 0.97 * budget <= curve(best) <= budget
    assert best <= true_widest < best + 6
    assert 2 <= len(calls) <= 3  # the first proposal (357) was refined
    assert memory.widest_measured("paper", sizes, [curve(s) for s in sizes], 300.0) is None


def test_bench_batch_labels_every_target():
    batch = bench_batch(40, batch_size=2)
    assert batch["images"].shape == (2, 3, 40, 40)
    assert all(bool(v.all()) for v in batch["has_label"].values())


def test_low_memory_peak_does_not_grow_with_tasks():
    """The point of Sec. 4, measured at a small lite setting: from one dense task (the widest
    branch comes first) to all six, standard grows with T and low does not. At 64 px: since the
    losses gather MIL bags at the annotated pixels only and the skips upsample coarse to fine,
    a task's branch stores so little at 32 px that standard grew only 1.12x there (1.40x at 64).

    From the second task on, the low schedule also holds the gradients accumulated at the taps
    (dL/dB_i summed over the tasks done so far: one buffer per tap, whatever T is), which a single
    task creates only at its very end. So low is flat from 2 tasks to 6, and 1 -> 6 adds at most
    those buffers (``lowmem_breakdown``'s ``tap_grads``). Measured on an AVX2-only CPU: low 2.33 MB
    at 1 task, 2.59 MB at 2, 3, 4 and 6 (within 8 bytes), tap gradients 0.43 MB; on the machine
    this test was first written on the second task's branch peaked lower, and 1 -> 6 stayed
    within 5 %."""
    names = ["standard", "low"]
    r1 = measure("lite", 1, 64, names, breakdown=True)
    r2 = measure("lite", 2, 64, names)
    r6 = measure("lite", 6, 64, names)
    assert r6["standard"]["peak"] > 1.2 * r1["standard"]["peak"]
    assert r6["low"]["peak"] <= 1.02 * r2["low"]["peak"]  # flat in T
    assert r6["low"]["peak"] <= r1["low"]["peak"] + r1["breakdown"]["tap_grads"]
    assert r6["low"]["peak"] < r6["standard"]["peak"]


def test_low_memory_peak_at_seven_tasks_is_far_below_standard():
    """A regression guard for Sec. 4's gain at a small lite setting (seven tasks, 64 px): the
    tap values are released before the trunk's backward, the deep-supervision losses run one
    output at a time and detection runs first. Before those, low was 0.58x standard here.

    The guard is on low's own bytes, which the CPU profiler counts deterministically: 4,270,328
    before the cheaper step of issue 14 (4,301,304 after it; the separable RoIAlign, an autograd
    Function that saves only its axis weights, costs 0.7 %). The ratio to standard was 0.27 until
    the MIL loss gathered its bags at the annotated pixels only, which took a third off the
    standard peak (15.7 -> 10.3 MB) and not off low's (whose peak is in the trunk's backward):
    0.42 now, so the ratio is held at 0.45 and the bytes at +2 %."""
    r = measure("lite", 7, 64, ["standard", "low"])
    assert r["low"]["peak"] <= 1.02 * 4_270_328
    assert r["low"]["peak"] < 0.45 * r["standard"]["peak"]
    assert r["low"]["peak_with_grads"] >= r["low"]["peak"]


def test_lowmem_breakdown_accounts_for_the_kept_tensors():
    from ubernet_lite.bench.memory import _model, lowmem_breakdown

    model = _model("lite", bench_tasks(2), "cpu")
    batch = bench_batch(48)
    before = [b.clone() for b in model.buffers()]
    b = lowmem_breakdown(model, batch)
    # the taps B_i(C_i) and the raw C_i (anchors) have the same shapes; the anchors also hold
    # the two smaller pyramid images (the full-size image is the caller's)
    assert b["taps"] > 0 and b["tap_grads"] == b["taps"]
    assert b["taps"] < b["anchors"] < 1.2 * b["taps"]
    assert all(torch.equal(x, y) for x, y in zip(before, model.buffers(), strict=True))


def test_memory_bench_quick(tmp_path, capsys):
    assert (
        main(
            [
                "--quick",
                "--size",
                "32",
                "--task-counts",
                "1,3",
                "--no-paper",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "low-memory peak at 3 tasks within 10%" in out
    assert "--quick: a smoke run" in out and "says nothing about them" in out
    assert (tmp_path / "memory_bench.png").stat().st_size > 0
    lines = (tmp_path / "memory_bench.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * 3  # header + 2 task counts x 3 schedules


def test_low_curve_note_finds_where_the_curve_turns_flat():
    from ubernet_lite.bench.memory import _low_curve_note

    mib = 2**20

    def row(peak, tap_grads=None):
        r = {"low": {"peak": peak * mib}}
        if tap_grads is not None:
            r["breakdown"] = {"tap_grads": tap_grads * mib}
        return r

    rows = [(1, row(15.0)), (7, row(15.2)), (10, row(16.7)), (13, row(16.72)), (16, row(16.7, 1.7))]
    note = _low_curve_note(rows)
    assert "flat within 1% from 10 tasks on (10..16: 16.7..16.7 MiB)" in note
    assert "rise from 1 task(s) is 1.7 MiB" in note and "are 1.7 MiB" in note
    # flat all along: no rise to report
    assert "rise" not in _low_curve_note([(1, row(5.0)), (2, row(5.01, 0.5))])
    assert _low_curve_note([(1, row(5.0))]) == ""
