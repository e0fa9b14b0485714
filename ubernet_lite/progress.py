"""Progress bars: one place that makes them, so that the environment can switch them all off.

tqdm reads its defaults from ``TQDM_*`` environment variables (``TQDM_DISABLE=1``, set by
``make test``, ``make reproduce`` and CI), but an explicit ``disable=`` argument overrides them:
``tqdm(..., disable=False)`` shows a bar even under ``TQDM_DISABLE=1``. In a notebook that bar is a
widget whose every refresh is a kernel message, thousands over a long training cell, which is what
nbval and papermill must not have to wade through. :func:`progress_bar` therefore passes
``disable`` only to switch a bar *off*.
"""

from __future__ import annotations

from tqdm.auto import tqdm


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """A ``tqdm.auto`` bar over ``iterable`` (or with ``total=``); ``enabled=False`` hides it.

    An enabled bar still obeys the ``TQDM_*`` environment variables (``TQDM_DISABLE=1`` hides it).
    ``kwargs`` go to ``tqdm`` (``desc``, ``total``, ``initial``, ``unit``, ``leave``, ...).
    """
    if "disable" in kwargs:
        raise TypeError("progress_bar takes enabled=, not disable= (see the module docstring)")
    if not enabled:
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)
