"""`make book`: a static HTML site of the executed series, from the latest `make reproduce`.

Nothing is re-executed. The notebooks come from ``outputs/notebooks/`` (what `make reproduce`
wrote); a notebook absent there is taken from ``notebooks/`` (the committed one, with its stored
outputs), and the build says so. Pages: a landing page (what UberNet is, the series, the two
commands, the results table), one page per notebook in series order, the results page
(``outputs/results.md``, learning curves and qualitative figure where present) and the API page
(the README's ten lines and the docstrings of the public modules). The site lands in
``outputs/book/`` (open ``outputs/book/index.html``) and loads nothing from another host.

Usage: ``python book/build.py [--out outputs/book] [--notebooks DIR] [--outputs DIR]``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import nbformat

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent

# A progress bar's text: "37%|###7      | 222/600 [00:10<00:17, 21.5it/s]" (tqdm), in any stream.
PROGRESS = re.compile(r"\d+%\|.*\|\s*\d+/\d+|\d+(\.\d+)?\s*(it/s|s/it)\]")
WIDGET = "application/vnd.jupyter.widget-view+json"


def strip_progress(nb) -> int:
    """Remove progress bars from the outputs of ``nb`` in place; returns how many were removed.

    Drops widget outputs (tqdm.notebook), and the lines of stream outputs that are progress
    bars (``\\r``-rewritten tqdm lines); a stream left empty is dropped.
    """
    removed = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") in ("display_data", "execute_result") and WIDGET in out.get(
                "data", {}
            ):
                removed += 1
                continue
            if out.get("output_type") == "stream":
                lines = []
                for line in out.get("text", "").split("\n"):
                    parts = [p for p in line.split("\r") if not PROGRESS.search(p)]
                    removed += len(line.split("\r")) - len(parts)
                    if parts or not line:
                        lines.append(parts[-1] if parts else line)
                text = "\n".join(lines)
                if not text.strip():
                    continue
                out["text"] = text
            kept.append(out)
        cell["outputs"] = kept
    cell_widgets = nb.metadata.pop("widgets", None)
    return removed + (cell_widgets is not None)


def readme_section(title: str) -> str:
    """The body of the README section ``## <title>...`` (without its heading)."""
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"^## {re.escape(title)}.*?\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not match:
        raise SystemExit(f"README.md has no section '## {title}': update book/build.py")
    return match.group(1).strip()


def first_table(markdown: str) -> str:
    """The first markdown table (consecutive lines starting with ``|``) in ``markdown``."""
    block, lines = [], markdown.splitlines()
    for line in lines:
        if line.startswith("|"):
            block.append(line)
        elif block:
            break
    return "\n".join(block)


def summary_table(results: str) -> str:
    """One row per task (``task (metrics) | trivial | single-task | seven-task``) from the
    per-task tables of ``results.md`` (``### Table N: task`` + ``| method | ... |``), as the
    README's; the first table when there are no such sections."""
    rows, models = [], ["trivial", "single-task", "seven-task"]
    sections = re.findall(r"^### Table \d+: (\w+)\s*\n\s*\n((?:\|.*\n?)+)", results, re.M)
    for task, table in sections:
        lines = [line.strip().strip("|").split("|") for line in table.strip().splitlines()]
        header, body = [c.strip() for c in lines[0]], lines[2:]
        if header[0] != "method":
            continue
        values = {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in body}
        if not all(m in values for m in models):
            continue
        metrics = " / ".join(re.sub(r"\s*\((%|deg)\)", "", h) for h in header[1:])
        cells = [" / ".join(values[m]) for m in models]
        rows.append(f"| {task.replace('_', ' ')} ({metrics}) | " + " | ".join(cells) + " |")
    if not rows:
        return first_table(results)
    delta = re.search(r"^\*\*Delta_m.*$", results, re.M)
    table = "| task (metric) | " + " | ".join(models) + " |\n| --- | --- | --- | --- |\n"
    return table + "\n".join(rows) + (f"\n\n{delta.group(0)}" if delta else "")


def series_notebooks(source: Path | None) -> list[tuple[Path, str]]:
    """``(path, where)`` of every series notebook: ``source`` (outputs/notebooks) first."""
    chosen = []
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        executed = source / nb.name if source else None
        if executed is not None and executed.is_file():
            chosen.append((executed, "executed by the latest `make reproduce`"))
        else:
            chosen.append((nb, "the committed notebook (no executed copy in outputs/notebooks/)"))
    return chosen


