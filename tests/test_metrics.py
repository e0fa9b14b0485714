"""Metrics on small hand-worked cases: perfect, empty, shifted within / beyond tolerance, ignored."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ubernet_lite.metrics import (
    BoundaryMeter,
    DetectionMeter,
    NormalsMeter,
    SaliencyMeter,
    SegmentationMeter,
    SemanticBoundaryMeter,
    voc_ap,
)
from ubernet_lite.metrics.boundaries import boundary_counts, match_boundaries, thin


# ----------------------------------------------------------------------------------------------
# segmentation
# ----------------------------------------------------------------------------------------------
def test_miou_hand_worked():
    # class 0: TP 1, union 2 -> 1/2; class 1: TP 2, union 3 -> 2/3; the 255 pixel is ignored
    target = torch.tensor([[[0, 0, 255], [1, 1, 255]]])
    pred = torch.tensor([[[0, 1, 0], [1, 1, 0]]])
    m = SegmentationMeter(2)
    m.update(pred, target)
    assert m.compute()["mIoU"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_miou_perfect_from_logits_and_absent_class_skipped():
    target = torch.tensor([[[0, 2], [2, 0]]])
    logits = F.one_hot(target, 4).permute(0, 3, 1, 2).float()  # class 1 and 3 never occur
    m = SegmentationMeter(4)
    m.update(logits, target)
    assert m.compute()["mIoU"] == 1.0


def test_miou_all_ignored_is_nan_and_does_not_change_a_result():
    m = SegmentationMeter(3)
    m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 255))
    assert math.isnan(m.compute()["mIoU"])
    m.update(torch.tensor([[[1, 2]]]), torch.tensor([[[1, 1]]]))
    assert m.compute()["mIoU"] == pytest.approx((1 / 2 + 0) / 2)  # class 1: 1/2, class 2: 0/1


def test_miou_errors():
    with pytest.raises(ValueError, match=r"semantic: labels must be in 0\.\.2 or 255"):
        SegmentationMeter(3).update(
            torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, 3], [1, 255]]])
        )
    with pytest.raises(ValueError, match=r"parts: prediction \(1, 2, 2\) and target \(1, 3, 3\)"):
        SegmentationMeter(3, task="parts").update(
            torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 3, 3, dtype=torch.long)
        )


# ----------------------------------------------------------------------------------------------
# saliency
# ----------------------------------------------------------------------------------------------
def test_saliency_hand_worked():
    # GT (1, 1, 0, 0), prediction (1, .5, .5, 0): levels 255, 127, 127, 0.
    # t <= 127: 3 predicted, 2 correct -> P 2/3, R 1 -> F = 1.3 * 2/3 / (0.3 * 2/3 + 1) = 0.7222
    # t in 128..255: 1 predicted, correct -> P 1, R 1/2 -> F = 1.3 * 0.5 / (0.3 + 0.5) = 0.8125
    m = SaliencyMeter(from_logits=False)
    m.update(
        torch.tensor([[[1.0, 0.5, 0.5, 0.0]]]), torch.tensor([[[1, 1, 0, 0]]], dtype=torch.uint8)
    )
    r = m.compute()
    assert r["maxF"] == pytest.approx(0.8125)
    assert r["MAE"] == pytest.approx(0.25)


def test_saliency_perfect_empty_ignored():
    gt = torch.tensor([[[1, 0, 255, 0]]], dtype=torch.uint8)
    m = SaliencyMeter(from_logits=False)
    m.update(torch.tensor([[[1.0, 0.0, 0.9, 0.0]]]), gt)  # the ignored 0.9 costs nothing
    assert m.compute() == {"maxF": pytest.approx(1.0), "MAE": pytest.approx(0.0)}
    empty = SaliencyMeter()
    empty.update(torch.zeros(1, 1, 2, 2), torch.full((1, 2, 2), 255, dtype=torch.uint8))
    assert math.isnan(empty.compute()["maxF"])


def test_saliency_averages_f_curves_over_images():
    m = SaliencyMeter(from_logits=False)
    m.update(
        torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]]]),
        torch.tensor([[[1, 0]], [[1, 0]]], dtype=torch.uint8),
    )
    # image 1: F = 1 for t >= 1; image 2: F = 0 for t >= 1; at t = 0 both predict all: F = 1.3 * .5 / 1.15
    assert m.compute()["maxF"] == pytest.approx(max(0.5, 1.3 * 0.5 / (0.15 + 1)))


# ----------------------------------------------------------------------------------------------
# normals
# ----------------------------------------------------------------------------------------------
def _rot(deg):
    a = math.radians(deg)
    return [math.sin(a), 0.0, math.cos(a)]


def test_normals_hand_worked():
    gt = torch.zeros(1, 3, 1, 4)
    gt[0, 2, 0, :3] = 1.0  # (0, 0, 1); pixel 3 is invalid
    pred = torch.tensor([_rot(0), _rot(20), _rot(40), [1.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 4) * 3.0
    m = NormalsMeter()
    m.update(pred, gt)
    r = m.compute()
    assert r["mean"] == pytest.approx(20.0, abs=1e-6)
    assert r["median"] == pytest.approx(20.0, abs=0.011)
    assert (r["11.25"], r["22.5"], r["30"]) == pytest.approx((1 / 3, 2 / 3, 2 / 3))


def test_normals_perfect_and_empty():
    gt = F.normalize(torch.randn(2, 3, 5, 5), dim=1)
    m = NormalsMeter()
    m.update(gt * 2, gt)
    r = m.compute()
    assert r["mean"] < 1e-3 and r["30"] == 1.0
    empty = NormalsMeter()
    empty.update(gt, torch.zeros_like(gt))
    assert math.isnan(empty.compute()["mean"])
    with pytest.raises(ValueError, match=r"normals.*\[B, 3, H, W\]"):
        empty.update(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))


# ----------------------------------------------------------------------------------------------
# detection: VOC AP
# ----------------------------------------------------------------------------------------------
def _box(*xyxy):
    return torch.tensor([xyxy], dtype=torch.float32)


def test_voc_ap_hand_worked_with_difficult():
    """One class; image A has boxes g1, g2, image B has g3 and a difficult g4 (npos = 3).

    Detections by score: d1 -> g1 (TP), d2 -> g4 (difficult: neither TP nor FP), d3 -> nothing
    (FP), d4 -> g3 (TP). Cumulated: rec = 1/3, 1/3, 1/3, 2/3; prec = 1, 1, 1/2, 2/3.
    VOC07 (classic voc_ap, use_07_metric=True): t = 0, .1, .2, .3 -> max prec 1; t = .4, .5, .6 ->
    max prec over rec >= t = 2/3; t >= .7 -> 0: AP = (4 + 3 * 2/3) / 11 = 6/11.
    All points: envelope (1, 1, 2/3, 2/3) -> 1/3 * 1 + 1/3 * 2/3 = 5/9.
    """
    targets = [
        {"boxes": torch.cat([_box(0, 0, 9, 9), _box(20, 20, 29, 29)]), "labels": torch.tensor([1, 1])},
        {"boxes": torch.cat([_box(0, 0, 9, 9), _box(50, 50, 59, 59)]), "labels": torch.tensor([1, 1]),
         "difficult": torch.tensor([False, True])},
    ]  # fmt: skip
    preds = [
        {"boxes": torch.cat([_box(0, 0, 9, 9), _box(100, 100, 110, 110)]), "labels": torch.tensor([1, 1]),
         "scores": torch.tensor([0.9, 0.7])},
        {"boxes": torch.cat([_box(50, 50, 59, 59), _box(1, 0, 9, 9)]), "labels": torch.tensor([1, 1]),
         "scores": torch.tensor([0.8, 0.6])},
    ]  # fmt: skip
    m = DetectionMeter(num_classes=2)  # class 2 has no ground truth: left out of the mean
    m.update(preds, targets)
    r = m.compute()
    assert r["mAP_voc07"] == pytest.approx(6 / 11)
    assert r["mAP"] == pytest.approx(5 / 9)
    assert math.isnan(r["AP"][1])


def test_voc_duplicate_is_false_positive_and_plus_one_iou():
    gt = [{"boxes": _box(0, 0, 1, 1), "labels": torch.tensor([1])}]
    # +1-pixel areas: inter 2x2 = 4, areas 4 and 6 -> IoU 4/6 > .5 (without +1: 1/2, not > .5)
    hit = [{"boxes": _box(0, 0, 2, 1), "labels": torch.tensor([1]), "scores": torch.tensor([0.5])}]
    m = DetectionMeter(1)
    m.update(hit, gt)
    assert m.compute()["mAP"] == pytest.approx(1.0)
    dup = [{"boxes": torch.cat([_box(0, 0, 1, 1), _box(0, 0, 1, 1)]), "labels": torch.tensor([1, 1]),
            "scores": torch.tensor([0.9, 0.8])}]  # fmt: skip
    m = DetectionMeter(1)
    m.update(dup, gt)
    assert m.compute()["mAP"] == pytest.approx(1.0)  # TP first, the duplicate FP after full recall
    dup[0]["scores"] = torch.tensor([0.8, 0.9])  # identical boxes: the first (higher) is TP anyway
    m = DetectionMeter(1)
    m.update(dup, gt)
    assert m.compute()["mAP"] == pytest.approx(1.0)


def test_voc_ap_curve_function_and_empty():
    # rec (.5, 1), prec (1, .5): VOC07 = (6 * 1 + 5 * .5) / 11; all points = .5 * 1 + .5 * .5
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5]), True) == pytest.approx(8.5 / 11)
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5]), False) == pytest.approx(0.75)
    assert math.isnan(DetectionMeter(3).compute()["mAP"])
    with pytest.raises(ValueError, match=r"detection: ground-truth labels must be in 1\.\.3"):
        DetectionMeter(3).update([{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0), "scores": torch.zeros(0)}],
                                 [{"boxes": _box(0, 0, 1, 1), "labels": torch.tensor([4])}])  # fmt: skip


# ----------------------------------------------------------------------------------------------
# boundaries (BSDS protocol) on 128 x 128 images: tolerance 0.0075 * 181 = 1.36 px
# ----------------------------------------------------------------------------------------------
S = 128
#: The benchmark's matcher (matchEdgeMaps) adds random outlier edges from a time-seeded generator
#: and now and then leaves a pixel or two of ~200 identical ones unmatched: F can lose ~0.01.
TOL = 0.02


def _square(lo=30, hi=90):
    """Four one-pixel sides of a square, the corners left out (thinning would delete corner
    pixels of the prediction, as MATLAB's bwmorph does, and make 'perfect' imperfect)."""
    g = np.zeros((S, S), np.uint8)
    g[lo, lo + 2 : hi - 1] = g[hi, lo + 2 : hi - 1] = 1
    g[lo + 2 : hi - 1, lo] = g[lo + 2 : hi - 1, hi] = 1
    return g


def _meter_scores(probs, gts, n=9, **kw):
    m = BoundaryMeter(num_thresholds=n, from_logits=False, **kw)
    for p, g in zip(probs, gts, strict=True):
        m.update(torch.as_tensor(p, dtype=torch.float32)[None, None], torch.as_tensor(g)[None])
    return m.compute()


def test_boundaries_perfect_within_and_beyond_tolerance():
    g = _square()
    perfect = _meter_scores([g * 0.9], [g])
    assert perfect["ODS"] == pytest.approx(1.0, abs=TOL) and perfect["OIS"] == pytest.approx(
        1.0, abs=TOL
    )
    shifted1 = _meter_scores([np.roll(g, 1, axis=(0, 1)) * 0.9], [g])  # 1 px: inside 1.36 px
    assert shifted1["ODS"] > 0.97
    shifted3 = _meter_scores([np.roll(g, 3, axis=(0, 1)) * 0.9], [g])  # 3 px: outside
    assert shifted3["ODS"] < 0.05


def test_boundaries_half_recall_and_empty_cases():
    g = _square()
    half = g.copy()
    half[:, 61:] = 0  # the left half of the square only: P = 1, R ~ 1/2
    r = _meter_scores([half * 0.9], [g])
    rec = half.sum() / g.sum()
    assert r["ODS"] == pytest.approx(2 * rec / (1 + rec), abs=TOL)
    empty_pred = _meter_scores([np.zeros((S, S))], [g])
    assert empty_pred["ODS"] == 0.0 and empty_pred["AP"] == 0.0
    empty_gt = _meter_scores([g * 0.9], [np.zeros((S, S), np.uint8)])
    assert empty_gt["ODS"] == 0.0
    ignored = _meter_scores([g * 0.9], [np.full((S, S), 255, np.uint8)])
    assert math.isnan(ignored["ODS"])


def test_boundaries_ods_vs_ois_hand_worked():
    """Image A: its contour at .35 only. Image B: its contour at .85 and a far false contour at .35.

    Each image alone reaches F = 1 at its own threshold, so OIS = 1. One threshold for both: t <=
    .3 keeps everything (R = 1, P = (|A| + |B|) / (|A| + |B| + |false|)), .4 <= t <= .8 keeps B's
    contour only (P = 1, R = |B| / (|A| + |B|)); the benchmark interpolates R and P linearly
    between neighbouring thresholds and takes the best F on the way.
    """
    a = _square(30, 90)
    b_true, b_false = _square(20, 50), _square(70, 100)
    r = _meter_scores([a * 0.35, b_true * 0.85 + b_false * 0.35], [a, b_true], n=9)
    assert r["OIS"] == pytest.approx(1.0, abs=TOL)
    na, nb = a.sum(), b_true.sum()
    p1, r1 = (na + nb) / (na + nb + b_false.sum()), 1.0  # t = .3
    p2, r2 = 1.0, nb / (na + nb)  # t = .4
    d = np.linspace(0, 1, 101)
    p, rr = p1 * (1 - d) + p2 * d, r1 * (1 - d) + r2 * d
    assert r["ODS"] == pytest.approx(np.max(2 * p * rr / (p + rr)), abs=TOL)
    assert r["ODS"] < r["OIS"] - 0.1


def test_boundaries_graded_perfect_ap_hand_worked():
    """Every contour pixel right, the four sides at confidence .25, .45, .65, .85; 9 thresholds.

    Precision is 1 wherever something is predicted; recall is 1, 1, 3/4, 3/4, 1/2, 1/2, 1/4, 1/4
    and at t = .9 nothing is predicted (R = P = 0, the benchmark's convention). AP (precision
    interpolated over the unique recalls at 0, .01, .., 1): a ramp from (0, 0) to (1/4, 1), then 1:
    0.01 * (sum_{k=0}^{25} k / 25 + 75) = 0.13 + 0.75 = 0.88. ODS = OIS = 1 (at R = P = 1).
    The benchmark's matcher (matchEdgeMaps) adds random outlier edges from a time-seeded generator
    and now and then leaves one of 228 identical pixels unmatched: hence the tolerances.
    """
    lo, hi = 30, 90
    prob = np.zeros((S, S))
    prob[lo, lo + 2 : hi - 1] = 0.25
    prob[hi, lo + 2 : hi - 1] = 0.45
    prob[lo + 2 : hi - 1, lo] = 0.65
    prob[lo + 2 : hi - 1, hi] = 0.85
    r = _meter_scores([prob], [_square(lo, hi)], n=9)
    # a pixel dropped by the matcher adds a recall value with precision < 1: AP in ~[0.855, 0.88]
    assert r["AP"] == pytest.approx(0.88, abs=0.035)
    assert r["ODS"] == pytest.approx(1.0, abs=TOL) and r["OIS"] == pytest.approx(1.0, abs=TOL)


def test_thin_to_one_pixel():
    bar = np.zeros((20, 30), bool)
    bar[8:11, 3:27] = True  # 3 px thick
    t = thin(bar)
    assert t[8:11].any(axis=0)[5:25].all() and t.sum(axis=0)[5:25].max() == 1
    assert t.sum() <= 26 and not t[:8].any() and not t[11:].any()
    line = np.zeros((9, 9), bool)
    line[4, 1:8] = True
    assert np.array_equal(thin(line), line)  # already thin: unchanged


def test_match_counts_one_to_one():
    g = _square().astype(bool)
    p = np.roll(g, 1, axis=0)
    p[60:, :] = False  # the lower half of the prediction is missing
    m_pred, m_gt = match_boundaries(p, g)
    assert m_pred.sum() == m_gt.sum()  # one to one
    assert m_pred.sum() >= p.sum() - 2 and not (m_pred & ~p).any() and not (m_gt & ~g).any()


def test_boundary_counts_shape_error():
    with pytest.raises(
        ValueError, match=r"boundaries: prediction \(4, 4\) and ground truth \(4, 5\)"
    ):
        boundary_counts(np.zeros((4, 4)), np.zeros((4, 5)), 3)
    with pytest.raises(
        ValueError, match=r"boundaries: prediction \(1, 4, 4\) and target \(1, 4, 5\)"
    ):
        BoundaryMeter(3).update(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 5))


