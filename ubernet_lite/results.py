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

Results as data: notebook 10 also writes ``outputs/results.json`` (:func:`write_results_json`,
read back and checked with :func:`read_results_json`)::

    {"format": "ubernet_lite.results/1", "scale": "course", "preset": "lite", "data": "synthetic",
     "wall_time_s": {"runs": {model: s}, "total": s}, "test": {...},
     "seven_task": {task: {column: value}}, "single_task": {...}, "trivial": {...},
     "seven_task_normals_gamma5": {...} (or null: the run diverged), ...}

The course scale's targets (:data:`COURSE_TARGETS`, issue 14 item 4) are checked with
:func:`target_misses`; a run's periodic evaluations become learning curves with
:func:`learning_curve`.
"""

from __future__ import annotations

import json
import math
import os
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


# ---- learning curves ---------------------------------------------------------------------------


def learning_curve(evals: list[dict], task: str, column: str | None = None) -> list[tuple]:
    """``[(labelled samples of task seen, value), ...]`` of a run's periodic evaluations
    (``Trainer.evals`` rows ``{"step", "samples", "task", "labelled", "metric", "value"}``) on
    ``column`` (default the task's :data:`PRIMARY` metric), in training order; rows without a
    labelled count (a checkpoint older than it) or with a non-finite value are left out."""
    column = column or PRIMARY[task]
    out = []
    for row in evals:
        if row.get("task") != task or row.get("metric") != column:
            continue
        x, y = row.get("labelled"), row.get("value")
        if x is None or y is None or not (math.isfinite(float(x)) and math.isfinite(float(y))):
            continue
        out.append((float(x), float(y)))
    return out


# ---- the course scale's targets (issue 14 item 4) ----------------------------------------------

#: What the seven-task model must reach at the course scale: task -> (column, ">=" | "<=",
#: value); fractions, normals in degrees. Measured on >= 128 test images at the training size,
#: boundary metrics over 99 thresholds (notebook 10 checks those conditions too).
COURSE_TARGETS: dict[str, tuple[str, str, float]] = {
    "semantic": ("mIoU", ">=", 0.30),
    "parts": ("mIoU", ">=", 0.25),
    "detection": ("mAP_voc07", ">=", 0.15),
    "semantic_boundaries": ("mMF", ">=", 0.20),
    "saliency": ("maxF", ">=", 0.50),
    "boundaries": ("ODS", ">=", 0.50),
    "normals": ("mean", "<=", 12.0),
}


def target_misses(result: dict, targets: dict | None = None) -> list[str]:
    """One line per target of ``targets`` (default :data:`COURSE_TARGETS`) that ``result``
    (``{task: {column: value}}``) misses, or lacks; empty when every target is reached."""
    targets = COURSE_TARGETS if targets is None else targets
    misses = []
    for task, (column, op, need) in targets.items():
        value = result.get(task, {}).get(column)
        if op not in (">=", "<="):
            raise ValueError(f"target {task}: op must be '>=' or '<=', got {op!r}")
        shown = format_value(task, column, value)
        want = format_value(task, column, need)
        if value is None or math.isnan(value):
            misses.append(f"{task} {column}: missing (needs {op} {want})")
        elif (value < need) if op == ">=" else (value > need):
            misses.append(f"{task} {column} = {shown}, needs {op} {want}")
    return misses


# ---- results.json --------------------------------------------------------------------------------

#: The ``format`` entry of ``outputs/results.json``.
RESULTS_FORMAT = "ubernet_lite.results/1"
#: The top-level keys of results.json that are not models.
META_KEYS = ("format", "scale", "preset", "data", "wall_time_s", "test")


def model_key(name: str) -> str:
    """A results.json model name from a table's method name: ``"seven-task"`` -> ``"seven_task"``."""
    key = str(name).strip().replace("-", "_").replace(" ", "_")
    if not key or key in META_KEYS:
        raise ValueError(f"model name {name!r} is empty or a reserved key {META_KEYS}")
    return key


def _clean(value):
    """A metric value as JSON holds it: a float, or None for NaN / missing."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def results_document(
    models: dict[str, dict | None],
    scale: str,
    preset: str,
    data: str,
    wall_time_s: dict | None = None,
    test: dict | None = None,
) -> dict:
    """The results.json document: ``models`` (``{name: {task: {column: value}}}``, None for a
    run that diverged; names through :func:`model_key`) at the top level beside ``format``,
    ``scale``, ``preset``, ``data``, ``wall_time_s`` (``{"runs": {model: seconds}, ...}``) and
    ``test`` (what was evaluated: images, size, thresholds). NaN metrics become null."""
    doc = {
        "format": RESULTS_FORMAT,
        "scale": str(scale),
        "preset": str(preset),
        "data": str(data),
        "wall_time_s": dict(wall_time_s or {}),
        "test": dict(test or {}),
    }
    for name, result in models.items():
        key = model_key(name)
        if key in doc:
            raise ValueError(f"two models are named {key!r} in results.json")
        doc[key] = None if result is None else {
            task: {col: _clean(v) for col, v in cols.items()} for task, cols in result.items()
        }  # fmt: skip
    check_results_document(doc)
    return doc


def check_results_document(doc: dict) -> None:
    """Raise ``ValueError`` (one line saying what is wrong) unless ``doc`` is a results.json
    document: the meta keys present, every other key a model ``{task: {column: float | None}}``
    (or None) with known tasks and columns."""
    if not isinstance(doc, dict):
        raise ValueError(f"results.json must hold an object, got {type(doc).__name__}")
    missing = [k for k in META_KEYS if k not in doc]
    if missing:
        raise ValueError(f"results.json misses {missing}; write it with write_results_json")
    if doc["format"] != RESULTS_FORMAT:
        raise ValueError(f"results.json format {doc['format']!r}, expected {RESULTS_FORMAT!r}")
    for key in ("scale", "preset", "data"):
        if not isinstance(doc[key], str):
            raise ValueError(f"results.json {key!r} must be a string, got {doc[key]!r}")
    runs = doc["wall_time_s"]
    if not isinstance(runs, dict):
        raise ValueError("results.json 'wall_time_s' must be an object")
    for name, result in doc.items():
        if name in META_KEYS or result is None:
            continue
        if not isinstance(result, dict):
            raise ValueError(f"results.json model {name!r} must be {{task: {{column: value}}}}")
        for task, cols in result.items():
            if task not in COLUMNS:
                raise ValueError(f"results.json model {name!r}: unknown task {task!r}")
            if not isinstance(cols, dict):
                raise ValueError(f"results.json {name}.{task} must be {{column: value}}")
            for col, value in cols.items():
                if col not in COLUMNS[task]:
                    raise ValueError(
                        f"results.json {name}.{task}: unknown column {col!r}; "
                        f"expected some of {COLUMNS[task]}"
                    )
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, (int, float))
                ):
                    raise ValueError(f"results.json {name}.{task}.{col} must be a number or null")


def models_of(doc: dict) -> dict[str, dict | None]:
    """The models of a results.json document (every key but :data:`META_KEYS`)."""
    return {k: v for k, v in doc.items() if k not in META_KEYS}


def write_results_json(path: str | os.PathLike, models: dict, scale: str, preset: str,
                       data: str, wall_time_s: dict | None = None,
                       test: dict | None = None) -> Path:  # fmt: skip
    """Write :func:`results_document` to ``path`` (``outputs/results.json``), atomically (a
    temporary file renamed over it); returns the path."""
    doc = results_document(models, scale, preset, data, wall_time_s, test)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def read_results_json(path: str | os.PathLike) -> dict:
    """The document of ``path``, checked (:func:`check_results_document`)."""
    doc = json.loads(Path(path).read_text())
    check_results_document(doc)
    return doc
