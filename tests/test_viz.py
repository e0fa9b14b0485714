"""Smoke tests of the pictures: the right number of panels, the colour conventions."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ubernet_lite import viz  # noqa: E402
from ubernet_lite.data import SynthWorld, diverse_union  # noqa: E402
from ubernet_lite.tasks import TASKS  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_show_sample_has_eight_panels_and_marks_missing_labels():
    s = SynthWorld(size=64)[0]
    fig = viz.show_sample(s)
    assert len(fig.axes) == 8
    assert [ax.get_title() for ax in fig.axes][:2] == ["image", "detection"]
    assert len(fig.axes[1].patches) == len(s["boxes"])  # one rectangle per box
    union = diverse_union(size=64, length=20)
    nyu = union[union.offsets[union.names.index("nyu")]]
    fig = viz.show_sample(nyu)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts.count("not labelled") == 6  # only the image and normals are drawn


def test_show_samples_grid():
    w = SynthWorld(size=64)
    fig = viz.show_samples([w[0], w[1], w[2]])
    assert len(fig.axes) == 3 * 8


def test_qualitative_figure_grid():
    B, H, W = 2, 32, 32
    K = TASKS["semantic_boundaries"].out_channels
    preds = {
        "boundaries": torch.randn(B, 1, H, W),
        "normals": torch.randn(B, 3, H, W),
        "saliency": torch.randn(B, 1, H, W),
        "semantic": torch.randn(B, K + 1, H, W),
        "parts": torch.randn(B, 7, H, W),
        "semantic_boundaries": torch.randn(B, K, H, W),
        "detection": [
            {
                "boxes": torch.tensor([[2.0, 3, 20, 25]]),
                "labels": torch.tensor([2]),
                "scores": torch.tensor([0.9]),
            },
            {
                "boxes": torch.tensor([[2.0, 3, 20, 25]]),
                "labels": torch.tensor([2]),
                "scores": torch.tensor([0.1]),
            },
        ],
    }
    fig = viz.qualitative_figure(torch.rand(B, 3, H, W), preds)
    assert len(fig.axes) == B * 8
    assert len(fig.axes[1].patches) == 1 and len(fig.axes[9].patches) == 0  # score threshold
    texts = [[t.get_text() for t in fig.axes[i].texts] for i in (1, 9)]
    assert not any(t.startswith("no box") for t in texts[0])
    assert any(t.startswith("no box >= 0.5 (best 0.10)") for t in texts[1])
    fig = viz.qualitative_figure(torch.rand(1, 3, H, W), {"normals": preds["normals"][:1]})
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert len(fig.axes) == 8 and texts.count("no branch") == 6
    with pytest.raises(ValueError, match="unknown tasks"):
        viz.qualitative_figure(torch.rand(1, 3, H, W), {"depth": preds["normals"]})
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        viz.qualitative_figure(torch.rand(3, H, W), preds)


def test_task_comparison_figure_shows_one_task_of_each_model():
    H = W = 32
    sample = {"image": torch.rand(3, H, W), "semantic": torch.randint(0, 7, (H, W))}
    preds = {m: {"semantic": torch.randn(1, 7, H, W)} for m in ("seven-task", "single-task")}
    fig = viz.task_comparison_figure(sample, preds, "semantic")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["image", "semantic segm.: ground truth", "seven-task", "single-task"]
    assert all(ax.images for ax in fig.axes)  # four pictures, no blank "no branch" panel
    assert len(fig.legends) == 1  # the class colours
    det = {"seven-task": {"detection": [{"boxes": torch.tensor([[2.0, 3, 20, 25]]),
                                          "labels": torch.tensor([2]), "scores": torch.tensor([0.9])}]}}  # fmt: skip
    fig = viz.task_comparison_figure(
        {"image": torch.rand(3, H, W), "boxes": torch.zeros(0, 4), "labels": torch.zeros(0)},
        det, "detection",
    )  # fmt: skip
    assert len(fig.axes[2].patches) == 1
    with pytest.raises(ValueError, match="no 'normals' output"):
        viz.task_comparison_figure(sample, preds, "normals")
    with pytest.raises(ValueError, match="task must be one of"):
        viz.task_comparison_figure(sample, preds, "image")


def test_colour_conventions():
    n = torch.zeros(3, 2, 2)
    n[0, 0, 0] = 1.0  # pointing right -> red
    n[2, 0, 1] = 2.0  # towards the camera (not unit) -> blue-ish lavender
    rgb = viz.normals_to_rgb(n)
    assert np.allclose(rgb[0, 0], [1.0, 0.5, 0.5]) and np.allclose(rgb[0, 1], [0.5, 0.5, 1.0])
    assert np.allclose(rgb[1, 1], 0.0)  # invalid normal: black
    lab = viz.labels_to_rgb(torch.tensor([[0, 1], [255, 2]]))
    assert (
        np.allclose(lab[0, 0], 0)
        and np.allclose(lab[1, 0], 1)
        and not np.allclose(lab[0, 1], lab[1, 1])
    )
    e = viz.map_to_rgb(torch.tensor([[0, 1], [255, 0]], dtype=torch.uint8))
    assert (
        np.allclose(e[0, 0], 1) and np.allclose(e[0, 1], 0) and np.allclose(e[1, 0], [1, 0.8, 0.8])
    )
    sb = torch.zeros(6, 2, 2, dtype=torch.uint8)
    sb[3, 0, 0] = 1
    assert np.allclose(viz.semantic_boundaries_to_rgb(sb)[0, 0], viz.palette()[4])
    assert np.allclose(viz.semantic_boundaries_to_rgb(sb, threshold=0.5)[0, 0], viz.palette()[4])
    assert np.allclose(viz.semantic_boundaries_to_rgb(sb)[1, 1], 1)
    soft = torch.zeros(6, 2, 2)
    soft[2, 0, 0], soft[4, 0, 0] = 0.3, 0.1  # a weak prediction: below 0.5, still drawn
    expected = 1 - 0.3 * (1 - viz.palette()[3])
    assert np.allclose(viz.semantic_boundaries_to_rgb(soft)[0, 0], expected, atol=1e-6)
    assert np.allclose(viz.semantic_boundaries_to_rgb(soft, threshold=0.5)[0, 0], 1)
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        viz.normals_to_rgb(torch.zeros(2, 2))


def test_draw_boxes_tags_of_crowded_boxes_do_not_overlap():
    # five boxes in the image's top-left corner: each tag would sit at the same spot; they stack
    fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
    ax.imshow(np.zeros((128, 128, 3)))
    boxes = torch.tensor(
        [[0, 0, 40, 50], [2, 0, 35, 30], [0, 3, 50, 60], [5, 1, 45, 40], [1, 2, 30, 33]],
        dtype=torch.float32,
    )
    tags = viz.draw_boxes(ax, boxes, torch.tensor([1, 2, 3, 1, 4]), torch.rand(5), color="red")
    assert [t.get_text().split()[0] for t in tags] == ["ball", "box", "can", "ball", "cone"]
    assert len(ax.patches) == 5 and all(
        p.get_edgecolor()[:3] == (1.0, 0.0, 0.0) for p in ax.patches
    )
    fig.canvas.draw()
    extents = [t.get_window_extent() for t in tags]
    for i, a in enumerate(extents):
        for b in extents[i + 1 :]:
            assert not a.overlaps(b), (a, b)
        assert ax.bbox.contains(*a.get_points().mean(0))  # on the image, not over the title
    plt.close(fig)