def test_boundary_meter_parallel_matches_serial():
    g = _square()
    probs = [np.roll(g, k, axis=0) * (0.3 + 0.2 * k) for k in range(3)]
    serial = _meter_scores(probs, [g] * 3, n=5)
    parallel = _meter_scores(probs, [g] * 3, n=5, workers=2)
    # the benchmark's matcher draws random outlier edges (time-seeded): counts may differ by a pixel
    assert parallel == pytest.approx(serial, abs=TOL)


# ----------------------------------------------------------------------------------------------
# semantic boundaries
# ----------------------------------------------------------------------------------------------
def test_semantic_boundaries_mean_over_present_classes():
    g = torch.from_numpy(_square())
    target = torch.zeros(1, 3, S, S, dtype=torch.uint8)
    target[0, 0] = g  # class 1 present, predicted well
    target[0, 1] = torch.roll(g, 40, 1)  # class 2 present, predicted at the wrong place
    prob = torch.zeros(1, 3, S, S)  # class 3: no GT anywhere -> left out
    prob[0, 0] = g * 0.9
    prob[0, 1] = (
        torch.roll(torch.from_numpy(_square(45, 75)), 40, 1) * 0.9
    )  # 15 px inside: > 3.6 px
    m = SemanticBoundaryMeter(3, num_thresholds=5, from_logits=False)
    m.update(prob, target)
    r = m.compute()
    assert r["MF"][0] == pytest.approx(1.0, abs=TOL) and r["MF"][1] < 0.1 and math.isnan(r["MF"][2])
    assert r["mMF"] == pytest.approx((r["MF"][0] + r["MF"][1]) / 2)
    with pytest.raises(ValueError, match=r"semantic_boundaries.*\[B, 3, H, W\]"):
        m.update(prob[:, :2], target[:, :2])


