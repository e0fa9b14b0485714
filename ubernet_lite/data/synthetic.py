"""``SynthWorld``: the embedded synthetic world with ground truth for all seven tasks.

Each sample is a procedurally rendered 3-D scene, ray-cast from analytic shapes
(:mod:`~ubernet_lite.data.synth_scene` samples the scene, :mod:`~ubernet_lite.data.synth_render`
casts the rays): a floor and walls (planes) and objects of six classes,
:data:`ubernet_lite.tasks.SYNTH_CLASSES` = ball, box, can, cone, table, person. Colours and textures
(plain, stripes, checks) are random per object, so a class is recognisable by its shape, not its
colour; texture edges are colour edges only and never boundaries. A person is articulated from a
head, a torso, upper and lower arms and upper and lower legs: its pixels carry the part labels
1..6 of :data:`ubernet_lite.tasks.PART_NAMES`.

A sample (``docs/internals.md``, "A sample"), for an image of ``H = W = size`` pixels and ``N``
visible objects (``K = 6`` classes):

| key | dtype, shape | how it is made |
| --- | --- | --- |
| ``image`` | float32 [3, H, W] in [0, 1] | texture albedo x Lambertian shading (one directional light) |
| ``normals`` | float32 [3, H, W] | analytic unit normals, camera coordinates (x right, y down, z towards the camera), every pixel |
| ``semantic`` | int64 [H, W] | 0 background (floor, walls), 1..K; no 255 (every pixel is labelled) |
| ``parts`` | int64 [H, W] | 1..6 on person pixels, 0 everywhere else |
| ``instances`` | int64 [H, W] | 0 background, 1..N (``boxes[i - 1]`` is instance ``i``) |
| ``boundaries`` | uint8 [H, W] | see below |
| ``semantic_boundaries`` | uint8 [K, H, W] | see below; a subset of ``boundaries`` |
| ``saliency`` | uint8 [H, W] | the mask of the dominant object: the instance with the most visible pixels |
| ``boxes`` | float32 [N, 4] | xyxy of the visible mask: ``x1 = min col``, ``y1 = min row``, ``x2 = max col + 1``, ``y2 = max row + 1`` (pixel edges: the box covers pixels ``x1 <= x < x2``) |
| ``labels`` | int64 [N] | 1..K |
| ``difficult`` | bool [N] | visible pixels < :data:`DIFFICULT_VISIBLE_SHARE` of the object's unoccluded projection (truncation by the border counts: the projection is measured past it) |
| ``has_label`` | dict | every target True |
| ``meta`` | dict | ``dataset="synthetic"``, ``split``, ``index``, ``style`` |

**Boundaries.** Every pixel knows its *surface*: a plane (floor, each wall) or one face of a
primitive (the single curved face of a ball or a limb; the six faces of a box; side and caps of a
can; side and base of a cone). Each table leg and each body part is its own primitive. Between two
4-neighbours on different surfaces, the pixel nearer to the camera (the occluding side) is marked:
so the map holds occlusion contours, object and part outlines and creases (between floor and walls
and between the faces of a box), one pixel thick, as in BSD. ``semantic_boundaries[k - 1]`` marks
the same pixel for a pair whose *instances* differ, for the class ``k`` of either side (an object's
outline, SBD-like); face creases and part outlines are not semantic boundaries.

**Difficult.** The unoccluded projection of an object is counted by casting its rays on the image
extended by half its size past every border (``synth_render.EXTEND``), so heavy truncation and
heavy occlusion both lower the visible share.

**Styles** (the ``style`` argument; views of the same world for the union of data sets):
``"scene"`` an open floor, a far wall (sometimes a side wall) and 2-6 objects (VOC-, BSD-like);
``"indoor"`` a room corner, floor and three walls, more furniture (NYU-like normals);
``"msra"`` one large, roughly centred object on a plain floor and backdrop (MSRA10K-like).

**Determinism.** A sample is a pure function of ``(seed, split, index, size, style)``: its random
stream (``random.Random``) is seeded with a BLAKE2 hash of ``(seed, split, style, index)`` (so
splits and styles draw disjoint streams), scene parameters are rounded to float32, and the renderer
uses elementwise float32 IEEE arithmetic only (see :mod:`~ubernet_lite.data.synth_render`). The
scene does not depend on ``size``: the same scene renders at any resolution (unless no object would
be visible at that size; then the next scene of the stream is drawn).
"""

