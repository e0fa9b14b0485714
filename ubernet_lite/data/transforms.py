"""Joint transforms of a sample: the image and every label it carries move together.

A sample is the dict of docs/design.md; a transform returns a new dict and leaves keys it does
not know (``has_label``, ``meta``) as they are. Labels a sample lacks are simply absent, so every
transform only touches the keys that are there.

Three pure functions do the geometry, and random transforms draw their parameters from a
``torch.Generator`` passed in (``transform(sample, generator)``), so augmentation is reproducible:

- :func:`resize`: image bilinear (antialiased when shrinking); label maps (``semantic``, ``parts``,
  ``saliency``, ``instances``) nearest neighbour; ``normals`` bilinear and then renormalised to
  unit length (zero, i.e. invalid, vectors stay zero); ``boundaries`` and
  ``semantic_boundaries`` by adaptive max pooling (each output pixel is the max over the input
  pixels its footprint touches) when shrinking, so that contours stay connected and one pixel
  thin where nearest neighbour would break them, and nearest neighbour when enlarging (contours
  then thicken with the scale: at most 2 px below a factor 2); boxes scaled.
- :func:`crop`: a window that may extend past the image; there the image is 0, label maps 255
  (ignore), normals the zero vector, ``instances`` 0. Boxes are shifted and clipped to the window;
  boxes left with no area are removed with their labels/difficult flags.

When a sample carries ``instances`` (the synthetic world), :func:`resize` and :func:`crop` instead
recompute every box as the extent of its transformed instance mask (a clipped box of a non-convex
or occluded object can be larger than what is left of it), drop the instances with no pixels left,
and renumber ``instances`` so that instance ``k`` is still box ``k - 1``.
- :func:`hflip`: everything mirrored left-right; the x component of the normals is negated
  (camera coordinates, x right); boxes ``x0, x1 -> W - x1, W - x0``. Part labels have no
  left/right classes, so they need no swapping.

Boxes are in continuous pixel coordinates: a box ``[x0, y0, x1, y1]`` covers the pixels
``x0 <= x < x1``, so the box of an instance mask is ``[min x, min y, max x + 1, max y + 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from .union import stable_seed

IGNORE = 255
#: Integer label maps [H, W] resampled by nearest neighbour, and their fill value when padded.
LABEL_MAPS = {"semantic": IGNORE, "parts": IGNORE, "saliency": IGNORE, "instances": 0}
#: Thin binary maps resampled by adaptive max pooling ([H, W] and [K, H, W]).
EDGE_MAPS = ("boundaries", "semantic_boundaries")


def _image_size(sample: dict) -> tuple[int, int]:
    img = sample.get("image")
    if not isinstance(img, torch.Tensor) or img.dim() != 3 or img.shape[0] != 3:
        got = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
        raise ValueError(f"transforms: sample['image'] must be a tensor [3, H, W], got {got}")
    return int(img.shape[-2]), int(img.shape[-1])


def _uniform(generator: torch.Generator | None, lo: float = 0.0, hi: float = 1.0) -> float:
    u = torch.rand((), generator=generator, dtype=torch.float64).item()
    return lo + (hi - lo) * u


def normalize_normals(n: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Unit vectors along dim -3 ([..., 3, H, W]); vectors shorter than ``eps`` become zero."""
    norm = (n * n).sum(dim=-3, keepdim=True).sqrt()  # (faster than Tensor.norm over channels)
    return torch.where(norm > eps, n / norm.clamp_min(eps), torch.zeros_like(n))


# --------------------------------------------------------------------------------------------
# The geometry (pure functions)
# --------------------------------------------------------------------------------------------


def resize(sample: dict, size: tuple[int, int]) -> dict:
    """Resample every spatial key of ``sample`` to ``size = (h, w)`` (see the module docstring)."""
    H, W = _image_size(sample)
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"resize: the target size must be at least 1 x 1, got {size}")
    out = dict(sample)
    if (h, w) == (H, W):
        return out
    shrink = h * w < H * W
    img = sample["image"][None].float()
    out["image"] = F.interpolate(
        img, (h, w), mode="bilinear", align_corners=False, antialias=shrink
    )[0].clamp(0, 1)
    for key in LABEL_MAPS:
        if key in sample:
            x = sample[key][None, None].float()
            out[key] = F.interpolate(x, (h, w), mode="nearest-exact")[0, 0].to(sample[key].dtype)
    for key in EDGE_MAPS:
        if key in sample:
            x = sample[key].float()
            x = x[None, None] if x.dim() == 2 else x[None]
            if shrink:
                y = F.adaptive_max_pool2d(x, (h, w))[0]
            else:
                y = F.interpolate(x, (h, w), mode="nearest-exact")[0]
            out[key] = (y[0] if sample[key].dim() == 2 else y).to(sample[key].dtype)
    if "normals" in sample:
        n = sample["normals"][None].float()
        valid = ((n * n).sum(dim=1, keepdim=True) > 1e-12).float()
        valid = F.interpolate(valid, (h, w), mode="nearest-exact")
        n = F.interpolate(n, (h, w), mode="bilinear", align_corners=False)
        out["normals"] = (normalize_normals(n) * valid)[0]
    if "boxes" in sample:
        if "instances" in sample:
            return _boxes_from_instances(out)
        scale = torch.tensor([w / W, h / H, w / W, h / H], dtype=torch.float32)
        out["boxes"] = sample["boxes"].float() * scale
    return out


