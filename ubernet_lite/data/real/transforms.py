"""Transforms that bring real images of any size and aspect ratio to square training crops.

The synthetic world renders square images at the size asked; real images come in every size, so
their training set resizes the shorter side (the paper's input normalisation: shortest side 621,
times the augmentation's random scale, in one resize from the original image), then crops. The
joint geometry is that of :mod:`ubernet_lite.data.transforms`.
"""

from __future__ import annotations

from ..transforms import (
    Compose,
    JointTransform,
    RandomScale,
    _uniform,
    crop,
    resize,
    train_transforms,
)


def shortest_side_shape(height: int, width: int, side: int) -> tuple[int, int]:
    """``(h, w)`` of an ``height x width`` image resized so that its shorter side is ``side``,
    aspect ratio kept (each side at least 1 pixel)."""
    s = side / min(height, width)
    return max(1, round(height * s)), max(1, round(width * s))


class ResizeShortestSide:
    """Resize a sample (every label with it, :func:`ubernet_lite.data.transforms.resize`) so
    that its shorter side is ``side`` pixels, keeping the aspect ratio (the paper's input
    normalisation: shortest side 621)."""

    def __init__(self, side: int):
        if int(side) < 1:
            raise ValueError(f"ResizeShortestSide: side must be >= 1, got {side}")
        self.side = int(side)

    def __call__(self, sample: dict, generator=None) -> dict:
        H, W = sample["image"].shape[-2:]
        return resize(sample, shortest_side_shape(H, W, self.side))

    def __repr__(self) -> str:
        return f"ResizeShortestSide(side={self.side})"


class RandomScaleShortestSide(JointTransform):
    """:class:`ResizeShortestSide` ``(side)`` followed by :class:`~ubernet_lite.data.RandomScale`
    ``(scale)``, as one resize of the original image: the output has the two-step version's shape
    (the shortest-side shape, then each side times a factor drawn uniformly from ``scale``, from
    the generator as RandomScale draws it), but every key is resampled once
    (:func:`~ubernet_lite.data.transforms.resize`: image bilinear, label maps nearest, edge maps
    max-pooled when shrinking, boxes scaled), so a 621-px crop does not interpolate twice."""

    def __init__(self, side: int, scale: tuple[float, float] = (0.75, 1.25)):
        if int(side) < 1:
            raise ValueError(f"RandomScaleShortestSide: side must be >= 1, got {side}")
        self.side, self.scale = int(side), RandomScale(scale).scale

    def __call__(self, sample: dict, generator=None) -> dict:
        H, W = sample["image"].shape[-2:]
        h, w = shortest_side_shape(H, W, self.side)
        s = _uniform(generator, *self.scale)
        return resize(sample, (max(1, round(h * s)), max(1, round(w * s))))


class CenterCrop:
    """The central ``size x size`` window of a sample (padded with 0 / 255 where it is smaller,
    :func:`ubernet_lite.data.transforms.crop`)."""

    def __init__(self, size: int):
        if int(size) < 1:
            raise ValueError(f"CenterCrop: size must be >= 1, got {size}")
        self.size = int(size)

    def __call__(self, sample: dict, generator=None) -> dict:
        H, W = sample["image"].shape[-2:]
        return crop(sample, (H - self.size) // 2, (W - self.size) // 2, self.size, self.size)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


def real_transforms(size: int, augment: bool = True):
    """Training transforms for real images of any size and aspect ratio -> ``size x size``.

    Without ``augment``: the shorter side resized to ``size``, then the central ``size x size``
    crop. With it: :func:`~ubernet_lite.data.transforms.train_transforms` on the image resized so
    that its shorter side is ``size``, where that resize and the augmentation's random scale (in
    [0.75, 1.25]) are one (:class:`RandomScaleShortestSide`); then a random ``size`` crop padded
    with 0 / ignore 255 where the image is smaller, a flip, colour jitter.
    """
    if not augment:
        return Compose([ResizeShortestSide(size), CenterCrop(size)])
    scale, *rest = train_transforms(size=size).transforms
    if not isinstance(scale, RandomScale):  # train_transforms starts with its random scale
        raise TypeError("real_transforms: expected train_transforms to start with RandomScale")
    return Compose([RandomScaleShortestSide(size, scale.scale), *rest])