from __future__ import annotations

import hashlib
import operator
import random

import numpy as np
import torch
from torch.utils.data import Dataset

from ..tasks import SYNTH_CLASSES, TARGETS
from .synth_render import Buffers, render_buffers
from .synth_scene import STYLES, Scene, sample_scene

#: The splits; each draws from its own random stream, so they are disjoint.
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Default number of samples per split (the world is infinite; ``length`` picks how many to use).
DEFAULT_LENGTHS = {"train": 10000, "val": 500, "test": 500}
#: Smallest image size in pixels.
MIN_SIZE = 64
#: An instance is ``difficult`` when less than this share of its unoccluded projection is visible.
DIFFICULT_VISIBLE_SHARE = 0.25
#: Number of object classes K.
NUM_CLASSES = len(SYNTH_CLASSES)


def _check(split: str, size, style: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(
            f"SynthWorld renders square images of {MIN_SIZE} px and up; got size={size!r}"
        )
    return int(size)


def sample_rng(seed: int, split: str, index: int, style: str = "scene") -> random.Random:
    """The random stream of one sample: a ``random.Random`` seeded with a 128-bit BLAKE2 hash of
    (seed, split, style, index) (Python guarantees its ``random()`` sequence for an integer seed)."""
    key = f"ubernet_lite.SynthWorld|{int(seed)}|{split}|{style}|{int(index)}".encode()
    digest = hashlib.blake2b(key, digest_size=16).digest()
    return random.Random(int.from_bytes(digest, "little"))


def render_scene(
    seed: int, split: str, index: int, size: int = 128, style: str = "scene"
) -> tuple[Scene, Buffers]:
    """The scene of sample ``index`` and its ray-cast buffers (with at least one visible object)."""
    size = _check(split, size, style)
    rng = sample_rng(seed, split, index, style)
    for _ in range(100):
        scene = sample_scene(rng, style)
        buf = render_buffers(scene, size)
        if buf.instance.any():
            return scene, buf
    raise RuntimeError(
        f"no visible object in 100 scenes (seed={seed}, split={split}, index={index})"
    )


def boundary_maps(
    surface: np.ndarray, depth: np.ndarray, instances: np.ndarray, semantic: np.ndarray, K: int
) -> tuple[np.ndarray, np.ndarray]:
    """Boundaries [H, W] and semantic boundaries [K, H, W] (uint8) from per-pixel labels.

    Between 4-neighbours on different ``surface`` ids the nearer pixel (smaller ``depth``, the
    occluder) is marked; for pairs whose ``instances`` differ it is also marked in the channels
    of both sides' classes (``semantic`` 1..K; 0 = background is dropped).
    """
    H, W = surface.shape
    bnd = np.zeros((H, W), dtype=np.uint8)
    sem = np.zeros((K + 1, H, W), dtype=np.uint8)
    for a, b, dy, dx in (
        ((slice(None, -1), slice(None)), (slice(1, None), slice(None)), 1, 0),
        ((slice(None), slice(None, -1)), (slice(None), slice(1, None)), 0, 1),
    ):
        diff = surface[a] != surface[b]
        second_nearer = depth[b] < depth[a]
        mark_b = diff & second_nearer
        bnd[b] |= mark_b
        bnd[a] |= diff ^ mark_b
        ys, xs = np.nonzero(instances[a] != instances[b])
        if ys.size == 0:
            continue
        ys2, xs2 = ys + dy, xs + dx
        second = second_nearer[ys, xs]
        py = np.where(second, ys2, ys)  # the marked pixel of the pair
        px = np.where(second, xs2, xs)
        sem[semantic[ys, xs], py, px] = 1  # class of the first pixel of the pair
        sem[semantic[ys2, xs2], py, px] = 1  # class of the second
    return bnd, sem[1:]


def _boxes(inst: np.ndarray, n: int) -> np.ndarray:
    """[n, 4] float32 xyxy extents (max index + 1) of instances 1..n of ``inst`` [H, W]."""
    H, W = inst.shape
    key = inst.astype(np.intp) * W
    cols = np.bincount((key + np.arange(W)).ravel(), minlength=(n + 1) * W).reshape(n + 1, W)[1:]
    key = inst.astype(np.intp) * H
    rows = np.bincount((key + np.arange(H)[:, None]).ravel(), minlength=(n + 1) * H).reshape(
        n + 1, H
    )[1:]
    cols, rows = cols > 0, rows > 0
    x1 = cols.argmax(1)
    x2 = W - cols[:, ::-1].argmax(1)
    y1 = rows.argmax(1)
    y2 = H - rows[:, ::-1].argmax(1)
    return np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)


