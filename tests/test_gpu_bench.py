"""``python -m ubernet_lite.bench gpu`` runs on the CPU (smaller, same code) and prints every row."""

from __future__ import annotations

import re

from ubernet_lite import bench
from ubernet_lite.bench import gpu as gpu_bench


def test_gpu_bench_runs_small_on_the_cpu(capsys):
    assert bench.BENCHMARKS["gpu"] == "ubernet_lite.bench.gpu"
    argv = ["--device", "cpu", "--preset", "lite", "--size", "48", "--repeats", "1"]
    argv += ["--budget-gib", str(16 / 1024), "--widest-steps", "1"]
    assert bench.main(["gpu", *argv]) == 0
    out = capsys.readouterr().out
    print(out)
    for prec in gpu_bench.PRECISIONS:
        assert re.search(rf"{prec}: +[\d.]+ ms per 48-px frame", out)
        for memory in gpu_bench.SCHEDULES:
            m = re.search(rf"{memory} {prec}: +([\d.]+) images/s +peak +([\d.]+) MiB", out)
            assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0, (memory, prec)
            w = re.search(rf"{memory} {prec}: +(\d+) px \(peak (\d+) MiB", out)
            assert w, (memory, prec)
            side, peak = int(w.group(1)), int(w.group(2))
            assert side >= 30 and 0 < peak <= 16  # a measured side that fits the budget


def test_widest_input_fits_the_side_squared_line():
    """On a synthetic peak(side) = a + b side^2 the search lands within one step of the answer."""

    class Fake:
        calls: list[int] = []

    def fake_peak(model, side, batch_size, memory, speed, device):
        Fake.calls.append(side)
        return 1000 + 3 * side * side

    saved = gpu_bench.step_peak
    gpu_bench.step_peak = fake_peak
    try:
        budget = 1000 + 3 * 200**2
        known = {64: 1000 + 3 * 64**2, 128: 1000 + 3 * 128**2}
        side, peak, pts = gpu_bench.widest_input(None, "low", None, "cpu", budget, known)
    finally:
        gpu_bench.step_peak = saved
    assert side == 200 and peak == budget and Fake.calls == [200]
