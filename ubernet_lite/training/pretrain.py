"""The shared initialisation of the course-scale runs: a trunk pretrained once, on another task.

The paper never trains UberNet from nothing: every model it compares starts from the same
ImageNet-trained VGG-16 (COCO for detection; Sec. 3), then multi-tasks. The lite trunk cannot
load ImageNet weights (1/8 widths, GroupNorm, nothing downloads), so this module gives it the
honest analogue: **multi-label classification** -- which of the K object classes appear in an
image -- on images rendered for this stage only (their own seed and styles, never the union's or
the test split's images), with a global-average-pooling head on fc7 that is thrown away
afterwards. Like ImageNet labels, class presence is *not* one of the seven evaluated tasks: it
has no location, no mask, no box, no part, no geometry, so a single-task model and the seven-task
model start from the same trunk and their comparison stays what the paper's is.

```python
init = pretrained_init(cfg, image_size=96)   # trains once (minutes), then a file look-up
trainer = Trainer(cfg, init=init, ...)       # "trunk:<path of the trunk's state dict>"
```

The stage is cached under ``outputs/pretrain/<key>/``, ``key`` a hash of the
:class:`PretrainSettings` and the trunk's architecture (so a changed recipe trains a new one):
``trunk.pt`` (the record: state dict, settings, loss history, held-out scores, wall time) and
``trunk_state.pt`` (the trunk's state dict alone, what ``init="trunk:<path>"`` loads).
:func:`pretrained_init` is the hook ``series.resolve_init`` calls for ``init="pretrained"``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..data.sample import stable_seed
from ..data.synthetic.world import NUM_CLASSES, SynthWorld
from ..model.vgg import VGGTrunk
from ..paths import outputs_dir
from ..progress import progress_bar
from .async_sgd import poly_schedule

#: Names of the cached files in their folder: the record, and the trunk's state dict alone.
TRUNK_FILE = "trunk.pt"
STATE_FILE = "trunk_state.pt"
#: Format tag of the file (bump when its layout changes).
FORMAT = "ubernet_lite.pretrained_trunk/1"


@dataclasses.dataclass(frozen=True)
class PretrainSettings:
    """What defines the pretraining stage (all of it is part of the cache key).

    Attributes:
        size: image side (the training size of the runs that start from it).
        samples: images drawn (each one new: the stage never repeats an image).
        micro_batch: images per SGD step.
        lr, momentum, weight_decay: SGD's, with a poly decay over the stage.
        warmup: samples of linear learning-rate warm-up from 0.
        styles: the world's styles the images are rendered in, in turn.
        scales: each micro-batch is resized by a factor drawn from these (the pyramid's levels,
            so that the trunk sees objects at the sizes it will see them at).
        seed: seed of the images, the head's and trunk's init and the order.
    """

    size: int = 96
    samples: int = 48000  # docs/course_recipe.md, run M: presence mAP 0.59 at 24,000, 0.72 here
    micro_batch: int = 16
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup: int = 1000
    styles: tuple[str, ...] = ("scene", "scene", "msra", "indoor")
    scales: tuple[float, ...] = (1.0, 1.0, 0.75, 0.5)
    seed: int = 0

    def __post_init__(self):
        if self.size < 64 or self.samples < 0 or self.micro_batch < 1:
            raise ValueError(
                f"PretrainSettings: expected size >= 64, samples >= 0, micro_batch >= 1; got "
                f"{self.size}, {self.samples}, {self.micro_batch}"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"PretrainSettings: lr must be a finite number > 0, got {self.lr}")
        if not self.styles or not self.scales or any(not 0 < s <= 1 for s in self.scales):
            raise ValueError(
                f"PretrainSettings: give at least one style and scales in (0, 1]; got "
                f"{self.styles}, {self.scales}"
            )


class PresenceImages(Dataset):
    """Images of the synthetic world and which classes they show: the pretraining stage's data.

    Item ``i``: ``(image float32 [3, H, W] in [0, 1], presence float32 [K])`` with
    ``presence[k - 1] = 1`` iff an object of class ``k`` is visible. The images come from worlds
    of their own seed (``stable_seed(seed, "pretrain", style)``): none is an image of the union or
    of the val / test splits that the seven tasks are trained and evaluated on. Style ``i mod
    len(styles)``.
    """

    def __init__(self, size: int, length: int, seed: int = 0, styles=("scene",), split="train"):
        self.length, self.styles = int(length), tuple(styles)
        self.worlds = {
            st: SynthWorld(
                split=split,
                size=size,
                seed=stable_seed(seed, "pretrain", st),
                style=st,
                length=max(self.length, 1),
            )  # fmt: skip
            for st in set(self.styles)
        }

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.worlds[self.styles[i % len(self.styles)]][i]
        presence = torch.zeros(NUM_CLASSES)
        presence[sample["labels"] - 1] = 1.0
        return sample["image"], presence


class PresenceNet(nn.Module):
    """The trunk with a classification head: global average pooling of fc7, one linear layer.

    ``forward(images [B, 3, H, W]) -> logits [B, K]``.
    """

    def __init__(self, trunk: VGGTrunk, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(trunk.tap_channels[-1], num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        fc7 = self.trunk(images)[-1]  # [B, C, H8, W8]
        return self.head(fc7.mean(dim=(2, 3)))


def trunk_of(cfg) -> VGGTrunk:
    """A freshly initialised trunk of ``cfg`` (the one :class:`~ubernet_lite.UberNet` builds)."""
    return VGGTrunk(cfg.width, cfg.fc_channels, cfg.fc6_dilation, cfg.dropout, norm=cfg.trunk_norm)


def trunk_signature(cfg) -> dict:
    """What a trunk file must match to load into ``cfg``'s network."""
    return dict(
        width=cfg.width, fc_channels=cfg.fc_channels, fc6_dilation=cfg.fc6_dilation,
        norm=cfg.trunk_norm,
    )  # fmt: skip


