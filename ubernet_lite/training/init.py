"""The trunk's initialisation of a training run: random, or ImageNet VGG-16 (Sec. 3).

The paper fine-tunes an ImageNet-trained VGG-16 (``init="imagenet"``, the paper preset's default
in :func:`ubernet_lite.series.preset_settings`); the lite preset, with GroupNorm and 1/8 widths,
trains from random weights. The weights are read from torchvision's cache only: nothing is
downloaded during a run.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.hub import get_dir
from torchvision.models import VGG16_Weights

from ..model import imagenet_state_dict, load_vgg16_weights

#: The trunk initialisations of :class:`~ubernet_lite.training.settings.TrainSettings` (and
#: ``"trunk:<path>"``: a saved trunk state dict, e.g. the series' shared pretrained trunk).
INITS = ("random", "imagenet")
TRUNK_FILE = "trunk:"


def imagenet_weights_file() -> Path:
    """Where torchvision keeps the ImageNet VGG-16 file: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    return Path(get_dir()) / "checkpoints" / os.path.basename(VGG16_Weights.IMAGENET1K_V1.url)


def init_trunk(model, init: str):
    """Initialise ``model.trunk`` in place: ``"random"`` leaves it, ``"imagenet"`` copies VGG-16,
    ``"trunk:<path>"`` loads a trunk state dict saved with ``torch.save(model.trunk.state_dict())``.

    Raises ``FileNotFoundError`` (one line, naming how to get the file) when the ImageNet weights
    are not in torchvision's cache; ``ValueError`` for a trunk they do not fit (the lite preset).
    """
    if init == "random":
        return model
    if str(init).startswith(TRUNK_FILE):
        path = Path(str(init)[len(TRUNK_FILE) :])
        if not path.is_file():
            raise FileNotFoundError(
                f"init={init!r}: no trunk state dict at {path}; run the pretraining stage again "
                "(series.resolve_init) or pass init='random'"
            )
        model.trunk.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model
    if init != "imagenet":
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    path = imagenet_weights_file()
    if not path.is_file():
        raise FileNotFoundError(
            f"init='imagenet' needs the ImageNet VGG-16 weights at {path}: run "
            f"`python -c 'import ubernet_lite as ul; ul.model.imagenet_state_dict(progress=True)'` "
            f"on a machine with a network (or download {VGG16_Weights.IMAGENET1K_V1.url} there), "
            f"or pass init='random'"
        )
    load_vgg16_weights(model.trunk, imagenet_state_dict())
    return model