def stage_notebook(path: Path, where: str, src: Path) -> tuple[str, str, int]:
    """Copy one notebook into the staging folder, progress bars out, a link to its file in.

    Returns (page name, title, progress outputs removed)."""
    nb = nbformat.read(path, as_version=4)
    removed = strip_progress(nb)
    files = src / "_notebook_files"
    files.mkdir(exist_ok=True)
    shutil.copy2(path, files / path.name)
    note = (  # a colon fence: a backtick fence's info string may not hold backticks
        f":::{{admonition}} This page is the notebook `notebooks/{path.name}`\n"
        f":class: note\n\n"
        f"Rendered from {where}; nothing was re-executed for this page. "
        f"Download the executed notebook: {{download}}`{path.name} <_notebook_files/{path.name}>`; "
        f"its source is `notebooks/{path.name}` in the repository (run it with `make lab`).\n"
        f":::"
    )
    title = path.stem
    md = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    heading = re.match(r"\s*#\s+(.+)", md.source) if md is not None else None
    if heading:
        title = heading.group(1).strip()
        head, _, rest = md.source.lstrip().partition("\n")
        md.source = f"{head}\n\n{note}\n\n{rest}"
    else:
        cell = nbformat.v4.new_markdown_cell(f"# {title}\n\n{note}")
        nb.cells.insert(0, cell)
    nbformat.write(nb, src / path.name)
    return path.stem, title, removed


def landing_page(pages: list[tuple[str, str]], results_md: Path | None, source_line: str) -> str:
    intro = (ROOT / "README.md").read_text().split("\n## ", 1)[0].split("\n", 1)[1].strip()
    commands = readme_section("Two commands on a fresh machine")
    commands = commands.split("```", 2)
    commands = "```" + commands[1] + "```" if len(commands) > 2 else ""
    series = readme_section("The notebook series")
    for name, _ in pages:  # `00_tour` -> a link to its page
        series = series.replace(f"| `{name}` |", f"| [{name}]({name}.ipynb) |")
    if results_md is not None:
        table = summary_table(results_md.read_text())
        results_from = (
            "from `outputs/results.md` of the latest `make reproduce` ([all tables](results.md))"
        )
    else:
        table = first_table(readme_section("Results of the latest synthetic run"))
        results_from = "from the README (no `outputs/results.md`: run `make reproduce`)"
    toc = "\n".join(f"{name}.ipynb" for name, _ in pages)
    return f"""# UberNet, one network for seven tasks

{intro}

## The series

{series}

## Two commands

{commands}

`make book` renders this site from the notebooks that `make reproduce` executed into
`outputs/notebooks/`; it lands in `outputs/book/` (open `outputs/book/index.html`).
{source_line}

## Results

[All tables of the latest run](results.md) and [the API](api.rst) have pages of their own.
The seven-task model against its single-task and trivial baselines, {results_from}. Values are
percentages; normals' mean and median are in degrees (lower is better, as is MAE).

{table}

```{{toctree}}
:caption: The series
:maxdepth: 1
:hidden:

{toc}
```

```{{toctree}}
:caption: Results and API
:maxdepth: 1
:hidden:

results
api
```
"""


def results_page(outputs: Path, src: Path) -> str:
    results_md = outputs / "results.md"
    figures = src / "_figures"
    figures.mkdir(exist_ok=True)
    if results_md.is_file():
        body = results_md.read_text().strip()
        if not body.startswith("# "):
            body = "# Results\n\n" + body
        head, _, rest = body.partition("\n")
        shutil.copy2(results_md, figures / "results.md")
        files = "{download}`results.md <_figures/results.md>`"
        json_file = outputs / "results.json"
        if json_file.is_file():
            shutil.copy2(json_file, figures / "results.json")
            files += ", {download}`results.json <_figures/results.json>`"
        body = (
            f"{head}\n\nThis page is `outputs/results.md`, written by notebooks "
            f"[10_results](10_results.ipynb) and "
            f"[11_attentive_single_tasking](11_attentive_single_tasking.ipynb) "
            f"in the latest `make reproduce` ({files}).\n\n{rest}"
        )
    else:
        body = (
            "# Results\n\n`outputs/results.md` is absent: run `make reproduce` (notebook "
            "[10_results](10_results.ipynb) writes it), then `make book`."
        )
    sections = []
    for title, pattern in (
        ("Learning curves", "*learning*.png"),
        ("Qualitative figure", "*qualitative*.png"),
    ):
        found = (
            sorted((outputs / "figures").glob(pattern)) if (outputs / "figures").is_dir() else []
        )
        lines = [f"## {title}", ""]
        for png in found:
            shutil.copy2(png, figures / png.name)
            lines += [
                f"![{title}: {png.name}](_figures/{png.name})",
                "",
                f"`outputs/figures/{png.name}`",
                "",
            ]
        if not found:
            lines.append(f"No `outputs/figures/{pattern}` in this reproduction.")
        sections.append("\n".join(lines))
    return body + "\n\n" + "\n\n".join(sections) + "\n"


