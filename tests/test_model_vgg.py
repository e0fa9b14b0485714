"""The atrous VGG-16 trunk (DeepLab-LargeFOV) and the torchvision weight mapping."""

import pytest
import torch
import torchvision
from torch import nn

from ubernet_lite.model import VGGTrunk, imagenet_state_dict, load_vgg16_weights
from ubernet_lite.model import vgg as vgg_mod


@pytest.fixture(scope="module")
def tv_vgg16():
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None).eval()  # random init, no download


@pytest.fixture(scope="module")
def mapped(tv_vgg16):
    trunk = VGGTrunk(width=1.0, fc_channels=1024, fc6_dilation=12)
    return load_vgg16_weights(trunk, tv_vgg16.state_dict()).eval()


def test_tap_shapes_output_stride_8_odd_size():
    trunk = VGGTrunk(width=0.125, fc_channels=32).eval()
    with torch.no_grad():
        taps = trunk(torch.rand(1, 3, 321, 481))
    hw = [tuple(t.shape[-2:]) for t in taps]
    assert hw == [(321, 481), (161, 241), (81, 121), (41, 61), (41, 61), (41, 61)]
    assert [t.shape[1] for t in taps] == [8, 16, 32, 64, 64, 32]
    assert trunk.tap_channels == (8, 16, 32, 64, 64, 32)
    assert VGGTrunk.output_size(321) == 41 and VGGTrunk.output_size(128) == 17


def test_deeplab_largefov_layer_pattern():
    trunk = VGGTrunk(width=0.125, fc_channels=16, fc6_dilation=12)
    convs = trunk.convs()
    assert len(convs) == 15
    assert [c.dilation[0] for c in convs[10:13]] == [2, 2, 2]  # conv5 atrous
    assert all(c.dilation[0] == 1 for c in convs[:10])
    fc6, fc7 = convs[13], convs[14]
    assert fc6.kernel_size == (3, 3) and fc6.dilation == (12, 12) and fc6.padding == (12, 12)
    assert fc7.kernel_size == (1, 1)
    pools = [m for m in trunk.modules() if isinstance(m, nn.MaxPool2d)]
    assert [p.stride for p in pools] == [2, 2, 2, 1, 1]
    assert all(p.kernel_size == 3 and p.padding == 1 for p in pools)


def test_segments_reach_every_tap():
    trunk = VGGTrunk(width=0.125, fc_channels=16).eval()
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        taps = trunk(x)
        y = x
        for i, seg in enumerate(trunk.segments):
            y = seg(y)
            torch.testing.assert_close(y, taps[i])
    assert isinstance(trunk.segments, nn.Sequential) and len(trunk.segments) == 6


def test_dropout_only_in_train_mode():
    trunk = VGGTrunk(width=0.125, fc_channels=16, dropout=0.5)
    x = torch.rand(1, 3, 33, 33)
    trunk.eval()
    with torch.no_grad():
        a, b = trunk(x)[-1], trunk(x)[-1]
    torch.testing.assert_close(a, b)
    trunk.train()
    with torch.no_grad():
        assert not torch.equal(trunk(x)[-1], trunk(x)[-1])


def test_weight_mapping_is_exact(tv_vgg16, mapped):
    sd = tv_vgg16.state_dict()
    convs = mapped.convs()
    for conv, n in zip(convs[:13], (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), strict=True):
        assert torch.equal(conv.weight, sd[f"features.{n}.weight"])
        assert torch.equal(conv.bias, sd[f"features.{n}.bias"])
    fc6, fc7 = convs[13], convs[14]
    w6, b6 = sd["classifier.0.weight"], sd["classifier.0.bias"]  # [4096, 512*7*7]
    w7, b7 = sd["classifier.3.weight"], sd["classifier.3.bias"]  # [4096, 4096]
    assert fc6.weight.shape == (1024, 512, 3, 3) and fc7.weight.shape == (1024, 1024, 1, 1)
    # element by element from the flat fc layout: filter 4k, channel c, kernel tap (3i, 3j)
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        k, c = (
            torch.randint(1024, (1,), generator=g).item(),
            torch.randint(512, (1,), generator=g).item(),
        )
        i, j = torch.randint(3, (2,), generator=g).tolist()
        assert fc6.weight[k, c, i, j] == w6[4 * k, c * 49 + (3 * i) * 7 + 3 * j]
        m = torch.randint(1024, (1,), generator=g).item()
        assert fc7.weight[k, m, 0, 0] == w7[4 * k, 4 * m]
    assert torch.equal(fc6.bias, b6[::4]) and torch.equal(fc7.bias, b7[::4])


