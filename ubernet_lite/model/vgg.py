"""The shared trunk: VGG-16 turned into DeepLab-LargeFOV (atrous, output stride 8).

Sec. 2 of the paper: UberNet uses VGG-16 [51] as a fully convolutional network and reads the six
layers conv1_2, conv2_2, conv3_3, conv4_3, conv5_3 and fc7 (the taps C_1..C_6 of Fig. 2); atrous
convolution [10, 45] evaluates the high-level neurons densely. The changes from VGG-16 are those of
DeepLab-LargeFOV (Chen et al., arXiv 1412.7062):

| layer       | VGG-16 (classification)  | here (DeepLab-LargeFOV)                              |
| ----------- | ------------------------ | ---------------------------------------------------- |
| pool1..3    | 2x2 stride 2             | 3x3 stride 2 pad 1, ceil mode (n -> n // 2 + 1)      |
| pool4, pool5| 2x2 stride 2             | 3x3 stride 1 pad 1 (resolution kept)                 |
| conv5_x     | 3x3                      | 3x3 dilation 2 (compensates pool4's lost stride)     |
| fc6         | 4096 x (512 x 7 x 7)     | 3x3 conv, dilation 12, ``fc_channels`` (1024)        |
| fc7         | 4096 x 4096              | 1x1 conv, ``fc_channels`` (1024)                     |

so a 321 x 321 image gives 41 x 41 fc7 responses (output stride 8). ``width`` multiplies the
conv widths 64/128/256/512 (the lite preset uses 1/8). Cell ``j`` of a stride-``s`` map is centred
on input pixel ``s * j`` (every pooling window is centred on its even input pixel).

The weight mapping from torchvision's ``vgg16`` (:func:`load_vgg16_weights`) decimates fc6/fc7 as
DeepLab did; see that function for the exact choice.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from torch.hub import get_dir
from torchvision.models import VGG16_Weights

#: VGG-16's conv widths per block (conv1..conv5) and number of convs per block.
VGG16_WIDTHS: tuple[int, ...] = (64, 128, 256, 512, 512)
VGG16_DEPTHS: tuple[int, ...] = (2, 2, 3, 3, 3)

#: Names of the six taps C_1..C_6 (Sec. 2) and their output strides.
TAP_NAMES: tuple[str, ...] = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3", "fc7")
TAP_STRIDES: tuple[int, ...] = (1, 2, 4, 8, 8, 8)

#: torchvision ``vgg16().features`` indices of the 13 convolutions, in order.
TORCHVISION_CONV_INDICES: tuple[int, ...] = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)

#: ImageNet statistics that torchvision's VGG weights expect (RGB in [0, 1]).
IMAGENET_MEAN: tuple[float, ...] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, ...] = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel: RGB [0, 1] -> what torchvision's VGG weights expect.

    [B, 3, H, W] -> [B, 3, H, W]. Buffers, not parameters (nothing to learn).
    """

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


