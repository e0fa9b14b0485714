"""The book (`make book`, `make book-check`) and the figures of the executed notebooks."""

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name):
    spec = importlib.util.spec_from_file_location(f"book_{name}", ROOT / "book" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load("build")
check = _load("check")
notebook_images = _load("notebook_images")

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def _notebook(source, outputs=()):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(source)
    cell.execution_count = 1
    cell.outputs = list(outputs)
    nb.cells = [nbformat.v4.new_markdown_cell("# A title"), cell]
    return nb


def _image():
    return nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})


def test_notebook_that_draws_without_image_is_reported(tmp_path):
    drawn = tmp_path / "01_drawn.ipynb"
    nbformat.write(_notebook("plt.plot([1, 2])\nplt.show()", [_image()]), drawn)
    blank = tmp_path / "02_blank.ipynb"
    nbformat.write(_notebook("fig, ax = plt.subplots()\nplt.show()"), blank)
    silent = tmp_path / "03_silent.ipynb"
    nbformat.write(_notebook("x = 1 + 1"), silent)
    assert notebook_images.missing_figures(drawn) == []
    assert notebook_images.missing_figures(silent) == []
    problems = notebook_images.missing_figures(blank)
    assert any("holds no image" in p for p in problems) and any(
        "shows no figure" in p for p in problems
    )
    assert notebook_images.main([str(tmp_path)]) == 1
    assert notebook_images.figure_count(drawn) == 1


def test_a_course_only_figure_is_excused_only_where_the_quick_cell_says_why(tmp_path):
    src = '# a figure only at scale="course"\nif curves:\n    plt.plot(curves)\n    plt.show()'
    said = nbformat.v4.new_output("stream", name="stdout", text="scale quick: no curves\n")
    drawn = nbformat.v4.new_code_cell("plt.plot([1])\nplt.show()", outputs=[_image()])
    drawn.execution_count = 1
    for outputs, ok in (([said], True), ([], False)):
        nb = _notebook(src, outputs)
        nb.cells.append(drawn)
        path = tmp_path / f"10_{ok}.ipynb"
        nbformat.write(nb, path)
        assert (notebook_images.missing_figures(path) == []) is ok


def test_committed_notebooks_show_their_figures():
    """The committed notebooks carry their executed outputs, figures included (issue 14.1)."""
    paths = notebook_images.notebooks_in([ROOT / "notebooks"])
    assert len(paths) >= 11
    problems = [p for path in paths for p in notebook_images.missing_figures(path)]
    assert not problems, "\n".join(problems) + "\n(refresh them: make notebooks-refresh)"


def test_every_notebook_shows_figures_inline_even_under_agg():
    """MPLBACKEND=Agg in the environment must not turn plt.show() into a no-op in a kernel."""
    for path in notebook_images.notebooks_in([ROOT / "notebooks"]):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        setup = next(c for c in code if "parameters" not in c.metadata.get("tags", []))
        assert setup.source.startswith("%matplotlib inline"), path.name
    makefile = (ROOT / "Makefile").read_text()
    assert not re.search(r"^export MPLBACKEND", makefile, re.M)


def test_strip_progress_removes_bars_and_widgets_only():
    bar = (
        "  0%|          | 0/600 [00:00<?, ?it/s]\r 50%|#####     | 300/600 [00:10<00:10, 29.1it/s]"
    )
    stream = nbformat.v4.new_output("stream", name="stderr", text=bar + "\nstep 600: loss 1.25\n")
    only_bar = nbformat.v4.new_output("stream", name="stderr", text=bar + "\n")
    widget = nbformat.v4.new_output(
        "display_data",
        data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "0%"},
    )
    nb = _notebook("train()", [stream, only_bar, widget, _image()])
    removed = build.strip_progress(nb)
    outputs = nb.cells[1].outputs
    assert removed == 5
    assert [o.output_type for o in outputs] == ["stream", "display_data"]
    assert outputs[0].text == "step 600: loss 1.25\n"
    assert "image/png" in outputs[1].data


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The book built from the committed notebooks (what CI has: no outputs/notebooks/)."""
    work = tmp_path_factory.mktemp("book")
    outputs = work / "outputs"
    (outputs / "figures").mkdir(parents=True)
    (outputs / "results.md").write_text(
        "# Results on the synthetic test split\n\n| task | trivial |\n| --- | --- |\n| semantic | 13.3 |\n"
    )
    out = work / "site"
    build.build(out, None, outputs, work / "work")
    return out


def test_book_pages_link_back_and_load_nothing_from_other_hosts(site):
    pages = {p.name for p in site.glob("*.html")}
    names = [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
    assert {f"{n}.html" for n in names} | {"index.html", "results.html", "api.html"} <= pages
    for name in names:
        page = (site / f"{name}.html").read_text()
        link = re.search(rf'href="(_downloads/[0-9a-f]+/{name}\.ipynb)"', page)
        assert link and (site / link.group(1)).is_file(), name
        assert "admonition-title" in page and "{admonition}" not in page, name
    assert "semantic" in (site / "results.html").read_text()
    assert "UberNetConfig" in (site / "api.html").read_text()
    for page in site.rglob("*.html"):
        text = page.read_text()
        outside = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="((?:https?:)?//[^"]+)"', text)
        assert not outside, f"{page.name} loads {outside}"
    assert (site / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()


@pytest.mark.skipif(
    check.find_browser() is None, reason=f"headless Chromium not installed ({check.INSTALL})"
)
def test_book_in_headless_chromium(site, tmp_path):
    result = check.check(site, tmp_path / "shots")
    assert result["problems"] == []
    assert result["pages"] >= 14 and result["equations"] > 0 and result["broken_links"] == 0
    for shot in result["screenshots"]:
        assert Path(shot).stat().st_size > 10_000


def test_summary_table_has_one_row_per_task():
    results = (
        "# Results\n\n### Table 3: semantic\n\n| method | mIoU (%) |\n|---|---|\n| trivial | 13.3 |\n"
        "| single-task | 17.1 |\n| seven-task | 15.7 |\n\n### Table 8: normals\n\n"
        "| method | mean (deg) | 30 (%) |\n|---|---|---|\n| trivial | 39.9 | 43.9 |\n"
        "| single-task | 14.9 | 86.0 |\n| seven-task | 17.5 | 83.3 |\n\n**Delta_m (x): -1.0 %**\n"
    )
    table = build.summary_table(results).splitlines()
    assert table[2] == "| semantic (mIoU) | 13.3 | 17.1 | 15.7 |"
    assert table[3] == "| normals (mean / 30) | 39.9 / 43.9 | 14.9 / 86.0 | 17.5 / 83.3 |"
    assert table[-1] == "**Delta_m (x): -1.0 %**"
