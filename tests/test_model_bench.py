"""The benchmark dispatcher ``python -m ubernet_lite.bench`` and the lite throughput helper."""

import sys
import types

import pytest

from ubernet_lite import bench
from ubernet_lite.bench import forward


def test_unknown_benchmark(capsys):
    assert bench.main(["nope"]) == 2
    assert "expected one of" in capsys.readouterr().err


def test_missing_module_message(monkeypatch, capsys):
    monkeypatch.setitem(bench.BENCHMARKS, "ghost", "ubernet_lite.no_such_module")
    assert bench.main(["ghost"]) == 2
    assert "ubernet_lite.no_such_module" in capsys.readouterr().err


def test_dispatch_calls_main_with_rest(monkeypatch):
    seen = {}
    fake = types.ModuleType("fake_bench")
    fake.main = lambda argv: seen.setdefault("argv", argv) and None
    monkeypatch.setitem(sys.modules, "fake_bench", fake)
    monkeypatch.setitem(bench.BENCHMARKS, "fake", "fake_bench")
    assert bench.main(["fake", "--x", "1"]) == 0
    assert seen["argv"] == ["--x", "1"]


def test_lite_throughput_positive():
    assert forward._lite_train_throughput(batch=1, size=64, steps=1) > 0


@pytest.mark.parametrize("argv", [["-h"], []])
def test_help(argv, capsys):
    assert bench.main(argv) == (0 if argv else 2)
    assert "forward" in capsys.readouterr().out