#: Trunk normalisations of :class:`VGGTrunk`.
NORMS: tuple[str, ...] = ("none", "group")


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm (Wu & He, ECCV 2018) with 32 groups, or fewer so that a group has >= 4 channels
    (8 channels -> 2 groups, 64 -> 16, 128 -> 32); [B, C, H, W] -> [B, C, H, W]."""
    groups = 32
    while groups > 1 and (channels % groups or channels // groups < 4):
        groups //= 2
    return nn.GroupNorm(groups, channels)


def _scaled(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


class VGGTrunk(nn.Module):
    """Atrous VGG-16 (DeepLab-LargeFOV), output stride 8, returning the six taps.

    Args:
        width: multiplier of the conv widths 64..512 (1.0 = VGG-16).
        fc_channels: channels of fc6 and fc7 (1024 in DeepLab-LargeFOV).
        fc6_dilation: dilation of the 3x3 fc6 (12 in DeepLab-LargeFOV).
        dropout: dropout after fc6 and after fc7 (active in train mode only).
        norm: ``"none"`` (VGG-16 as published; what ImageNet weights expect) or ``"group"``
            (a GroupNorm between every conv and its ReLU, fc6/fc7 included: :func:`group_norm`).
            The paper fine-tunes ImageNet/COCO-trained VGGs; the lite preset trains from random
            weights (nothing may download), and without normalisation a raised loss weight
            blows it up in its first steps (Table 9's gamma = 50 for normals gave NaN at step 9
            at lr 0.01; with GroupNorm it trains). GroupNorm, not BatchNorm: its output does not
            depend on the micro-batch (async SGD makes micro-batches as small as 1-2 images)
            and it keeps no running statistics (so the recomputation of Sec. 4 needs no care).

    ``forward(x)``: RGB in [0, 1], [B, 3, H, W] -> list of six taps C_1..C_6, the ReLU outputs of
    conv1_2 [B, c1, H, W], conv2_2 [B, c2, H2, W2], conv3_3 [B, c3, H4, W4], conv4_3, conv5_3
    [B, c5, H8, W8] and fc7 [B, fc_channels, H8, W8], where ``Hs`` is ``H`` after the stride-2
    poolings (``n -> n // 2 + 1`` each, 321 -> 161 -> 81 -> 41). fc7's tap is taken after its
    dropout (what DeepLab's classifier fc8 reads; identical in eval mode).

    ``segments`` is the trunk as an ``nn.Sequential`` of six blocks, block ``i`` ending at tap
    ``C_i`` (block 1 starts with the ImageNet normalisation), for checkpointing (Sec. 4).
    """

    def __init__(
        self,
        width: float = 1.0,
        fc_channels: int = 1024,
        fc6_dilation: int = 12,
        dropout: float = 0.5,
        norm: str = "none",
    ):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"VGGTrunk: norm must be one of {NORMS}, got {norm!r}")
        if width <= 0 or fc_channels < 1 or fc6_dilation < 1 or not 0 <= dropout < 1:
            raise ValueError(
                f"VGGTrunk: expected width > 0, fc_channels >= 1, fc6_dilation >= 1, 0 <= dropout < 1; "
                f"got {width}, {fc_channels}, {fc6_dilation}, {dropout}"
            )
        self.width, self.norm = width, norm
        widths = [_scaled(c, width) for c in VGG16_WIDTHS]
        blocks = []
        c_in = 3
        for b, (c, depth) in enumerate(zip(widths, VGG16_DEPTHS, strict=True), start=1):
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            if b == 1:
                layers["normalize"] = Normalize()
            elif b <= 4:  # pool1..pool3: 3x3 stride 2 pad 1, ceil mode (DeepLab)
                layers[f"pool{b - 1}"] = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
            else:  # pool4: 3x3 stride 1 pad 1, keeps the resolution
                layers["pool4"] = nn.MaxPool2d(3, stride=1, padding=1)
            dilation = 2 if b == 5 else 1  # conv5: atrous rate 2 after the stride-1 pool4
            for k in range(1, depth + 1):
                layers[f"conv{b}_{k}"] = nn.Conv2d(c_in, c, 3, padding=dilation, dilation=dilation)
                if norm == "group":
                    layers[f"gn{b}_{k}"] = group_norm(c)
                layers[f"relu{b}_{k}"] = nn.ReLU(inplace=True)
                c_in = c
            blocks.append(nn.Sequential(layers))
        d = fc6_dilation
        fc: OrderedDict[str, nn.Module] = OrderedDict()
        fc["pool5"] = nn.MaxPool2d(3, stride=1, padding=1)
        for name, conv in (
            ("6", nn.Conv2d(c_in, fc_channels, 3, padding=d, dilation=d)),
            ("7", nn.Conv2d(fc_channels, fc_channels, 1)),
        ):
            fc[f"fc{name}"] = conv
            if norm == "group":
                fc[f"gn{name}"] = group_norm(fc_channels)
            fc[f"relu{name}"] = nn.ReLU(inplace=True)
            fc[f"drop{name}"] = nn.Dropout(dropout)
        blocks.append(nn.Sequential(fc))
        self.segments = nn.Sequential(*blocks)
        self.tap_names = TAP_NAMES
        self.tap_strides = TAP_STRIDES
        self.tap_channels: tuple[int, ...] = (*widths, fc_channels)
        self.stride = max(TAP_STRIDES)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # as torchvision's VGG: He init, zero bias
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def convs(self) -> list[nn.Conv2d]:
        """The 13 conv layers conv1_1..conv5_3 followed by fc6 and fc7 (15 layers)."""
        return [m for m in self.segments.modules() if isinstance(m, nn.Conv2d)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for segment in self.segments:
            x = segment(x)
            taps.append(x)
        return taps

    @staticmethod
    def output_size(n: int) -> int:
        """Side of the stride-8 maps (conv4_3, conv5_3, fc7) for an input side ``n``."""
        for _ in range(3):
            n = n // 2 + 1
        return n


def receptive_fields(net: nn.Module) -> list[dict]:
    """Output stride ("jump") and theoretical receptive field of every conv / max-pool of ``net``.

    Walks the ``Conv2d`` and ``MaxPool2d`` modules in registration order (a chain, as in VGG) and
    applies ``rf_l = rf_{l-1} + (k_l - 1) d_l j_{l-1}``, ``j_l = j_{l-1} s_l`` (k kernel, d
    dilation, s stride, j the distance in input pixels between neighbouring cells). Returns one
    dict per layer: ``name``, ``kernel``, ``dilation``, ``stride`` (= j_l), ``rf`` (pixels).
    Works on :class:`VGGTrunk` and on torchvision's ``vgg16().features`` alike.
    """
    rows, rf, jump = [], 1, 1
    for name, m in net.named_modules():
        if not isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            continue
        pair = lambda v: v if isinstance(v, int) else v[0]  # noqa: E731
        k, d, s = pair(m.kernel_size), pair(m.dilation), pair(m.stride)
        rf += (k - 1) * d * jump
        jump *= s
        rows.append(dict(name=name.split(".")[-1], kernel=k, dilation=d, stride=jump, rf=rf))
    return rows


def load_vgg16_weights(trunk: VGGTrunk, state_dict: dict[str, torch.Tensor]) -> VGGTrunk:
    """Copy a torchvision ``vgg16`` state dict onto a full-width :class:`VGGTrunk`, in place.

    Keys read: ``features.N.weight/bias`` for the 13 convolutions (N = 0, 2, 5, ..., 28, the
    same 3x3 kernels: pooling and dilation change no weights), ``classifier.0`` (fc6, [4096,
    25088] = [4096, 512 x 7 x 7]) and ``classifier.3`` (fc7, [4096, 4096]). ``classifier.6`` (the
    ImageNet classifier) is not used.

    fc6/fc7 decimation (DeepLab, arXiv 1412.7062, Sec. 3.1 and 4: fc6 is "spatially subsampled by
    simple decimation" from 7x7 to 3x3 for LargeFOV, and the fc layers are reduced from 4096 to
    1024 filters). The paper names no offsets; we choose the regular grid starting at index 0:

    - fc6: ``W.view(4096, 512, 7, 7)[::r, :, ::3, ::3]`` -> [1024, 512, 3, 3] (taps 0, 3, 6 of
      the 7x7 kernel, i.e. the corners and edge midpoints; every ``r``-th output filter), bias
      ``b[::r]``. With dilation 12 the 3x3 kernel spans 25 fc7-grid cells, i.e. 200 input pixels.
    - fc7: ``W[::r, ::r]`` -> [1024, 1024, 1, 1] (every ``r``-th output filter and every ``r``-th
      input channel, the same channels fc6 kept), bias ``b[::r]``.

    where ``r = 4096 // fc_channels`` (4 for 1024). Kept filters are not rescaled (DeepLab
    fine-tunes afterwards; fc7 sees 1/4 of its inputs, so its pre-activations shrink).

    Raises:
        ValueError: the trunk is not full width, ``fc_channels`` does not divide 4096, or the
            state dict lacks a key / has a wrong shape (with the key named).
    """
    if trunk.norm != "none":
        raise ValueError(
            f"VGG-16 weights were trained without normalisation layers; got a trunk with "
            f"norm={trunk.norm!r} (use UberNetConfig(trunk_norm='none'), as the paper preset does)"
        )
    if trunk.width != 1.0:
        raise ValueError(
            f"VGG-16 weights need a full-width trunk (width=1.0); got width={trunk.width}"
        )
    fc = trunk.tap_channels[-1]
    if fc < 1 or 4096 % fc:
        raise ValueError(f"fc6/fc7 decimation needs fc_channels dividing 4096; got {fc}")
    r = 4096 // fc

    def get(key: str, shape: tuple[int, ...]) -> torch.Tensor:
        if key not in state_dict:
            raise ValueError(f"VGG-16 state dict lacks {key!r} (expected torchvision vgg16 keys)")
        t = state_dict[key]
        if tuple(t.shape) != shape:
            raise ValueError(f"{key!r}: expected shape {shape}, got {tuple(t.shape)}")
        return t

    convs = trunk.convs()
    with torch.no_grad():
        for conv, n in zip(convs[:13], TORCHVISION_CONV_INDICES, strict=True):
            conv.weight.copy_(get(f"features.{n}.weight", tuple(conv.weight.shape)))
            conv.bias.copy_(get(f"features.{n}.bias", tuple(conv.bias.shape)))
        fc6, fc7 = convs[13], convs[14]
        w6 = get("classifier.0.weight", (4096, 512 * 7 * 7)).view(4096, 512, 7, 7)
        fc6.weight.copy_(w6[::r, :, ::3, ::3])
        fc6.bias.copy_(get("classifier.0.bias", (4096,))[::r])
        w7 = get("classifier.3.weight", (4096, 4096))
        fc7.weight.copy_(w7[::r, ::r].reshape(fc, fc, 1, 1))
        fc7.bias.copy_(get("classifier.3.bias", (4096,))[::r])
    return trunk


def imagenet_state_dict(progress: bool = False) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet VGG-16 weights (``VGG16_Weights.IMAGENET1K_V1``), as a state dict.

    Only called when a user asks for pretrained weights; it uses torchvision's weights API, which
    reads ``$TORCH_HOME/hub/checkpoints/<file>`` and downloads the file if it is missing. Offline,
    it raises a ``RuntimeError`` saying where to place the file by hand.
    """
    weights = VGG16_Weights.IMAGENET1K_V1
    filename = os.path.basename(weights.url)
    target = Path(get_dir()) / "checkpoints" / filename
    try:
        return weights.get_state_dict(progress=progress, check_hash=True)
    except Exception as err:  # URLError, socket errors, ... (no network)
        raise RuntimeError(
            f"could not load the ImageNet VGG-16 weights ({type(err).__name__}: {err}). Offline, "
            f"download {weights.url} on a machine with a network and place it at {target} "
            f"(TORCH_HOME/hub/checkpoints/{filename}; set TORCH_HOME to choose the folder)."
        ) from err
