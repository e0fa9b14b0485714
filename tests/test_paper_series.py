"""The paper preset's path through the series: run settings per preset, ImageNet initialisation,
and every notebook executed under papermill with ``preset="paper", data="real"`` on the fixture
trees of tests/test_real_datasets.py, on the CPU, shrunk to tiny sizes and steps.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
import torchvision
from test_trainer_real import fixture_root

import ubernet_lite.training.init as init_mod
from ubernet_lite.config import make_config
from ubernet_lite.model import UberNet
from ubernet_lite.model.vgg import TORCHVISION_CONV_INDICES
from ubernet_lite.series import PRESET_SETTINGS, preset_settings
from ubernet_lite.training.async_sgd import resolve_batch_sizes
from ubernet_lite.training.init import imagenet_weights_file, init_trunk
from ubernet_lite.training.real_data import evaluate_test_sets, real_test_subsets

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


def test_evaluating_on_the_real_test_sets_keeps_each_models_mode(real_root):
    # notebook 10 evaluates the seven-task model, then runs it without targets for its figure:
    # the model must come back in eval mode (a train-mode detection branch asks for targets)
    cfg = make_config("lite", tasks=["saliency", "detection"], data="real")
    sets = real_test_subsets(cfg, cfg.task_names, real_root, images=1)
    for training in (False, True):
        model = UberNet(cfg).train(training)
        rows = evaluate_test_sets(model, sets, side=32, num_thresholds=5)
        assert set(rows) == {"saliency", "detection"}
        assert all(m.training == training for m in model.modules())


#: Per notebook: the parameters that shrink the paper preset to a CPU smoke run on the fixture
#: trees (tiny images, a few steps; ``check=False`` where a notebook asserts that a full run
#: learned, which two steps cannot show). Every notebook also gets preset, data and device.
SHRINK = {
    "00_tour": "run",
    "01_diverse_datasets": dict(length=20),
    "02_dilated_vgg": dict(image_size=65),
    "03_skip_layers_and_fusion": dict(image_size=64),
    "04_image_pyramid": dict(image_size=64),
    "05_task_losses": {},
    "06_detection_branch": dict(image_size=64, fit_steps=3, check=False),
    "07_async_sgd": dict(train_steps=2, union_length=40),
    "08_low_memory_backprop": dict(
        size=32, task_counts=[7], sizes=[32, 36], repeats=1, check=False
    ),
    "09_seven_task_training": dict(chunk=2, check=False),
    "10_results": dict(
        eval_images=2,
        num_thresholds=5,
        baseline_images=4,
        normals_gammas=[5.0],
        must_beat=[],
        train_workers=1,
        figure_images=[0],
    ),
    "11_attentive_single_tasking": dict(steps=2, eval_images=4),
}
#: The run settings of notebooks 00, 09 and 10 (ul.series.preset_settings' overrides).
RUN = dict(steps=2, image_size=64, micro_batch=2, short_batches=0, init="random")


def test_every_notebook_is_in_the_shrunk_series():
    assert sorted(SHRINK) == [p.stem for p in NOTEBOOKS]


@pytest.fixture(scope="module")
def real_root(tmp_path_factory) -> Path:
    return fixture_root(tmp_path_factory.mktemp("paper_series_data"))


@pytest.fixture(scope="module")
def shared_outputs(tmp_path_factory) -> Path:
    """The outputs folder of notebooks 09 and 10: 10 reads the runs 09 trained (its seven-task
    run), as under ``make reproduce``; run alone, 10 trains them itself."""
    return tmp_path_factory.mktemp("paper_series_outputs")


#: The notebooks that share :func:`shared_outputs`; every other one writes its own folder.
SHARED_OUTPUTS = ("09_seven_task_training", "10_results")


#: About 5 minutes on 2 cores (a kernel per notebook, a full-width VGG-16 in most, nine training
#: runs of it in notebook 10); part of ``make test`` (``make test-paper-series`` runs it alone).
@pytest.mark.parametrize("name", sorted(SHRINK))
def test_paper_series_on_real_fixture_data(name, real_root, shared_outputs, tmp_path, monkeypatch):
    """``make reproduce PRESET=paper DATA=real``'s path through notebook ``name``, on the CPU."""
    papermill = pytest.importorskip("papermill")
    outputs = shared_outputs if name in SHARED_OUTPUTS else tmp_path / "outputs"
    monkeypatch.setenv("UBERNET_OUTPUTS", str(outputs))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    params = dict(preset="paper", data="real", device="cpu", data_root=str(real_root))
    shrink = SHRINK[name]
    params.update(RUN if shrink == "run" else shrink)
    if name in ("09_seven_task_training", "10_results"):
        params.update(RUN)
    t0 = time.perf_counter()
    papermill.execute_notebook(
        str(REPO / "notebooks" / f"{name}.ipynb"),
        str(tmp_path / f"{name}.ipynb"),
        parameters=params,
        kernel_name="python3",  # this interpreter's own kernel (ipykernel's native spec)
        cwd=str(REPO / "notebooks"),
        progress_bar=False,
    )
    print(f"{name}: {time.perf_counter() - t0:.0f} s")