def _paste(x: torch.Tensor, top: int, left: int, h: int, w: int, fill) -> torch.Tensor:
    """The window [top, top + h) x [left, left + w) of x [..., H, W], ``fill`` outside x."""
    H, W = x.shape[-2:]
    out = torch.full((*x.shape[:-2], h, w), fill, dtype=x.dtype)
    y0, y1 = max(top, 0), min(top + h, H)
    x0, x1 = max(left, 0), min(left + w, W)
    if y1 > y0 and x1 > x0:
        out[..., y0 - top : y1 - top, x0 - left : x1 - left] = x[..., y0:y1, x0:x1]
    return out


def _boxes_from_instances(out: dict) -> dict:
    """Boxes = extents of the (transformed) instance masks; instances with no pixels left are
    dropped with their labels/difficult flags, and the rest renumbered 1..N' (in place)."""
    inst, n = out["instances"], len(out["boxes"])
    H, W = inst.shape
    ids = inst.clamp(0, n)
    occ_x = torch.zeros(n + 1, W, dtype=torch.bool)
    occ_y = torch.zeros(n + 1, H, dtype=torch.bool)
    occ_x[ids, torch.arange(W).expand(H, W)] = True
    occ_y[ids, torch.arange(H)[:, None].expand(H, W)] = True
    keep = occ_x[1:].any(1)
    boxes = torch.zeros(n, 4, dtype=torch.float32)
    for k in torch.nonzero(keep).flatten().tolist():
        cols, rows = torch.nonzero(occ_x[k + 1]).flatten(), torch.nonzero(occ_y[k + 1]).flatten()
        boxes[k] = torch.stack([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]).float()
    out["boxes"] = boxes[keep]
    for key in ("labels", "difficult"):
        if key in out:
            out[key] = out[key][keep]
    if not bool(keep.all()):
        lut = torch.zeros(n + 1, dtype=inst.dtype)
        lut[1:][keep] = torch.arange(1, int(keep.sum()) + 1, dtype=inst.dtype)
        out["instances"] = lut[ids]
    return out


def crop(sample: dict, top: int, left: int, height: int, width: int) -> dict:
    """The window ``[top, top + height) x [left, left + width)`` of every spatial key.

    The window may extend past the image (negative ``top``/``left`` or beyond H, W): there the
    image is 0, label and edge maps 255, normals 0, instances 0. Boxes are shifted and clipped;
    boxes without area left are dropped with their labels, difficult flags and instances.
    """
    _image_size(sample)
    if height < 1 or width < 1:
        raise ValueError(f"crop: the window must be at least 1 x 1, got {height} x {width}")
    out = dict(sample)
    args = (int(top), int(left), int(height), int(width))
    out["image"] = _paste(sample["image"], *args, 0.0)
    if "normals" in sample:
        out["normals"] = _paste(sample["normals"], *args, 0.0)
    for key, fill in LABEL_MAPS.items():
        if key in sample:
            out[key] = _paste(sample[key], *args, fill)
    for key in EDGE_MAPS:
        if key in sample:
            out[key] = _paste(sample[key], *args, IGNORE)
    if "boxes" in sample:
        if "instances" in sample:
            return _boxes_from_instances(out)
        b = sample["boxes"].float() - torch.tensor([left, top, left, top], dtype=torch.float32)
        b[:, 0::2] = b[:, 0::2].clamp(0, width)
        b[:, 1::2] = b[:, 1::2].clamp(0, height)
        keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        out["boxes"] = b[keep]
        for key in ("labels", "difficult"):
            if key in sample:
                out[key] = sample[key][keep]
    return out


def hflip(sample: dict) -> dict:
    """Mirror every spatial key left-right; negate the normals' x; mirror the boxes."""
    _, W = _image_size(sample)
    out = dict(sample)
    out["image"] = sample["image"].flip(-1)
    for key in (*LABEL_MAPS, *EDGE_MAPS):
        if key in sample:
            out[key] = sample[key].flip(-1)
    if "normals" in sample:
        n = sample["normals"].flip(-1).clone()
        n[0] = -n[0]  # x right -> x left in the mirrored image
        out["normals"] = n
    if "boxes" in sample:
        b = sample["boxes"].float()
        out["boxes"] = torch.stack([W - b[:, 2], b[:, 1], W - b[:, 0], b[:, 3]], dim=1)
    return out