def render_sample(seed: int, split: str, index: int, size: int = 128, style: str = "scene") -> dict:
    """Sample ``index`` of the world: a dict of tensors with all seven targets (module docstring)."""
    scene, buf = render_scene(seed, split, index, size, style)
    K = NUM_CLASSES

    # instances: visible objects only, renumbered 1..N in scene order
    n_obj = len(scene.objects)
    visible = np.bincount(buf.instance.ravel(), minlength=n_obj + 1)[1:]
    keep = np.flatnonzero(visible > 0)
    N = keep.size
    if N == n_obj:
        inst8 = buf.instance
    else:
        lut = np.zeros(n_obj + 1, dtype=np.uint8)
        lut[keep + 1] = np.arange(1, N + 1)
        inst8 = lut[buf.instance]

    boundaries, sem_b = boundary_maps(buf.surface, buf.depth, inst8, buf.semantic, K)

    classes = np.array([scene.objects[i].cls for i in keep.tolist()], dtype=np.int64)
    vis = visible[keep]
    full = buf.full_area[keep]
    difficult = vis < DIFFICULT_VISIBLE_SHARE * np.maximum(full, 1)
    dominant = int(np.argmax(vis)) + 1  # ties: the first in scene order
    saliency = (inst8 == dominant).view(np.uint8)
    boxes = _boxes(inst8, N)

    return {
        "image": torch.from_numpy(buf.image),
        "normals": torch.from_numpy(buf.normal),
        "semantic": torch.from_numpy(buf.semantic.astype(np.int64)),
        "parts": torch.from_numpy(buf.part.astype(np.int64)),
        "instances": torch.from_numpy(inst8.astype(np.int64)),
        "boundaries": torch.from_numpy(boundaries),
        "semantic_boundaries": torch.from_numpy(sem_b),
        "saliency": torch.from_numpy(saliency),
        "boxes": torch.from_numpy(boxes),
        "labels": torch.from_numpy(classes),
        "difficult": torch.from_numpy(difficult),
        "has_label": {t: True for t in TARGETS},
        "meta": {"dataset": "synthetic", "split": split, "index": int(index), "style": style},
    }


class SynthWorld(Dataset):
    """The synthetic world as a map-style torch ``Dataset`` (all seven targets per sample).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint random streams).
        size: image side in pixels, from 64 up (square images, default 128).
        seed: world seed; ``(seed, split, index, size, style)`` fixes a sample bit for bit.
        length: number of samples (default :data:`DEFAULT_LENGTHS` of the split).
        style: ``"scene"`` (open floor, far wall, 2-6 objects: VOC/BSD-like), ``"indoor"`` (room
            corner, NYU-like) or ``"msra"`` (one large central object on a plain backdrop).

    ``world[i]`` is :func:`render_sample` ``(seed, split, i, size, style)``; see the module
    docstring for the keys, shapes and conventions.
    """

    classes = SYNTH_CLASSES
    num_classes = NUM_CLASSES

    def __init__(
        self,
        split: str = "train",
        size: int = 128,
        seed: int = 0,
        length: int | None = None,
        style: str = "scene",
    ):
        self.size = _check(split, size, style)
        self.split, self.style, self.seed = split, style, int(seed)
        length = DEFAULT_LENGTHS[split] if length is None else length
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
            raise ValueError(f"SynthWorld length must be a non-negative integer, got {length!r}")
        self.length = int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index) -> dict:
        try:
            i = operator.index(index)
        except TypeError:
            raise TypeError(
                f"SynthWorld index must be an integer, got {type(index).__name__}"
            ) from None
        if i < 0:
            i += self.length
        if not 0 <= i < self.length:
            raise IndexError(f"SynthWorld index {index} out of range for length {self.length}")
        return render_sample(self.seed, self.split, i, self.size, self.style)

    def __repr__(self) -> str:
        return (
            f"SynthWorld(split={self.split!r}, size={self.size}, seed={self.seed}, "
            f"length={self.length}, style={self.style!r})"
        )
