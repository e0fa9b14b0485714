"""ubernet_lite.progress: one maker of progress bars, which the environment can switch off."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest
import tqdm.notebook

import ubernet_lite
from ubernet_lite.progress import progress_bar

MODULE = pathlib.Path(ubernet_lite.__file__).parent / "progress.py"
SHOW = (  # the module alone (no torch import): a fresh process in a second or so
    f"import runpy; p = runpy.run_path({str(MODULE)!r})['progress_bar']; "
    "print(p(range(3), enabled=True).disable, p(total=3).disable, p(range(3), enabled=False).disable)"
)


def _disabled(env_value):
    """``disable`` of three bars made in a fresh process (tqdm reads TQDM_* when imported)."""
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    if env_value is not None:
        env["TQDM_DISABLE"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", SHOW], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_an_enabled_bar_obeys_tqdm_disable():
    # the bug this module fixes: an explicit disable=False (Trainer(progress=True)) overrode
    # TQDM_DISABLE=1 and filled nbval's notebook cells with widget updates
    assert _disabled("1") == ["True", "True", "True"]
    assert _disabled(None) == ["False", "False", "True"]


def test_a_bar_iterates_and_can_be_switched_off():
    with open(os.devnull, "w") as null:
        assert list(progress_bar(range(3), enabled=True, file=null)) == [0, 1, 2]
    assert progress_bar(range(3), enabled=False).disable
    with pytest.raises(TypeError, match="enabled="):
        progress_bar(range(3), disable=False)


def test_the_package_makes_its_bars_through_progress_bar():
    root = MODULE.parent
    direct = [
        f"{p.relative_to(root)}:{i}"
        for p in root.rglob("*.py")
        if p.name != "progress.py"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\btqdm\(", line)
    ]
    assert direct == [], f"progress bars made without progress_bar(): {direct}"


def test_a_notebook_bar_obeys_tqdm_disable_too(monkeypatch):
    # tqdm.notebook.tqdm (what tqdm.auto gives in a kernel) sets disable=False itself, ignoring
    # TQDM_DISABLE: the bar came up as a widget in every executed notebook
    monkeypatch.setattr("ubernet_lite.progress.tqdm", tqdm.notebook.tqdm)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress_bar(range(3), enabled=True).disable
    assert list(progress_bar(range(3))) == [0, 1, 2]
    monkeypatch.setenv("TQDM_DISABLE", "0")
    with open(os.devnull, "w") as null:
        assert not progress_bar(range(3), enabled=True, file=null).disable
