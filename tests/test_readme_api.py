"""The README's "public API in ten lines" runs as written (with ``images`` and a short test split
supplied, the only names it leaves to the reader)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

import ubernet_lite as ul

README = Path(__file__).resolve().parents[1] / "README.md"


def api_block() -> str:
    text = README.read_text()
    section = text.split("## The public API in ten lines", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_api_block_runs_as_written(monkeypatch):
    code = api_block()
    assert "ul.metrics.evaluate" in code and "peak_memory" in code
    real_world = ul.data.SynthWorld

    def short_world(*args, **kwargs):  # the README evaluates on the test split: 4 of its images
        world = real_world(*args, **kwargs)
        return [world[i] for i in range(4)]

    monkeypatch.setattr(ul.data, "SynthWorld", short_world)
    torch.manual_seed(0)
    scope = {"images": torch.rand(2, 3, 128, 128)}
    exec(compile(code, str(README), "exec"), scope)  # noqa: S102
    assert set(scope["out"]) == {"semantic", "normals"}
    assert scope["peak"] > 0 and "semantic" in scope["rows"]