def api_page() -> str:
    sys.path.insert(0, str(ROOT))
    import ubernet_lite as ul

    ten = readme_section("The public API in ten lines")
    code = ten.split("```python", 1)[1].split("```", 1)[0].rstrip()
    after = ten.split("```", 2)[2].strip()
    lines = [
        "API",
        "===",
        "",
        "The public API in ten lines (from the README):",
        "",
        ".. code-block:: python",
        "",
        *("   " + line for line in code.strip("\n").splitlines()),
        "",
        after.replace("`", "``"),
        "",
        "Everything below is generated from the docstrings of the package.",
        "",
        "Top level",
        "---------",
        "",
        ".. automodule:: ubernet_lite",
        "   :no-members:",
        "",
    ]
    for name in ul.__all__:
        obj = getattr(ul, name)
        if not isinstance(obj, types.ModuleType) and not name.startswith("_"):
            kind = "autoclass" if isinstance(obj, type) else "autodata"
            lines += [f".. {kind}:: ubernet_lite.{name}"]
            home = getattr(obj, "__module__", "ubernet_lite").split(".")
            if kind == "autodata" or (len(home) > 1 and home[1] in ul.__all__):  # documented again
                lines += ["   :no-index:"]
            lines += [""]
            if kind == "autodata":
                lines += ["   :no-value:", ""]
    for name in ul.__all__:
        obj = getattr(ul, name)
        if isinstance(obj, types.ModuleType):
            title = f"``ubernet_lite.{name}``"
            lines += [title, "-" * len(title), "", f".. automodule:: ubernet_lite.{name}", ""]
    return "\n".join(lines) + "\n"


def mathjax_dir() -> Path:
    try:
        import mathjax  # the django-static-mathjax wheel: MathJax 3 under static/mathjax/
    except ImportError:
        raise SystemExit(
            "MathJax is missing: pip install django-static-mathjax (in pyproject's dev extra)"
        ) from None
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-mml-chtml.js").is_file():
        raise SystemExit(f"no tex-mml-chtml.js under {es5}: reinstall django-static-mathjax")
    return es5


def build(out: Path, notebooks: Path | None, outputs: Path, work: Path) -> dict:
    start = time.time()
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("conf.py", "favicon.svg"):
        shutil.copy2(BOOK / name, src / name)
    shutil.copytree(mathjax_dir(), src / "_static" / "mathjax")
    chosen = series_notebooks(notebooks)
    committed = [p.name for p, where in chosen if where.startswith("the committed")]
    if not committed:
        source_line = "This build: every notebook as executed by the latest `make reproduce`."
    elif len(committed) == len(chosen):
        source_line = (
            "This build: `outputs/notebooks/` was absent, so every page is the committed notebook "
            "with its stored outputs."
        )
    else:
        source_line = f"This build: {', '.join(committed)} from the committed notebooks (not in `outputs/notebooks/`)."
    print(source_line.replace("`", ""))
    pages, removed = [], 0
    for path, where in chosen:
        name, title, n = stage_notebook(path, where, src)
        pages.append((name, title))
        removed += n
    results_md = outputs / "results.md"
    (src / "index.md").write_text(
        landing_page(pages, results_md if results_md.is_file() else None, source_line)
    )
    (src / "results.md").write_text(results_page(outputs, src))
    (src / "api.rst").write_text(api_page())
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "sphinx",
        "-b",
        "html",
        "-q",
        "-j",
        "1",
        "-d",
        str(work / "doctrees"),
        str(src),
        str(out),
    ]
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    done = subprocess.run(cmd, env=env)
    if done.returncode:
        raise SystemExit(f"sphinx-build failed ({done.returncode}); its messages are above")
    seconds = time.time() - start
    print(
        f"book: {len(pages) + 3} pages in {out}/ ({removed} progress outputs stripped, {seconds:.0f} s)"
    )
    print(f"open {out / 'index.html'}")
    return {"pages": len(pages) + 3, "seconds": seconds, "stripped": removed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "book")
    parser.add_argument(
        "--notebooks",
        type=Path,
        default=ROOT / "outputs" / "notebooks",
        help="executed notebooks (default outputs/notebooks; absent ones: notebooks/)",
    )
    parser.add_argument(
        "--outputs",
        type=Path,
        default=ROOT / "outputs",
        help="where results.md and figures/ are (default outputs/)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "build" / "book",
        help="staging folder (sources and doctrees)",
    )
    args = parser.parse_args(argv)
    notebooks = args.notebooks if args.notebooks.is_dir() else None
    build(args.out.resolve(), notebooks, args.outputs, args.work.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
