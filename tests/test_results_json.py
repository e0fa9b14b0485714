"""outputs/results.json: the models' metrics as data (round trip, schema), and the course
scale's targets."""

from __future__ import annotations

import json
import math

import pytest

from ubernet_lite import results

SEVEN = {
    "semantic": {"mIoU": 0.31},
    "normals": {"mean": 11.0, "median": 8.0, "11.25": 0.6, "22.5": 0.8, "30": 0.9},
    "detection": {"mAP_voc07": float("nan"), "mAP": 0.1},
}
MODELS = {
    "seven-task": SEVEN,
    "single-task": {"semantic": {"mIoU": 0.33}},
    "trivial": {"semantic": {"mIoU": 0.13}},
    "seven_task_normals_gamma5": {"semantic": {"mIoU": 0.29}},
    "seven_task_normals_gamma50": None,  # diverged
}
META = dict(scale="course", preset="lite", data="synthetic",
            wall_time_s={"runs": {"seven_task": 120.5}, "total": 300.0},
            test={"images": 128, "size": 96, "num_thresholds": 99})  # fmt: skip


def test_round_trip(tmp_path):
    path = results.write_results_json(tmp_path / "out" / "results.json", MODELS, **META)
    text = path.read_text()
    assert "NaN" not in text  # strict JSON: NaN is null
    doc = results.read_results_json(path)
    assert doc == json.loads(text)
    assert set(results.models_of(doc)) == {
        "seven_task", "single_task", "trivial", "seven_task_normals_gamma5",
        "seven_task_normals_gamma50",
    }  # fmt: skip
    assert doc["seven_task"]["semantic"]["mIoU"] == 0.31
    assert doc["seven_task"]["normals"] == SEVEN["normals"]
    assert doc["seven_task"]["detection"] == {"mAP_voc07": None, "mAP": 0.1}
    assert doc["seven_task_normals_gamma50"] is None
    assert (doc["scale"], doc["preset"], doc["data"]) == ("course", "lite", "synthetic")
    assert doc["wall_time_s"]["runs"]["seven_task"] == 120.5
    assert doc["test"]["images"] == 128
    assert doc["format"] == results.RESULTS_FORMAT
    # written again: the same document
    results.write_results_json(path, MODELS, **META)
    assert results.read_results_json(path) == doc


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d.pop("scale"), "misses"),
        (lambda d: d.update(format="other/1"), "format"),
        (lambda d: d.update(seven_task={"depth": {"x": 1.0}}), "unknown task"),
        (lambda d: d.update(seven_task={"semantic": {"IoU": 1.0}}), "unknown column"),
        (lambda d: d.update(seven_task={"semantic": {"mIoU": "31 %"}}), "number or null"),
        (lambda d: d.update(seven_task=[1, 2]), "must be"),
        (lambda d: d.update(preset=3), "string"),
    ],
)
def test_schema_errors_are_one_line(change, match):
    doc = results.results_document(MODELS, **META)
    change(doc)
    with pytest.raises(ValueError, match=match) as err:
        results.check_results_document(doc)
    assert "\n" not in str(err.value)


def test_model_names():
    assert results.model_key("seven-task") == "seven_task"
    assert results.model_key("single-task") == "single_task"
    with pytest.raises(ValueError, match="reserved"):
        results.model_key("scale")
    with pytest.raises(ValueError, match="two models"):
        results.results_document({"seven-task": SEVEN, "seven_task": SEVEN}, **META)


def test_course_targets_are_item_4s():
    t = results.COURSE_TARGETS
    assert t["semantic"] == ("mIoU", ">=", 0.30) and t["parts"] == ("mIoU", ">=", 0.25)
    assert t["detection"] == ("mAP_voc07", ">=", 0.15)
    assert t["semantic_boundaries"] == ("mMF", ">=", 0.20)
    assert t["saliency"] == ("maxF", ">=", 0.50) and t["boundaries"] == ("ODS", ">=", 0.50)
    assert t["normals"] == ("mean", "<=", 12.0)
    good = {task: {col: need} for task, (col, _, need) in t.items()}  # exactly at the targets
    assert results.target_misses(good) == []
    bad = {**good, "semantic": {"mIoU": 0.29}, "normals": {"mean": 12.5}}
    bad.pop("detection")
    misses = results.target_misses(bad)
    assert len(misses) == 3
    assert any(m.startswith("semantic mIoU = 29.0, needs >= 30.0") for m in misses)
    assert any(m.startswith("normals mean = 12.5, needs <= 12.0") for m in misses)
    assert any(m.startswith("detection mAP_voc07: missing") for m in misses)
    nan = {**good, "parts": {"mIoU": math.nan}}
    assert results.target_misses(nan) == ["parts mIoU: missing (needs >= 25.0)"]
