"""Results tables: the paper's columns per task, and the multi-task summary Delta_m.

Delta_m (Maninis et al., CVPR 2019; Vandenhende et al., TPAMI 2021) is the average relative change
of a multi-task model against single-task models over every metric of every task::

    Delta_m = 1/M * sum_j (-1)^{l_j} (M_mt,j - M_st,j) / M_st,j

with ``l_j = 1`` where lower is better (angle errors, MAE), so a positive Delta_m means the
multi-task model is better on average.

Notebook 10's tables: :func:`paper_tables` (one table per task in the paper's columns, Tables
2-8), :func:`delta_m_summary`, :func:`baseline_margins` (each task's primary metric against the
trivial baseline) and :func:`weight_sweep_table` (Table 9). Notebook 11's: :func:`task_table` per
task and :func:`cost_table` (Delta_m, parameters, FLOPs). Both write their part of
``outputs/results.md`` with :func:`write_results_section`, leaving the other's part as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

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


def paper_tables(rows: dict[str, dict], tasks, order) -> list[str]:
    """``"### Table N: task"`` sections, in the paper's table order, each a :func:`task_table`
    of the methods ``order`` (names of ``rows``: method -> {task: {col: v}})."""
    return [
        f"### Table {PAPER_TABLE[task]}: {task}\n\n"
        f"{task_table(task, {name: rows[name] for name in order})}\n"
        for task in sorted(tasks, key=PAPER_TABLE.get)
    ]


def delta_m_summary(multi: dict, single: dict) -> str:
    """One bold Markdown line: Delta_m of the seven-task model ``multi`` against ``single``."""
    dm = delta_m(multi, single)
    return (
        f"**Delta_m (seven-task vs single-task, over all metrics with a non-zero reference): "
        f"{100 * dm:+.1f} %** (positive = the seven-task model is better on average)"
    )


#: The primary metric of each task: what notebook 10's checks and Table 9 read.
PRIMARY: dict[str, str] = {
    "detection": "mAP_voc07",
    "semantic": "mIoU",
    "parts": "mIoU",
    "semantic_boundaries": "mMF",
    "saliency": "maxF",
    "boundaries": "ODS",
    "normals": "mean",
}
#: How much better than the trivial baseline "clearly beats" means (degrees for normals).
MIN_MARGIN: dict[str, float] = {"normals": 5.0}
#: The margin of the other tasks (fractions).
DEFAULT_MARGIN = 0.02


@dataclass(frozen=True)
class Margin:
    """A model against the trivial baseline (and the single-task model) on a task's primary
    metric; ``over_baseline`` and ``over_single`` are signed so that positive is better."""

    task: str
    column: str
    model: str
    baseline: str
    over_baseline: float
    need: float
    over_single: float

    @property
    def ok(self) -> bool:
        return self.over_baseline > self.need

    def __str__(self) -> str:
        tag = "beats" if self.ok else "does NOT beat"
        return (
            f"{self.task:20s} {self.column:9s} {self.model} {tag} {self.baseline} by "
            f"{self.over_baseline:+.3f} (needs > {self.need});"
            f" seven minus single-task: {self.over_single:+.3f}"
        )


def baseline_margins(
    rows: dict[str, dict],
    tasks,
    model: str = "seven-task",
    baseline: str = "trivial",
    single: str = "single-task",
) -> list[Margin]:
    """:class:`Margin` of ``rows[model]`` over ``rows[baseline]`` on each task's
    :data:`PRIMARY` metric (needs more than :data:`MIN_MARGIN`, default :data:`DEFAULT_MARGIN`)."""
    out = []
    for task in tasks:
        col = PRIMARY[task]
        sign = -1 if lower_is_better(task, col) else 1
        base, mt, st = (rows[k][task][col] for k in (baseline, model, single))
        need = MIN_MARGIN.get(task, DEFAULT_MARGIN)
        out.append(Margin(task, col, model, baseline, sign * (mt - base), need, sign * (mt - st)))
    return out


def weight_sweep_table(sweep: dict[float, dict | None], tasks) -> str:
    """Table 9 in Markdown: one row per normals weight gamma (``sweep``: gamma -> {task: {col:
    v}}, or None for a run that diverged), the :data:`PRIMARY` metric of every task."""
    head = "| gamma normals | " + " | ".join(f"{t} {PRIMARY[t]}" for t in tasks) + " |"
    lines = [head, "|" + "---|" * (len(tasks) + 1)]
    for gamma, r in sweep.items():
        if r is None:
            cells = ["diverged"] * len(tasks)
        else:
            cells = [format_value(t, PRIMARY[t], r[t][PRIMARY[t]]) for t in tasks]
        lines.append(f"| {gamma:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost_table(summary: dict[str, dict]) -> str:
    """The comparison of notebook 11 in Markdown: one row per method of ``summary`` (method ->
    ``{"delta": Delta_m fraction, "params": int, "flops": FLOPs per image}``)."""
    lines = [
        "| method | Delta_m vs single-task (%) | parameters | GFLOPs per image |",
        "|---|---|---|---|",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {100 * s['delta']:+.1f} | {s['params']:,d} | {s['flops'] / 1e9:.3f} |"
        )
    return "\n".join(lines)


def _split_sections(text: str) -> tuple[str, dict[str, str]]:
    """``(preamble, {title: body})`` of a Markdown file cut at its ``## title`` lines."""
    preamble, sections, title = [], {}, None
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            title = line[3:].strip()
            sections[title] = ""
        elif title is None:
            preamble.append(line)
        else:
            sections[title] += line
    return "".join(preamble), sections


def write_results_section(path: str | Path, body: str, title: str | None = None) -> Path:
    """Write one notebook's part of ``outputs/results.md``, keeping the other notebooks' parts.

    The file is a preamble (notebook 10's tables: no ``## `` heading in it) followed by
    ``## title`` sections. ``title=None`` replaces the preamble; a title replaces that section
    (or appends it), so re-running a notebook rewrites its own part only.

    Returns the path.
    """
    path = Path(path)
    if any(line.startswith("## ") for line in body.splitlines()):
        raise ValueError("a part of results.md may not hold '## ' headings; use '### ' inside it")
    preamble, sections = _split_sections(path.read_text()) if path.is_file() else ("", {})
    body = body.strip("\n") + "\n"
    if title is None:
        preamble = body
    else:
        sections[title.strip()] = "\n" + body
    parts = [preamble.rstrip("\n") + "\n"] if preamble.strip() else []
    parts += [f"\n## {t}\n" + b.rstrip("\n") + "\n" for t, b in sections.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(parts).lstrip("\n"))
    return path
