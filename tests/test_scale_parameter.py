"""Every notebook takes the papermill parameter ``scale`` that ``make reproduce`` passes
(``-p scale $(SCALE)``), parsed by papermill itself (no "unknown parameter" warning)."""

from __future__ import annotations

from pathlib import Path

import papermill
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_declares_scale_quick(path):
    params = papermill.inspect_notebook(str(path))
    assert "scale" in params, f"{path.name}: its parameters cell has no `scale`"
    assert params["scale"]["default"] == '"quick"'


def test_make_reproduce_passes_the_scale():
    makefile = (REPO / "Makefile").read_text()
    # quick stays the default while the course run misses targets; the README says which
    assert "SCALE ?= quick" in makefile
    assert "make reproduce SCALE=course" in (REPO / "README.md").read_text()
    reproduce = makefile.split("\nreproduce:", 1)[1].split("\n\n", 1)[0]
    assert "-p scale $(SCALE)" in reproduce