# --------------------------------------------------------------------------------------------
# Random transforms: parameters drawn from a generator passed in
# --------------------------------------------------------------------------------------------


class JointTransform:
    """Base class: ``t(sample, generator=None)`` -> a new sample; ``None`` uses torch's global RNG."""

    def __call__(self, sample: dict, generator: torch.Generator | None = None) -> dict:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class RandomScale(JointTransform):
    """Resize by a factor drawn uniformly from ``scale = (lo, hi)`` (see :func:`resize`)."""

    def __init__(self, scale: tuple[float, float] = (0.75, 1.25)):
        lo, hi = (float(s) for s in scale)
        if not 0 < lo <= hi:
            raise ValueError(f"RandomScale: expected 0 < lo <= hi, got scale={scale}")
        self.scale = (lo, hi)

    def __call__(self, sample, generator=None):
        H, W = _image_size(sample)
        s = _uniform(generator, *self.scale)
        return resize(sample, (max(1, round(H * s)), max(1, round(W * s))))


class RandomCrop(JointTransform):
    """A ``size`` window at a uniformly drawn position; padded (see :func:`crop`) where the image
    is smaller than the window, with the image placed at a random offset inside it."""

    def __init__(self, size: int | tuple[int, int]):
        self.size = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"RandomCrop: size must be a positive int or (h, w), got {size}")

    def __call__(self, sample, generator=None):
        H, W = _image_size(sample)
        h, w = self.size
        top = int(torch.randint(min(0, H - h), max(0, H - h) + 1, (), generator=generator))
        left = int(torch.randint(min(0, W - w), max(0, W - w) + 1, (), generator=generator))
        return crop(sample, top, left, h, w)


class RandomHorizontalFlip(JointTransform):
    """:func:`hflip` with probability ``p``."""

    def __init__(self, p: float = 0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, sample, generator=None):
        return hflip(sample) if _uniform(generator) < self.p else dict(sample)


class ColorJitter(JointTransform):
    """Photometric jitter of the image only (labels untouched): brightness, contrast and
    saturation factors drawn from ``[1 - a, 1 + a]``, a hue shift from ``[-hue, hue]``."""

    def __init__(self, brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02):
        if min(brightness, contrast, saturation, hue) < 0 or hue > 0.5:
            raise ValueError("ColorJitter: amounts must be >= 0 (hue <= 0.5)")
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.saturation, self.hue = float(saturation), float(hue)

    def __call__(self, sample, generator=None):
        _image_size(sample)
        b = _uniform(generator, 1 - self.brightness, 1 + self.brightness)
        c = _uniform(generator, 1 - self.contrast, 1 + self.contrast)
        s = _uniform(generator, 1 - self.saturation, 1 + self.saturation)
        h = _uniform(generator, -self.hue, self.hue)
        img = sample["image"]
        img = TF.adjust_brightness(img, b)
        img = TF.adjust_contrast(img, c)
        img = TF.adjust_saturation(img, s)
        if self.hue > 0:
            img = TF.adjust_hue(img, h)
        out = dict(sample)
        out["image"] = img.clamp(0, 1)
        return out


class Compose(JointTransform):
    """Apply ``transforms`` in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[JointTransform]):
        self.transforms = list(transforms)

    def __call__(self, sample, generator=None):
        for t in self.transforms:
            sample = t(sample, generator)
        return sample

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(t) for t in self.transforms)
        return f"Compose([\n  {inner}\n])"


def train_transforms(
    size: int = 128,
    scale: tuple[float, float] = (0.75, 1.25),
    flip: float = 0.5,
    jitter: bool = True,
) -> Compose:
    """The training augmentation: random scale, a ``size`` crop (padded), a flip, colour jitter."""
    ts: list[JointTransform] = [RandomScale(scale), RandomCrop(size), RandomHorizontalFlip(flip)]
    if jitter:
        ts.append(ColorJitter())
    return Compose(ts)


class TransformedDataset(Dataset):
    """``dataset`` with a joint transform applied; item ``i`` of epoch ``e`` draws its random
    parameters from a generator seeded with ``(seed, e, i)``: reproducible, and different each
    epoch after :meth:`set_epoch`."""

    def __init__(self, dataset, transform: JointTransform, seed: int = 0):
        self.dataset, self.transform, self.seed, self.epoch = dataset, transform, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(stable_seed(self.seed, self.epoch, int(i), "transform"))
        return self.transform(self.dataset[i], g)
