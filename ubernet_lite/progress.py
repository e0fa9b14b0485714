"""Progress bars: one place that makes them, so that the environment can switch them all off.

tqdm reads its defaults from ``TQDM_*`` environment variables (``TQDM_DISABLE=1``, set by
``make test``, ``make reproduce`` and CI), but an explicit ``disable=`` argument overrides them:
``tqdm(..., disable=False)`` shows a bar even under ``TQDM_DISABLE=1``. In a notebook that bar is a
widget whose every refresh is a kernel message, thousands over a long training cell, which is what
nbval and papermill must not have to wade through. :func:`progress_bar` therefore passes
``disable`` only to switch a bar *off*.

In a Jupyter kernel ``tqdm.auto`` is ``tqdm.notebook.tqdm``, whose ``__init__`` sets
``disable=bool(kwargs.get("disable", False))`` before the environment is read, so that class
ignores ``TQDM_DISABLE`` altogether (a ``train 0/600`` widget appeared in every executed notebook,
and its updates made nbval's "waiting for output" time out on the training cell). So
:func:`progress_bar` reads ``TQDM_DISABLE`` itself.
"""

from __future__ import annotations

import os

from tqdm.auto import tqdm


def disabled_by_environment() -> bool:
    """``TQDM_DISABLE`` set to anything but empty, 0, false or no (as tqdm reads it)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """A ``tqdm.auto`` bar over ``iterable`` (or with ``total=``); ``enabled=False`` hides it.

    An enabled bar still obeys the ``TQDM_*`` environment variables (``TQDM_DISABLE=1`` hides it).
    ``kwargs`` go to ``tqdm`` (``desc``, ``total``, ``initial``, ``unit``, ``leave``, ...).
    """
    if "disable" in kwargs:
        raise TypeError("progress_bar takes enabled=, not disable= (see the module docstring)")
    if not enabled or disabled_by_environment():
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)
