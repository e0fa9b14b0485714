"""Results tables: the paper's columns per task, and the multi-task summary Delta_m.

Delta_m (Maninis et al., CVPR 2019; Vandenhende et al., TPAMI 2021) is the average relative change
of a multi-task model against single-task models over every metric of every task::

    Delta_m = 1/M * sum_j (-1)^{l_j} (M_mt,j - M_st,j) / M_st,j

with ``l_j = 1`` where lower is better (angle errors, MAE), so a positive Delta_m means the
multi-task model is better on average.
"""

from __future__ import annotations

import math

from .metrics.evaluate import COLUMNS as METRIC_COLUMNS
from .tasks import TASKS

#: Columns where lower is better.
LOWER_IS_BETTER: frozenset[tuple[str, str]] = frozenset(
    {("normals", "mean"), ("normals", "median"), ("saliency", "MAE")}
)

#: The paper's table number for each task (Tables 2-8).
PAPER_TABLE: dict[str, int] = {
    "detection": 2,
    "semantic": 3,
    "parts": 4,
    "semantic_boundaries": 5,
    "saliency": 6,
    "boundaries": 7,
    "normals": 8,
}

#: Metric columns per task, in the order of the paper's tables: the metric family's columns
#: (``ubernet_lite.metrics.COLUMNS``) through each task's ``TaskSpec.metric``.
COLUMNS: dict[str, tuple[str, ...]] = {
    task: METRIC_COLUMNS[TASKS[task].metric] for task in PAPER_TABLE
}


def lower_is_better(task: str, column: str) -> bool:
    return (task, column) in LOWER_IS_BETTER


def relative_changes(multi: dict, single: dict) -> dict[tuple[str, str], float]:
    """Signed relative change of every metric shared by ``multi`` and ``single`` ({task: {col: v}}).

    Positive means the first argument is better. Metrics whose reference value is 0 are skipped
    (a relative change from 0 is undefined).
    """
    out = {}
    for task, cols in multi.items():
        for col, value in cols.items():
            ref = single.get(task, {}).get(col)
            if ref is None or ref == 0 or value is None or math.isnan(value) or math.isnan(ref):
                continue
            sign = -1.0 if lower_is_better(task, col) else 1.0
            out[(task, col)] = sign * (value - ref) / abs(ref)
    return out


def delta_m(multi: dict, single: dict) -> float:
    """Average relative change (Delta_m, a fraction) of ``multi`` against ``single``."""
    changes = relative_changes(multi, single)
    if not changes:
        raise ValueError("delta_m: the two result dicts share no metric with a non-zero reference")
    return sum(changes.values()) / len(changes)


def format_value(task: str, column: str, value: float | None) -> str:
    """Fractions as percentages with one decimal; degrees with one decimal."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if task == "normals" and column in ("mean", "median"):
        return f"{value:.1f}"
    return f"{100 * value:.1f}"


def task_table(task: str, rows: dict[str, dict], markdown: bool = True) -> str:
    """One task's table in the paper's columns: ``rows`` maps a method name to {task: {col: v}}."""
    cols = COLUMNS[task]
    unit = ["deg" if (task == "normals" and c in ("mean", "median")) else "%" for c in cols]
    head = ["method"] + [f"{c} ({u})" for c, u in zip(cols, unit, strict=True)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in rows.items():
        vals = [format_value(task, c, res.get(task, {}).get(c)) for c in cols]
        lines.append("| " + " | ".join([name] + vals) + " |")
    return "\n".join(lines)