def _batches(data: PresenceImages, s: PretrainSettings, gen: torch.Generator):
    scales = torch.tensor(s.scales)
    for start in range(0, len(data), s.micro_batch):
        items = [data[i] for i in range(start, min(start + s.micro_batch, len(data)))]
        images = torch.stack([x for x, _ in items])
        labels = torch.stack([y for _, y in items])
        flip = torch.rand(len(items), generator=gen) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        scale = float(scales[torch.randint(len(scales), (1,), generator=gen)])
        if scale < 1:
            side = max(16, round(s.size * scale))
            images = F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False)
        yield images, labels


@torch.no_grad()
def presence_scores(net: PresenceNet, data: PresenceImages, batch: int = 32) -> dict[str, float]:
    """Mean average precision over the classes and exact-set accuracy of ``net`` on ``data``."""
    net.eval()
    logits, labels = [], []
    for start in range(0, len(data), batch):
        items = [data[i] for i in range(start, min(start + batch, len(data)))]
        logits.append(net(torch.stack([x for x, _ in items])))
        labels.append(torch.stack([y for _, y in items]))
    z, y = torch.cat(logits), torch.cat(labels)
    aps = []
    for k in range(y.shape[1]):
        if y[:, k].sum() == 0:
            continue
        order = torch.argsort(z[:, k], descending=True)
        hit = y[order, k]
        precision = hit.cumsum(0) / torch.arange(1, len(hit) + 1)
        aps.append(float((precision * hit).sum() / hit.sum()))
    exact = float(((z > 0).float() == y).all(dim=1).float().mean())
    return {"mAP": sum(aps) / max(len(aps), 1), "exact": exact}


