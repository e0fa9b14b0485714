"""Does every executed notebook that draws carry its figures? (issue: a figure-less series)

A notebook draws when a code cell calls matplotlib or the package's pictures (``plt.``, ``viz.``,
``fig.``, ``plot_loss_curves``); it must then hold at least one ``image/png`` output, and every
cell that calls ``plt.show()`` must hold one (except an ``interact`` cell: its figures live in
the widget, which a static copy does not keep, and a cell that says in a comment that it draws
``# only at scale="course"``: at the quick scale it prints why it has nothing to draw). Usage: ``python book/notebook_images.py
outputs/notebooks`` (or any notebooks or folders); exit status 1 when one lacks a figure.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

DRAWS = re.compile(r"\bplt\.|\bviz\.|\bfig\.|\bplot_loss_curves\(|\bqualitative_figure\(")
SHOWS = re.compile(r"^\s*plt\.show\(\)", re.MULTILINE)
INTERACT = re.compile(r"\binteract(ive)?\(")
COURSE_ONLY = re.compile(r'#.*\bonly at scale="course"')


def _images(cell) -> int:
    return sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


def _text(cell) -> str:
    """The printed text of a code cell's outputs."""
    return "".join(
        "".join(out.get("text", ""))
        for out in cell.get("outputs", [])
        if out.get("name") == "stdout"
    )


def figure_count(path: str | Path) -> int:
    """Number of ``image/png`` outputs stored in the notebook at ``path``."""
    nb = nbformat.read(path, as_version=4)
    return sum(_images(c) for c in nb.cells if c.cell_type == "code")


def missing_figures(path: str | Path) -> list[str]:
    """Problems of one executed notebook, one line each; empty when its figures are all there."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not any(DRAWS.search(c.source) for c in code):
        return []
    problems = []
    if not any(_images(c) for c in code):
        problems.append(f"{path.name}: draws figures but holds no image/png output")
    for c in code:
        live = INTERACT.search(c.source)  # a widget's figures live in its state, not the file
        exempt = live or (COURSE_ONLY.search(c.source) and "scale quick" in _text(c))
        if SHOWS.search(c.source) and not exempt and not _images(c) and c.get("execution_count"):
            first = c.source.strip().splitlines()[0][:60]
            problems.append(f"{path.name}: cell {c.get('id')} ({first!r}) shows no figure")
    return problems


def notebooks_in(paths) -> list[Path]:
    """The ``NN_*.ipynb`` notebooks named by ``paths`` (files, or folders searched one level)."""
    found = []
    for p in map(Path, paths):
        found += sorted(p.glob("[0-9][0-9]_*.ipynb")) if p.is_dir() else [p]
    return found


def main(argv: list[str] | None = None) -> int:
    paths = notebooks_in(argv or sys.argv[1:] or ["outputs/notebooks"])
    if not paths:
        print("no notebooks found (run `make reproduce` first, or name a folder)")
        return 1
    problems = []
    for path in paths:
        print(f"{path}: {figure_count(path)} images")
        problems += missing_figures(path)
    print("\n".join(problems) or "every notebook that draws shows its figures")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
