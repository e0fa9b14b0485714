"""Where outputs go, whether a notebook runs from the repository root or from ``notebooks/``."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) holding
    ``pyproject.toml`` of this project; the working directory if there is none (installed use)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "ubernet_lite").is_dir():
            return folder
    return here


def outputs_dir(*parts: str) -> Path:
    """``<repo>/outputs/<parts...>`` (``$UBERNET_OUTPUTS`` overrides the root), created on demand."""
    base = (
        Path(os.environ["UBERNET_OUTPUTS"])
        if os.environ.get("UBERNET_OUTPUTS")
        else repo_root() / "outputs"
    )
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
