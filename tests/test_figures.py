"""The qualitative figure of notebooks 00 and 10: ground truth beside prediction for every task,
at least four test images, detections with class names and scores, legends of the colours."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import ubernet_lite as ul  # noqa: E402
from ubernet_lite.data import SynthWorld  # noqa: E402
from ubernet_lite.tasks import PART_NAMES, SYNTH_CLASSES  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _predictions(samples, score=0.9):
    """Stand-in predictions: the ground truth as logits, one confident box per image."""
    out = {"semantic": [], "parts": [], "normals": [], "boundaries": [], "saliency": [],
           "semantic_boundaries": []}  # fmt: skip
    for s in samples:
        out["semantic"].append(
            torch.nn.functional.one_hot(s["semantic"].long(), 7).permute(2, 0, 1)
        )
        out["parts"].append(torch.nn.functional.one_hot(s["parts"].long(), 7).permute(2, 0, 1))
        out["normals"].append(s["normals"])
        out["boundaries"].append(s["boundaries"][None].float() * 8 - 4)
        out["saliency"].append(s["saliency"][None].float() * 8 - 4)
        out["semantic_boundaries"].append(s["semantic_boundaries"].float() * 8 - 4)
    out = {k: torch.stack(v).float() for k, v in out.items()}
    out["detection"] = [
        {"boxes": s["boxes"][:1].float(), "labels": s["labels"][:1],
         "scores": torch.tensor([score])}
        for s in samples
    ]  # fmt: skip
    return out


def test_truth_and_prediction_rows_and_legends():
    world = SynthWorld(split="test", size=64, seed=0)
    samples = [world[i] for i in (0, 3, 5, 7)]
    preds = _predictions(samples)
    fig = ul.viz.truth_and_prediction_figure(samples, preds, title="model X")
    assert len(fig.axes) == 4 * 2 * 8  # >= 4 images, a truth and a prediction row each
    rows = [fig.axes[r * 8].get_ylabel() for r in range(8)]
    assert rows[:2] == ["#0 truth", "#0 predicted"] and rows[-1] == "#7 predicted"
    titles = [ax.get_title() for ax in fig.axes[:8]]
    assert titles == [ul.viz.TITLES[k] for k in ul.viz.PANELS]
    # detections: ground-truth boxes with class names, predicted ones with name and score
    truth_det, pred_det = fig.axes[1], fig.axes[9]
    assert len(truth_det.patches) == len(samples[0]["boxes"])
    name = SYNTH_CLASSES[int(samples[0]["labels"][0]) - 1]
    assert [t.get_text() for t in pred_det.texts] == [f"{name} 0.90"]
    assert name in {t.get_text() for t in truth_det.texts}
    # no panel is empty: every one holds an image
    assert all(ax.images for ax in fig.axes)
    labels = [{t.get_text() for t in lg.get_texts()} for lg in fig.legends]
    assert set(SYNTH_CLASSES) in labels and set(PART_NAMES) in labels
    assert "model X" in fig._suptitle.get_text()


def test_low_scores_and_missing_branches_say_so():
    world = SynthWorld(split="test", size=64, seed=0)
    samples = [world[0]]
    preds = _predictions(samples, score=0.2)
    del preds["parts"]
    fig = ul.viz.truth_and_prediction_figure(samples, preds, score_threshold=0.5)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "no box >= 0.5 (best 0.20)" in texts and "no branch" in texts
    with pytest.raises(ValueError, match="unknown tasks"):
        ul.viz.truth_and_prediction_figure(samples, {"depth": preds["normals"]})
    with pytest.raises(ValueError, match="at least one sample"):
        ul.viz.truth_and_prediction_figure([], preds)


def test_at_most_max_boxes_best_first():
    world = SynthWorld(split="test", size=64, seed=0)
    s = world[0]
    preds = _predictions([s])
    preds["detection"] = [
        {"boxes": torch.tensor([[1.0, 1, 10, 10]] * 4), "labels": torch.tensor([1, 2, 3, 4]),
         "scores": torch.tensor([0.6, 0.95, 0.3, 0.8])}
    ]  # fmt: skip
    fig = ul.viz.truth_and_prediction_figure([s], preds, max_boxes=2)
    texts = [t.get_text() for t in fig.axes[9].texts]
    assert texts == [f"{SYNTH_CLASSES[1]} 0.95", f"{SYNTH_CLASSES[3]} 0.80"]