def test_mapped_conv1_2_matches_torchvision(tv_vgg16, mapped):
    x = torch.rand(1, 3, 24, 30)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        ours = mapped.segments[0](x)  # normalisation + conv1_1 + conv1_2
        ref = tv_vgg16.features[:4]((x - mean) / std)
    torch.testing.assert_close(ours, ref)


def test_mapping_rejects_wrong_trunk_and_dict(tv_vgg16):
    with pytest.raises(ValueError, match="width"):
        load_vgg16_weights(VGGTrunk(width=0.5), tv_vgg16.state_dict())
    sd = dict(tv_vgg16.state_dict())
    del sd["classifier.3.weight"]
    with pytest.raises(ValueError, match="classifier.3.weight"):
        load_vgg16_weights(VGGTrunk(width=1.0, fc_channels=1024), sd)


def test_imagenet_weights_offline_message(monkeypatch):
    from torchvision.models import VGG16_Weights

    def offline(self, *a, **k):
        raise OSError("no network")

    monkeypatch.setattr(type(VGG16_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(RuntimeError, match=r"hub/checkpoints/vgg16-.*\.pth"):
        imagenet_state_dict()
    assert vgg_mod.IMAGENET_MEAN == (0.485, 0.456, 0.406)


def test_receptive_fields_stride_8_and_large_fov(tv_vgg16):
    rows = {r["name"]: r for r in vgg_mod.receptive_fields(VGGTrunk(width=0.125, fc_channels=16))}
    assert [
        rows[n]["stride"] for n in ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3", "fc7")
    ] == [
        1,
        2,
        4,
        8,
        8,
        8,
    ]
    # atrous conv5 keeps (and exceeds) VGG-16's conv5_3 field of view at twice the resolution
    tv = vgg_mod.receptive_fields(tv_vgg16.features)
    assert tv[-2]["stride"] == 16 and rows["conv5_3"]["rf"] >= tv[-2]["rf"]
    assert rows["fc7"]["rf"] == rows["pool5"]["rf"] + 2 * 12 * 8  # fc6: 3x3, dilation 12, stride 8


# ---- trunk normalisation (the lite preset's GroupNorm) ---------------------------------------


def test_group_norm_trunk_puts_a_groupnorm_between_every_conv_and_its_relu():
    from torch import nn

    trunk = VGGTrunk(width=0.125, fc_channels=128, norm="group")
    layers = [m for m in trunk.segments.modules() if not isinstance(m, nn.Sequential)]
    convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
    assert len(convs) == 15
    for i in convs:
        assert isinstance(layers[i + 1], nn.GroupNorm)
        assert layers[i + 1].num_channels == layers[i].out_channels
        assert isinstance(layers[i + 2], nn.ReLU)
    plain = VGGTrunk(width=0.125, fc_channels=128)
    assert not any(isinstance(m, nn.GroupNorm) for m in plain.modules())
    x = torch.rand(2, 3, 40, 40)
    assert [t.shape for t in trunk(x)] == [t.shape for t in plain(x)]


def test_group_norm_groups_keep_at_least_four_channels():
    from ubernet_lite.model.vgg import group_norm

    assert [group_norm(c).num_groups for c in (8, 16, 64, 128, 512, 6)] == [2, 4, 16, 32, 32, 1]


def test_lite_preset_uses_group_norm_and_paper_preset_does_not():
    from torch import nn

    import ubernet_lite as ul

    assert ul.UberNetConfig.lite().trunk_norm == "group"
    assert ul.UberNetConfig.paper().trunk_norm == "none"
    with pytest.raises(ValueError, match="trunk_norm"):
        ul.UberNetConfig.lite(trunk_norm="batch")
    model = ul.UberNet(ul.UberNetConfig.lite(tasks=["normals"]))
    assert any(isinstance(m, nn.GroupNorm) for m in model.trunk.modules())


def test_imagenet_weights_refuse_a_normalised_trunk():
    with pytest.raises(ValueError, match="norm"):
        load_vgg16_weights(VGGTrunk(width=1.0, fc_channels=1024, norm="group"), {})
    with pytest.raises(ValueError, match="norm must be one of"):
        VGGTrunk(norm="layer")