# ----------------------------------------------------------------------------------------------
# evaluate(): a stand-in model that predicts each sample's own ground truth
# ----------------------------------------------------------------------------------------------
from ubernet_lite.metrics import evaluate  # noqa: E402
from ubernet_lite.tasks import TARGETS, TASKS  # noqa: E402


def _sample(i: int, h=40, w=48, labelled=TARGETS):
    g = torch.Generator().manual_seed(i)
    sem = torch.zeros(h, w, dtype=torch.int64)
    sem[8:30, 10 + i : 30 + i] = 1 + i % 6
    bnd = torch.zeros(h, w, dtype=torch.uint8)
    bnd[8, 12:28] = bnd[29, 12:28] = 1
    sb = torch.zeros(6, h, w, dtype=torch.uint8)
    sb[i % 6] = bnd
    s = {
        "image": torch.full((3, h, w), float(i)),  # the stand-in model reads the index here
        "semantic": sem,
        "parts": (sem > 0).long() * 2,
        "saliency": (sem > 0).to(torch.uint8),
        "boundaries": bnd,
        "semantic_boundaries": sb,
        "normals": F.normalize(torch.randn(3, h, w, generator=g), dim=0),
        "boxes": torch.tensor([[10.0 + i, 8.0, 29.0 + i, 29.0]]),
        "labels": torch.tensor([1 + i % 6]),
        "difficult": torch.tensor([False]),
        "meta": {"dataset": "test", "split": "val", "index": i},
    }
    s["has_label"] = {t: t in labelled for t in TARGETS}
    for t in TARGETS:
        if t not in labelled:
            s.pop(t, None)
            if t == "detection":
                for k in ("boxes", "labels", "difficult"):
                    s.pop(k)
    return s


