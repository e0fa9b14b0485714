"""Results tables and Delta_m (average relative change, lower-is-better metrics sign-flipped)."""

from __future__ import annotations

import math

import pytest

from ubernet_lite import results


def test_delta_m_hand_worked_with_sign_flip():
    single = {"semantic": {"mIoU": 0.50}, "normals": {"mean": 20.0}, "saliency": {"MAE": 0.10}}
    multi = {"semantic": {"mIoU": 0.55}, "normals": {"mean": 25.0}, "saliency": {"MAE": 0.08}}
    # mIoU: +0.05/0.50 = +0.10; normals mean (lower better): -(25-20)/20 = -0.25;
    # MAE (lower better): -(0.08-0.10)/0.10 = +0.20  ->  mean = 0.05/3
    ch = results.relative_changes(multi, single)
    assert ch[("semantic", "mIoU")] == pytest.approx(0.10)
    assert ch[("normals", "mean")] == pytest.approx(-0.25)
    assert ch[("saliency", "MAE")] == pytest.approx(0.20)
    assert results.delta_m(multi, single) == pytest.approx(0.05 / 3)
    # swapping the roles flips the sign of every term's numerator
    assert results.delta_m(single, multi) < 0


def test_zero_and_missing_references_are_skipped():
    single = {"detection": {"mAP": 0.0}, "boundaries": {"ODS": 0.4}}
    multi = {"detection": {"mAP": 0.3}, "boundaries": {"ODS": 0.2, "AP": 0.1}}
    ch = results.relative_changes(multi, single)
    assert set(ch) == {("boundaries", "ODS")}
    assert results.delta_m(multi, single) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="share no metric"):
        results.delta_m({"detection": {"mAP": 0.3}}, single)
    assert (
        results.relative_changes({"semantic": {"mIoU": math.nan}}, {"semantic": {"mIoU": 1}}) == {}
    )


def test_lower_is_better_columns():
    assert results.lower_is_better("normals", "median")
    assert results.lower_is_better("saliency", "MAE")
    assert not results.lower_is_better("normals", "30")
    assert not results.lower_is_better("saliency", "maxF")


def test_task_table_formatting():
    rows = {
        "trivial": {
            "normals": {"mean": 41.26, "median": 38.0, "11.25": 0.1, "22.5": 0.2, "30": 0.3}
        },
        "7-task": {"normals": {"mean": 20.04, "median": 15.0, "11.25": 0.4234}},
    }
    table = results.task_table("normals", rows).splitlines()
    assert table[0] == "| method | mean (deg) | median (deg) | 11.25 (%) | 22.5 (%) | 30 (%) |"
    assert table[1] == "|---|---|---|---|---|---|"
    assert table[2] == "| trivial | 41.3 | 38.0 | 10.0 | 20.0 | 30.0 |"
    assert table[3] == "| 7-task | 20.0 | 15.0 | 42.3 | n/a | n/a |"
    det = results.task_table("detection", {"x": {"detection": {"mAP_voc07": 0.1234, "mAP": 0.5}}})
    assert det.splitlines()[-1] == "| x | 12.3 | 50.0 |"
    assert set(results.COLUMNS) == set(results.PAPER_TABLE)


def test_notebook_10_tables_margins_and_table_9():
    rows = {
        "trivial": {"semantic": {"mIoU": 0.10}, "normals": {"mean": 30.0}},
        "single-task": {"semantic": {"mIoU": 0.40}, "normals": {"mean": 20.0}},
        "seven-task": {"semantic": {"mIoU": 0.11}, "normals": {"mean": 22.0}},
    }
    tasks = ["normals", "semantic"]
    sections = results.paper_tables(rows, tasks, order=["trivial", "seven-task"])
    assert [s.splitlines()[0] for s in sections] == [
        "### Table 3: semantic",
        "### Table 8: normals",
    ]
    assert "| seven-task | 11.0 |" in sections[0]
    assert results.delta_m_summary(rows["seven-task"], rows["single-task"]).startswith(
        "**Delta_m (seven-task vs single-task"
    )
    normals, semantic = results.baseline_margins(rows, tasks)
    # normals: lower is better, 8 degrees better than trivial (needs > 5); 2 worse than single
    assert (normals.over_baseline, normals.need, normals.ok) == (8.0, 5.0, True)
    assert normals.over_single == -2.0
    # semantic: +0.01 over trivial does not clear the 0.02 margin
    assert not semantic.ok and semantic.over_baseline == pytest.approx(0.01)
    assert str(semantic).startswith("semantic             mIoU      seven-task does NOT beat")
    table = results.weight_sweep_table({1.0: rows["seven-task"], 50.0: None}, tasks)
    assert table.splitlines() == [
        "| gamma normals | normals mean | semantic mIoU |",
        "|---|---|---|",
        "| 1 | 22.0 | 11.0 |",
        "| 50 | diverged | diverged |",
    ]


def test_results_md_parts_are_kept_and_rewritten_in_place(tmp_path):
    path = tmp_path / "results.md"
    results.write_results_section(path, "x\n\n### Delta_m\n\n| a |", title="Attentive (nb 11)")
    results.write_results_section(path, "# Results\n\n### Table 3: semantic\n\n| m |\n")
    once = path.read_text()
    assert once.startswith("# Results\n") and once.index("### Table 3") < once.index("## Attentive")
    results.write_results_section(path, "x\n\n### Delta_m\n\n| a |", title="Attentive (nb 11)")
    results.write_results_section(path, "# Results\n\n### Table 3: semantic\n\n| m |\n")
    assert path.read_text() == once  # idempotent
    results.write_results_section(path, "y", title="Attentive (nb 11)")
    text = path.read_text()
    assert "# Results\n\n### Table 3: semantic\n\n| m |\n" in text and "| a |" not in text
    assert text.count("## Attentive (nb 11)") == 1 and text.rstrip().endswith("y")
    with pytest.raises(ValueError, match="'## ' headings"):
        results.write_results_section(path, "## another\n")


def test_cost_table():
    table = results.cost_table({"UberNet": dict(delta=-0.0351, params=1234567, flops=2.5e9)})
    assert table.splitlines()[2] == "| UberNet | -3.5 | 1,234,567 | 2.500 |"
