"""``SynthWorld``: the embedded synthetic world with ground truth for all seven tasks.

Each sample is a procedurally rendered 3-D scene, ray-cast from analytic shapes
(:mod:`~ubernet_lite.data.synth_scene` samples the scene, :mod:`~ubernet_lite.data.synth_render`
casts the rays): a floor and walls (planes) and objects of six classes,
:data:`ubernet_lite.tasks.SYNTH_CLASSES` = ball, box, can, cone, table, person. Colours and textures
(plain, stripes, checks) are random per object, so a class is recognisable by its shape, not its
colour; texture edges are colour edges only and never boundaries. A person is articulated from a
head, a torso, upper and lower arms and upper and lower legs: its pixels carry the part labels
1..6 of :data:`ubernet_lite.tasks.PART_NAMES`.

A sample (``docs/design.md``, "A sample"), for an image of ``H = W = size`` pixels and ``N``
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
        if buf.surface_pixels.any():  # pixels of object surfaces (the planes' are not counted)
            return scene, buf
    raise RuntimeError(
        f"no visible object in 100 scenes (seed={seed}, split={split}, index={index})"
    )


def boundary_maps(
    surface: np.ndarray, depth: np.ndarray, instances: np.ndarray, semantic: np.ndarray, K: int
) -> tuple[np.ndarray, np.ndarray]:
    """Boundaries [H, W] and semantic boundaries [K, H, W] (uint8) from per-pixel labels.

    Between 4-neighbours on different ``surface`` ids the nearer pixel (smaller ``depth``, the
    occluder; the first of the pair on a tie) is marked; for pairs whose ``instances`` differ it is
    also marked in the channels of both sides' classes (``semantic`` 1..K; 0 = background is
    dropped).

    Sparse: one full-image comparison per direction finds the pairs on different surfaces (a few
    percent of the pixels); depths, instances and classes are then read at those pairs only.
    """
    H, W = surface.shape
    HW = H * W
    s = surface.ravel()
    bnd = np.zeros(HW, dtype=np.uint8)
    sem = np.zeros((K + 1) * HW, dtype=np.uint8)
    vertical = np.flatnonzero(s[:-W] != s[W:])  # pairs (p, p + W)
    horizontal = s[:-1] != s[1:]  # pairs (p, p + 1)
    horizontal[W - 1 :: W] = False  # (last column, first column of the next row): not a pair
    pa = np.concatenate((vertical, np.flatnonzero(horizontal)))
    if pa.size:
        pb = pa + W
        pb[vertical.size :] -= W - 1
        second = np.take(depth, pb) < np.take(depth, pa)
        marked = np.where(second, pb, pa)  # the nearer pixel of each pair
        bnd[marked] = 1
        other = np.take(instances, pa) != np.take(instances, pb)
        marked = marked[other]
        sem[np.take(semantic, pa[other]) * HW + marked] = 1  # class of the first pixel of a pair
        sem[np.take(semantic, pb[other]) * HW + marked] = 1  # class of the second
    return bnd.reshape(H, W), sem.reshape(K + 1, H, W)[1:]


def _boxes(inst: np.ndarray, n: int, bits: np.ndarray | None = None) -> np.ndarray:
    """[n, 4] float32 xyxy extents (max index + 1) of instances 1..n of ``inst`` [H, W] (int).

    Instance ``i`` sets bit ``i - 1`` of a per-pixel word (``bits`` [H, W], if given, holds these
    words already); OR-reducing the words along rows and along columns gives every instance's
    occupied rows and columns in two passes."""
    H, W = inst.shape
    if n == 0:
        return np.zeros((0, 4), dtype=np.float32)
    if n > 62:  # more instances than bits in a word: one bincount of (instance, column) pairs
        key = inst.astype(np.intp)
        cols = np.bincount((key * W + np.arange(W)).ravel(), minlength=(n + 1) * W)
        rows = np.bincount((key * H + np.arange(H)[:, None]).ravel(), minlength=(n + 1) * H)
        cols = cols.reshape(n + 1, W)[1:] > 0
        rows = rows.reshape(n + 1, H)[1:] > 0
    else:
        if bits is None:
            bits = np.where(inst > 0, np.left_shift(1, np.maximum(inst, 1) - 1, dtype=np.int64), 0)
        shift = np.arange(n, dtype=np.int64)[:, None]
        col_words = np.bitwise_or.reduce(bits, axis=0)  # [W]
        row_words = np.bitwise_or.reduce(bits, axis=1)  # [H]
        if H == W:  # square: columns and rows of all instances as one [2, n, W] array
            occ = (np.stack((col_words, row_words))[:, None, :] >> shift) & 1
            lo, hi = occ.argmax(2), W - occ[:, :, ::-1].argmax(2)  # [2, n] first, last + 1
            return np.stack((lo[0], lo[1], hi[0], hi[1]), axis=1).astype(np.float32)
        cols = (col_words >> shift) & 1 > 0  # [n, W]
        rows = (row_words >> shift) & 1 > 0  # [n, H]
    x1 = cols.argmax(1)
    x2 = W - cols[:, ::-1].argmax(1)
    y1 = rows.argmax(1)
    y2 = H - rows[:, ::-1].argmax(1)
    return np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)


def render_sample(seed: int, split: str, index: int, size: int = 128, style: str = "scene") -> dict:
    """Sample ``index`` of the world: a dict of tensors with all seven targets (module docstring)."""
    scene, buf = render_scene(seed, split, index, size, style)
    sample = _targets(scene, buf)
    sample["meta"] = {"dataset": "synthetic", "split": split, "index": int(index), "style": style}
    return sample


def _targets(scene: Scene, buf: Buffers) -> dict:
    """The sample dict of a rendered scene: image, normals and every target, as tensors."""
    K = NUM_CLASSES
    surf = buf.surface  # [H, W] surface ids; every label is a per-surface lookup
    code = scene.surface_code.astype(np.int64)  # [S] class << 24 | inst << 16 | part << 12 | surf

    # instances: visible objects only, renumbered 1..N in scene order
    n_obj = len(scene.objects)
    inst_of = (code >> 16) & 0xFF  # [S] object index + 1 of each surface (0: planes)
    per_surface = buf.surface_pixels  # [S] object pixels per surface (0 for planes)
    visible = np.bincount(inst_of, weights=per_surface, minlength=n_obj + 1)[1:].astype(np.int64)
    keep = np.flatnonzero(visible > 0)  # visible pixels of object i - 1 > 0
    N = keep.size
    renumber = np.zeros(n_obj + 1, dtype=np.int64)
    renumber[keep + 1] = np.arange(1, N + 1)
    # one lookup of a per-surface word: class << 56 | instance << 48 | bit << 8 | part, where
    # bit = 1 << (instance - 1) marks the instance for the boxes (N <= 32)
    word = ((code >> 24) << 56) | (renumber[inst_of] << 48) | ((code >> 12) & 0xF)
    if N <= 32:
        bit = np.zeros(n_obj + 1, dtype=np.int64)
        bit[keep + 1] = np.left_shift(1, np.arange(N, dtype=np.int64))
        word |= bit[inst_of] << 8
    packed = np.take(word, surf)  # [H, W] int64
    semantic = packed >> 56
    instances = packed >> 48
    instances &= 0xFF
    parts = packed & 0xF
    if N <= 32:
        packed >>= 8
        packed &= 0xFFFFFFFF  # the instance bits
    boundaries, sem_b = boundary_maps(surf, buf.depth, instances, semantic, K)

    classes = np.array([scene.objects[i].cls for i in keep.tolist()], dtype=np.int64)
    vis = visible[keep]
    full = buf.full_area[keep]
    difficult = vis < DIFFICULT_VISIBLE_SHARE * np.maximum(full, 1)
    dominant = int(np.argmax(vis)) + 1  # ties: the first in scene order
    saliency = (instances == dominant).view(np.uint8)
    boxes = _boxes(instances, N, packed if N <= 32 else None)

    return {
        "image": torch.from_numpy(buf.image),
        "normals": torch.from_numpy(buf.normal),
        "semantic": torch.from_numpy(semantic),
        "parts": torch.from_numpy(parts),
        "instances": torch.from_numpy(instances),
        "boundaries": torch.from_numpy(boundaries),
        "semantic_boundaries": torch.from_numpy(sem_b),
        "saliency": torch.from_numpy(saliency),
        "boxes": torch.from_numpy(boxes),
        "labels": torch.from_numpy(classes),
        "difficult": torch.from_numpy(difficult),
        "has_label": {t: True for t in TARGETS},
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