class _Oracle(torch.nn.Module):
    """Predicts the ground truth of the sample whose index is written into its image."""

    def __init__(self, samples):
        super().__init__()
        self.samples = samples
        self.cfg = type("Cfg", (), {"tasks": list(TASKS.values())})()
        self.calls = []

    @staticmethod
    def _padded(s, h, w):
        out = dict(s)
        for k in ("semantic", "parts", "saliency", "boundaries", "semantic_boundaries", "normals"):
            x = s[k] if k in s else torch.zeros_like(_sample(0)[k])
            out[k] = F.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2]))
        return out

    def forward(self, images, tasks=None, targets=None):
        assert not self.training
        self.calls.append(list(tasks))
        h, w = images.shape[-2:]
        full = [self._padded(self.samples[int(x[0, 0, 0])], h, w) for x in images]
        out = {}
        for name in tasks:
            if name == "detection":
                out[name] = [
                    {
                        "boxes": s.get("boxes", torch.zeros(0, 4)),
                        "labels": s.get("labels", torch.zeros(0, dtype=torch.long)),
                        "scores": torch.ones(len(s.get("labels", []))),
                    }
                    for s in full
                ]
                continue
            spec = TASKS[name]
            t = torch.stack([s[spec.target] for s in full])
            if spec.kind == "multiclass":
                out[name] = F.one_hot(t, spec.out_channels).permute(0, 3, 1, 2).float() * 10
            elif spec.kind == "regression":
                out[name] = t * 2
            else:
                logits = t.float() * 20 - 10
                out[name] = logits[:, None] if logits.dim() == 3 else logits
        return out


