"""The paper preset's path through the series: run settings per preset, ImageNet initialisation,
and every notebook executed under papermill with ``preset="paper", data="real"`` on the fixture
trees of tests/test_real_datasets.py, on the CPU, shrunk to tiny sizes and steps.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

import ubernet_lite.training.init as init_mod
from ubernet_lite.config import make_config
from ubernet_lite.model import UberNet
from ubernet_lite.model.vgg import TORCHVISION_CONV_INDICES
from ubernet_lite.series import PRESET_SETTINGS, preset_settings
from ubernet_lite.training.async_sgd import resolve_batch_sizes
from ubernet_lite.training.init import imagenet_weights_file, init_trunk

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_lite_settings_are_the_quick_run_and_paper_the_papers():
    # the lite defaults are what the committed notebooks ran with (nbval compares them)
    assert preset_settings("lite") == dict(
        steps=600, image_size=64, micro_batch=2, short_batches=2, init="random"
    )
    paper = preset_settings("paper")
    assert paper["image_size"] is None and paper["short_batches"] is None
    assert paper["init"] == "imagenet" and paper["steps"] >= 10000
    # image_size None: the config's 621; short_batches None: Table 1's B_p
    cfg = make_config("paper", data="real")
    assert cfg.input_size == 621
    sizes = resolve_batch_sizes(UberNet(make_config("lite", data="real")), None)
    assert sizes["shared"] == 30 and sizes["detection"] == 2 and sizes["semantic"] == 10
    shrunk = preset_settings("paper", steps=3, image_size=64, short_batches=0, init="random")
    assert shrunk == dict(steps=3, image_size=64, micro_batch=2, short_batches=None, init="random")
    with pytest.raises(TypeError, match="unknown run setting"):
        preset_settings("paper", stepz=3)
    with pytest.raises(ValueError, match="preset"):
        preset_settings("huge")
    assert set(PRESET_SETTINGS) == {"lite", "paper"}


def test_imagenet_init_without_weights_is_one_line_naming_how(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = UberNet(make_config("paper", tasks=["saliency"]))
    with pytest.raises(FileNotFoundError) as err:
        init_trunk(model, "imagenet")
    text = str(err.value)
    assert "\n" not in text and str(imagenet_weights_file()) in text
    assert "imagenet_state_dict" in text and "init='random'" in text
    with pytest.raises(ValueError, match="init must be"):
        init_trunk(model, "imagenet21k")


def test_imagenet_init_copies_vgg16_into_the_trunk(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = imagenet_weights_file()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")  # present: init_trunk reads it through imagenet_state_dict
    torch.manual_seed(1)
    sd = torchvision.models.vgg16(weights=None).state_dict()  # stands in for ImageNet's
    monkeypatch.setattr(init_mod, "imagenet_state_dict", lambda: sd)
    model = init_trunk(UberNet(make_config("paper", tasks=["saliency"])), "imagenet")
    convs = model.trunk.convs()
    for conv, n in zip(convs[:13], TORCHVISION_CONV_INDICES, strict=True):
        assert torch.equal(conv.weight, sd[f"features.{n}.weight"])
    w6 = sd["classifier.0.weight"].view(4096, 512, 7, 7)[::4, :, ::3, ::3]
    assert torch.equal(convs[13].weight, w6)
