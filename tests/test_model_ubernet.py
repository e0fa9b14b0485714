"""UberNet assembly: shapes, lazy task evaluation, encode/decode split, train-mode scales, errors."""

import pytest
import torch

from ubernet_lite.config import UberNetConfig
from ubernet_lite.model import PyramidFeatures, TaskOutputs, UberNet
from ubernet_lite.tasks import TASKS

DENSE = [n for n, s in TASKS.items() if s.kind != "detection"]


@pytest.fixture(scope="module")
def lite():
    torch.manual_seed(0)
    return UberNet(UberNetConfig.lite()).eval()


@pytest.mark.parametrize("hw", [(128, 128), (97, 131)])
def test_lite_shapes_eval(lite, hw):
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        out = lite(x)
    assert isinstance(out, TaskOutputs) and set(out) == set(TASKS)
    for name in DENSE:
        assert out[name].shape == (2, TASKS[name].out_channels, *hw), name
    assert len(out["detection"]) == 2
    assert out.scales == {}


def test_lite_odd_size_321x481():
    torch.manual_seed(0)
    cfg = UberNetConfig.lite(tasks=[TASKS["semantic"], TASKS["normals"]])
    model = UberNet(cfg).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 321, 481))
    assert out["semantic"].shape == (1, 7, 321, 481)
    assert out["normals"].shape == (1, 3, 321, 481)


def test_only_requested_heads_run(lite):
    calls = {n: 0 for n in lite.heads}
    hooks = [
        head.register_forward_hook(lambda m, i, o, n=n: calls.__setitem__(n, calls[n] + 1))
        for n, head in lite.heads.items()
    ]
    try:
        with torch.no_grad():
            out = lite(torch.rand(1, 3, 64, 64), tasks=["saliency", "parts"])
    finally:
        for h in hooks:
            h.remove()
    assert set(out) == {"saliency", "parts"}
    assert calls == {n: int(n in ("saliency", "parts")) for n in lite.heads}


def test_renamed_copies_get_their_own_branch():
    torch.manual_seed(0)
    sem = TASKS["semantic"]
    model = UberNet(
        UberNetConfig.lite(tasks=[sem, sem.renamed("semantic_2"), sem.renamed("semantic_3")])
    ).eval()
    assert list(model.heads) == ["semantic", "semantic_2", "semantic_3"]
    assert model.heads["semantic"] is not model.heads["semantic_2"]
    with torch.no_grad():
        out = model(torch.rand(1, 3, 48, 48))
    assert set(out) == {"semantic", "semantic_2", "semantic_3"}
    assert not torch.allclose(out["semantic"], out["semantic_2"])  # different parameters


def test_train_mode_returns_every_scale_at_input_resolution():
    torch.manual_seed(0)
    cfg = UberNetConfig.lite(tasks=[TASKS["boundaries"], TASKS["semantic"]])
    model = UberNet(cfg).train()
    out = model(torch.rand(2, 3, 75, 90))
    for name in ("boundaries", "semantic"):
        assert len(out.scales[name]) == len(cfg.pyramid_scales)
        for y in out.scales[name]:
            assert y.shape == out[name].shape == (2, TASKS[name].out_channels, 75, 90)
    # the fused output is S^t applied to the scale outputs (Fig. 2)
    w = model.heads["semantic"].scale_fusion.weight
    ref = sum(w[l].view(1, -1, 1, 1) * y for l, y in enumerate(out.scales["semantic"]))
    torch.testing.assert_close(out["semantic"], ref)


def test_weights_are_tied_across_scales():
    one = UberNet(UberNetConfig.lite(tasks=[TASKS["saliency"]], pyramid_scales=(1.0,))).describe(
        None
    )
    three = UberNet(UberNetConfig.lite(tasks=[TASKS["saliency"]])).describe(None)
    assert one["trunk"] == three["trunk"] and one["taps"] == three["taps"]
    assert three["saliency"] - one["saliency"] == 2  # only S^t grows: one weight per extra level


def test_encode_decode_equals_forward_and_roundtrip(lite):
    x = torch.rand(1, 3, 64, 80)
    with torch.no_grad():
        out = lite(x)
        feats = lite.encode(x)
        assert isinstance(feats, PyramidFeatures)
        assert len(feats.tensors()) == 6 * 3 + 1  # six taps per level + detection map
        cut = feats.with_tensors([t.clone() for t in feats.tensors()])
        for name in DENSE:
            torch.testing.assert_close(lite.decode(name, cut)[name], out[name])


def test_decode_leaves_tap_tensors_untouched():
    torch.manual_seed(0)
    model = UberNet(UberNetConfig.lite()).train()
    x = torch.rand(2, 3, 64, 64)
    feats = model.encode(x)
    leaves = [t.detach().requires_grad_() for t in feats.tensors()]
    cut = feats.with_tensors(leaves)
    versions = [t._version for t in leaves]
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 50.0]]), "labels": torch.tensor([1])}, None]
    total = 0
    for name in model.task_names:
        out = model.decode(name, cut, targets=targets)
        total = total + (sum(out[name].values()) if name == "detection" else out[name].mean())
    total.backward()
    assert [t._version for t in leaves] == versions
    assert all(t.grad is not None for t in leaves)


def test_describe_counts_every_parameter(lite, capsys):
    counts = lite.describe()
    assert set(counts) == {"trunk", "taps", *TASKS}
    assert sum(counts.values()) == sum(p.numel() for p in lite.parameters())
    assert "trunk" in capsys.readouterr().out


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8), "float"),
        (torch.rand(3, 64, 64), r"\[B, 3, H, W\]"),
        (torch.rand(1, 4, 64, 64), r"\[B, 3, H, W\]"),
    ],
)
def test_bad_images(lite, bad, match):
    with pytest.raises(ValueError, match=match):
        lite(bad)


def test_too_small_image(lite):
    m = lite.min_input_size
    assert 28 <= m <= 32  # 1/4 of the image must keep one stride-8 cell
    with pytest.raises(ValueError, match=f">= {m}"):
        lite(torch.rand(1, 3, m - 1, 100), tasks=["semantic"])
    with torch.no_grad():
        assert lite(torch.rand(1, 3, m, m), tasks=["semantic"])["semantic"].shape[-2:] == (m, m)


def test_unknown_task(lite):
    with pytest.raises(KeyError, match="semantik"):
        lite(torch.rand(1, 3, 64, 64), tasks=["semantik"])