def test_evaluate_oracle_is_perfect_and_uses_labelled_samples_only():
    samples = [_sample(0), _sample(1, labelled=("semantic",)), _sample(2, h=36)]  # 2 is padded
    model = _Oracle(samples)
    rows = evaluate(model, samples, batch_size=2, num_thresholds=3, progress=False)
    assert set(rows) == set(TASKS)
    assert rows["semantic"]["mIoU"] == pytest.approx(1.0)
    assert rows["parts"]["mIoU"] == pytest.approx(1.0)
    assert rows["saliency"] == {"maxF": pytest.approx(1.0), "MAE": pytest.approx(0.0, abs=1e-4)}
    assert rows["normals"]["mean"] < 0.01 and rows["normals"]["11.25"] == 1.0
    # 32 contour pixels per image here: one pixel dropped by the matcher costs ~0.03
    assert rows["boundaries"]["ODS"] == pytest.approx(1.0, abs=0.07)
    assert rows["semantic_boundaries"]["mMF"] == pytest.approx(1.0, abs=0.07)
    assert rows["detection"] == {"mAP_voc07": pytest.approx(1.0), "mAP": pytest.approx(1.0)}
    assert set(rows["normals"]) == {"mean", "median", "11.25", "22.5", "30"}


def test_evaluate_errors():
    with pytest.raises(ValueError, match="evaluate: the data set is empty"):
        evaluate(_Oracle([]), [], progress=False)
    only_sem = [_sample(0, labelled=("semantic",))]
    rows = evaluate(_Oracle(only_sem), only_sem, progress=False)
    assert set(rows) == {"semantic"}  # default tasks: the unlabelled ones are left out
    with pytest.raises(ValueError, match=r"no sample .* labelled for task 'saliency'"):
        evaluate(_Oracle(only_sem), only_sem, tasks=["saliency"], progress=False)


def test_boundary_benchmark_runs_small(capsys):
    from ubernet_lite.bench import boundaries as bench

    out = bench.main(
        [
            "--images",
            "2",
            "--height",
            "64",
            "--width",
            "96",
            "--thresholds",
            "3",
            "--full-images",
            "0",
            "--workers",
            "1",
        ]
    )
    assert 0.0 <= out["ODS"] <= 1.0 and out["seconds"] > 0
    assert "evaluation time" in capsys.readouterr().out


def test_boundary_meter_rejects_non_finite_predictions():
    meter = BoundaryMeter(num_thresholds=3)
    pred = torch.zeros(1, 1, 8, 8)
    pred[0, 0, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        meter.update(pred, torch.zeros(1, 8, 8, dtype=torch.uint8))