def pretrain(
    cfg, settings: PretrainSettings | None = None, progress: bool = False, val_images: int = 128
) -> dict:
    """Train ``cfg``'s trunk on class presence (:class:`PresenceImages`); returns the file's dict.

    Returns ``{"format", "trunk": state_dict, "trunk_signature", "settings", "history": [{"samples",
    "loss"}], "val": {"mAP", "exact"} (and "val_before" at initialisation), "wall_s"}``.
    """
    s = settings or PretrainSettings()
    torch.manual_seed(s.seed)
    net = PresenceNet(trunk_of(cfg))
    data = PresenceImages(s.size, s.samples, s.seed, s.styles)
    val = PresenceImages(s.size, val_images, s.seed, s.styles, split="val")
    before = presence_scores(net, val) if val_images else {}
    decay = [p for n, p in net.named_parameters() if p.dim() > 1]
    rest = [p for n, p in net.named_parameters() if p.dim() <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": s.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=s.lr, momentum=s.momentum,
    )  # fmt: skip
    poly = poly_schedule(s.samples + 1)
    gen = torch.Generator().manual_seed(stable_seed(s.seed, "pretrain", "order"))
    history, seen, t0 = [], 0, time.perf_counter()
    bar = progress_bar(total=s.samples, desc="pretrain", enabled=progress)
    net.train()
    for images, labels in _batches(data, s, gen):
        warm = min(1.0, (seen + 1) / s.warmup) if s.warmup else 1.0
        for g in opt.param_groups:
            g["lr"] = s.lr * poly(seen) * warm
        loss = F.binary_cross_entropy_with_logits(net(images), labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"pretraining loss is {float(loss)} after {seen} samples; lower PretrainSettings.lr"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(images)
        history.append({"samples": seen, "loss": float(loss.detach())})
        bar.update(len(images))
    bar.close()
    return {
        "format": FORMAT,
        "trunk": {k: v.detach().clone() for k, v in net.trunk.state_dict().items()},
        "trunk_signature": trunk_signature(cfg),
        "settings": dataclasses.asdict(s),
        "history": history,
        "val_before": before,
        "val": presence_scores(net, val) if val_images else {},
        "wall_s": time.perf_counter() - t0,
    }


def cache_key(cfg, settings: PretrainSettings) -> str:
    """The folder name of a pretrained trunk: a hash of its settings and architecture."""
    blob = json.dumps(
        {"settings": dataclasses.asdict(settings), "trunk": trunk_signature(cfg)}, sort_keys=True
    )
    return "presence-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def pretrained_trunk(
    cfg,
    settings: PretrainSettings | None = None,
    root: str | os.PathLike | None = None,
    progress: bool = False,
    verbose: bool = True,
) -> Path:
    """The path of ``cfg``'s pretrained trunk file: trained by :func:`pretrain` once, then cached.

    Args:
        cfg: the network's config (only its trunk matters).
        settings: the stage's :class:`PretrainSettings` (default: the course's).
        root: the cache's folder (default ``outputs/pretrain``).
    """
    s = settings or PretrainSettings()
    base = Path(root) if root is not None else outputs_dir("pretrain")
    path = base / cache_key(cfg, s) / TRUNK_FILE
    if path.is_file():
        if verbose:
            print(f"[pretrain] loaded the cached trunk {path}")
        return path
    state = pretrain(cfg, s, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, obj in ((path.with_name(STATE_FILE), state["trunk"]), (path, state)):
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        torch.save(obj, tmp)
        os.replace(tmp, target)  # the record last: its presence means both are complete
    if verbose:
        print(
            f"[pretrain] {s.samples} images in {state['wall_s']:.0f} s; class presence on "
            f"held-out images: mAP {state['val_before'].get('mAP', math.nan):.3f} -> "
            f"{state['val'].get('mAP', math.nan):.3f}; saved {path}"
        )
    return path


def pretrained_init(
    cfg, image_size: int | None = None, train: bool = True, verbose: bool = True, root=None
) -> str | None:
    """The ``init`` of a run that starts from the shared pretrained trunk: ``"trunk:<path>"``.

    The stage's settings are :class:`PretrainSettings`' defaults (the course's) at the run's
    ``image_size`` (None: theirs); trained now if not cached and ``train``, else None where it is
    not cached (``train=False`` only looks up). The hook of ``series.resolve_init``.
    """
    s = PretrainSettings() if image_size is None else PretrainSettings(size=int(image_size))
    base = Path(root) if root is not None else outputs_dir("pretrain")
    if not train and not (base / cache_key(cfg, s) / TRUNK_FILE).is_file():
        return None
    path = pretrained_trunk(cfg, s, root=base, verbose=verbose)
    return f"trunk:{path.with_name(STATE_FILE)}"  # written with the record, before it


def load_trunk_file(path: str | os.PathLike) -> dict:
    """The dict a :func:`pretrained_trunk` file holds (checked to be one)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no pretrained trunk at {path}; make one with "
            f"ubernet_lite.training.pretrain.pretrained_trunk(cfg)"
        )
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pretrained trunk file ({FORMAT})")
    return state
