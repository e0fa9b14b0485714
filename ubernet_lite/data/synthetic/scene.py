"""Scene sampling for the synthetic world: which shapes, where, in which colours.

A :class:`Scene` holds planes (floor, walls) and objects, each object a group of analytic
primitives of one kind (a ball is one ellipsoid, a person ten, a table five boxes), all expressed
in **camera coordinates** (x right, y down, z towards the camera; the camera sits at the origin and
looks along -z), packed into float32 parameter tables that
:mod:`~ubernet_lite.data.synthetic.render` ray-casts.

The scene depends only on the random generator, never on the image size: the same scene renders at
any resolution.

Determinism: every random number comes from ``random.Random.random`` (Python guarantees its
sequence for an integer seed across versions and platforms); geometry is computed in float64 with Python's ``math`` and **quantised to
float32** at the end, so that a last-bit difference of a platform's ``sin``/``cos`` cannot reach the
rendered pixels (rounding to float32 absorbs it, except with probability ~1e-8 per value).

World frame used while sampling: y up, the floor is ``y = 0``, the camera looks towards -z.
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass, field

import numpy as np

from ...tasks import PART_NAMES, SYNTH_CLASSES

#: Rendering styles of the world.
#:
#: - ``"scene"``: an open floor and a far backdrop wall (sometimes a side wall), 2-6 objects of any
#:   class, textured surfaces (VOC- and BSD-like).
#: - ``"indoor"``: a room corner (floor, back wall, left and right walls), 2-6 objects, more
#:   furniture (NYU-like: normals of floor and walls everywhere).
#: - ``"msra"``: one dominant object, large and centred, in front of a plain backdrop (MSRA10K-like).
#: - ``"person"``: one person, a third to most of the frame, before a plain backdrop (PASCAL-Part's
#:   people, which fill their images: parts spanning many cells of the stride-8 maps).
STYLES: tuple[str, ...] = ("scene", "indoor", "msra", "person")

CLASS_ID = {name: i + 1 for i, name in enumerate(SYNTH_CLASSES)}
PART_ID = {name: i + 1 for i, name in enumerate(PART_NAMES)}

#: Number of surfaces (faces) of each primitive kind: a box has six faces, a can a side and two
#: caps, a cone a side and a base; an ellipsoid one smooth surface.
FACES = {"ellipsoid": 1, "box": 6, "cylinder": 3, "cone": 2}

# Rows of an object's parameter table [ROWS[kind], P] (one column per primitive).
R_M = 0  # 0..8 local axes (rows) in camera coordinates; for ellipsoids divided by the semi-axes
R_O = 9  # 9..11 the camera origin in local coordinates, o = -M c
R_B1, R_O1, R_B2, R_O2 = 12, 15, 16, 19  # texture waves floor(b . p + o), p in camera coordinates
R_C0, R_DC = 20, 23  # colour where the pattern is even; odd colour minus even colour
R_K = 26  # kind-specific rows (see ``_kind_rows``)

# Columns of the scene's surface table [S, 23].
S_Q, S_W, S_B1, S_O1, S_B2, S_O2, S_C0, S_DC = 0, 6, 9, 12, 13, 16, 17, 20
ROWS = {"ellipsoid": R_K + 27, "box": R_K + 12, "cylinder": R_K + 5, "cone": R_K + 6}


@dataclass
class Plane:
    """An infinite plane ``{x : normal . x = offset}`` (camera coordinates) facing the camera.

    ``waves`` [8] = b1 (3), o1, b2 (3), o2 of the texture ``floor(b1 . p + o1) + floor(b2 . p + o2)``
    (mod 2 picks ``colours[0]`` or ``colours[1]``, each [3]).
    """

    normal: tuple
    offset: float
    waves: tuple
    colours: tuple
    surface: int


@dataclass
class SceneObject:
    """An object instance: a group of primitives of one ``kind``.

    Attributes:
        kind: ``ellipsoid``, ``box``, ``cylinder`` or ``cone``.
        cls: class id 1..K.
        params: [ROWS[kind], P] float32 parameter table (module constants ``R_*``).
        sphere_rows: P rows (centre xyz, radius) of bounding spheres in camera coordinates (as
            built; the property ``spheres`` gives the [P, 4] float64 array).
        surface: [P] int64 first surface id of each primitive (face ``f`` is ``surface + f``).
        part_ids: P person parts (0 for other classes; ``part`` gives the [P] int64 array).
        waves: how many texture waves its primitives use (0 plain, 1 stripes, 2 checks).
        corner_points: per primitive the 8 corners (xyz) of its local bounding box in camera
            coordinates, None for ellipsoids (``corners`` gives the [P, 8, 3] float64 array).
        bounds: ``(xmin, xmax, ymin, ymax)`` of the object's projection in normalised image
            coordinates ``(x / -z, y / -z)`` (from the corners, or the bounding spheres of
            ellipsoids), or None if it reaches behind the camera. Pixel windows follow from them
            at any image size.

    The renderer needs only ``kind``, ``params``, ``surface`` and ``bounds``; the arrays of the
    other attributes are built on access.
    """

    kind: str
    cls: int
    params: np.ndarray
    sphere_rows: list
    surface: np.ndarray
    part_ids: list
    waves: int
    corner_points: list | None = None
    bounds: tuple | None = None

    @property
    def spheres(self) -> np.ndarray:
        """[P, 4] float64 bounding spheres (centre xyz, radius), camera coordinates."""
        return np.array(self.sphere_rows, dtype=np.float64)

    @property
    def part(self) -> np.ndarray:
        """[P] int64 person part of each primitive (0 for other classes)."""
        return np.array(self.part_ids, dtype=np.int64)

    @property
    def corners(self) -> np.ndarray | None:
        """[P, 8, 3] float64 corners of each primitive's local bounding box; None (ellipsoids)."""
        if self.corner_points is None:
            return None
        return np.array(self.corner_points, dtype=np.float64)


@dataclass
class Scene:
    """Everything the renderer needs (see the module docstring for the conventions).

    Attributes:
        fov: field of view in radians (square images); focal length = size / (2 tan(fov / 2)).
        planes, objects: the geometry; objects are instances 1..N in this order.
        light: unit direction *towards* the light, camera coordinates.
        ambient, diffuse: Lambertian shading ``albedo * (ambient + diffuse * max(0, n . light))``.
        num_surfaces: total number of surface ids (planes first, then each primitive's faces).
        surface_table: [S, 23] float32 per surface: its normal model ``n = t (Q d) + w`` at the
            hit ``p = t d`` (Q symmetric: Q00 Q01 Q02 Q11 Q12 Q22, then w), its texture waves
            (b1, o1, b2, o2 in camera coordinates), its colour c0 and c1 - c0 (columns ``S_*``).
        surface_code: [S] int32 ``surface | part << 12 | instance << 16 | class << 24``.
        style: the style it was sampled in.
    """

    fov: float
    planes: list[Plane] = field(default_factory=list)
    objects: list[SceneObject] = field(default_factory=list)
    light: tuple = (0.0, -1.0, 0.0)
    ambient: float = 0.35
    diffuse: float = 0.65
    num_surfaces: int = 0
    surface_table: np.ndarray | None = None
    surface_code: np.ndarray | None = None
    style: str = "scene"


# ----------------------------------------------------------------------------- small geometry
# 3-vectors are tuples of Python floats (much faster than numpy for single vectors).


def _add(a, b):
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def _sub(a, b):
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _mul(a, s):
    return (a[0] * s, a[1] * s, a[2] * s)


def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _unit(a):
    n = math.sqrt(_dot(a, a))
    return (a[0] / n, a[1] / n, a[2] / n)


def _matvec(M, v):
    return (_dot(M[0], v), _dot(M[1], v), _dot(M[2], v))


def _frame_along(axis):
    """Rows of an orthonormal frame whose third row is ``axis`` (normalised)."""
    z = _unit(axis)
    helper = (1.0, 0.0, 0.0) if abs(z[0]) < 0.9 else (0.0, 0.0, 1.0)
    x = _unit(_cross(helper, z))
    return (x, _cross(z, x), z)


def _yaw_frame(angle):
    """Rows: an object's x, y (up), z axes in the world after a rotation ``angle`` about y."""
    c, s = math.cos(angle), math.sin(angle)
    return ((c, 0.0, -s), (0.0, 1.0, 0.0), (s, 0.0, c))


def _to_world(frame, v):
    """World vector of body-frame coordinates ``v`` (``frame`` rows are the body axes)."""
    return (
        frame[0][0] * v[0] + frame[1][0] * v[1] + frame[2][0] * v[2],
        frame[0][1] * v[0] + frame[1][1] * v[1] + frame[2][1] * v[2],
        frame[0][2] * v[0] + frame[1][2] * v[1] + frame[2][2] * v[2],
    )


class _Uniform:
    """Uniform draws in [0, 1) from a ``random.Random`` (Mersenne Twister, whose ``random()``
    sequence for a given integer seed Python guarantees across versions and platforms)."""

    def __init__(self, rng: random.Random):
        self.rand = rng.random

    def __call__(self) -> float:
        return self.rand()

    def vec(self):
        r = self.rand
        return (r(), r(), r())


class _Builder:
    """Collects planes and objects in world coordinates and converts them to the camera frame."""

    def __init__(self, u: _Uniform, cam_height: float, pitch: float, fov: float):
        self.u = u
        self.fov = fov
        # Camera axes in the world (rows): x right, y down, z backwards (towards the viewer).
        cp, sp = math.cos(pitch), math.sin(pitch)
        self.R = ((1.0, 0.0, 0.0), (0.0, -cp, sp), (0.0, sp, cp))
        self.cam = (0.0, cam_height, 0.0)
        self.R_array, self.cam_array = np.array(self.R), np.array(self.cam)
        self.planes: list[Plane] = []
        self.objects: list[SceneObject] = []
        self.surfaces = 0
        self.surface_rows: list[float] = []  # [S * 23] the surface table, row after row
        self.surface_codes: list[int] = []

    def point(self, p):
        return _matvec(self.R, _sub(p, self.cam))

    def vector(self, v):
        return _matvec(self.R, v)

    # -- appearance
    def colour(self):
        """A random colour, any hue: classes must be recognised by shape, not colour."""
        u = self.u
        return (0.1 + 0.85 * u(), 0.1 + 0.85 * u(), 0.1 + 0.85 * u())

    def texture(self, scale: float, plain: bool = False, colours=None):
        """(a1, o1, a2, o2, c0, c1): a plain, striped or checked pattern in *local* coordinates.

        ``scale`` is the object's size: patterns have 2-6 periods across it. Pattern edges are
        colour edges only; they never make a boundary.
        """
        u = self.u
        c0, c1 = (self.colour(), self.colour()) if colours is None else colours
        kind = 0 if plain else min(int(u() * 3), 2)  # 0 plain, 1 stripes, 2 checks
        freq = (2.0 + 4.0 * u()) / scale
        d1 = _unit(_sub(u.vec(), (0.5, 0.5, 0.5)))
        d2 = _unit(_cross(d1, _sub(u.vec(), (0.5, 0.5, 0.5))))
        o1, o2 = u(), u()
        a1 = _mul(d1, freq) if kind else (0.0, 0.0, 0.0)
        a2 = _mul(d2, freq) if kind == 2 else (0.0, 0.0, 0.0)
        return (a1, o1, a2, o2, c0, c1)

    @staticmethod
    def camera_waves(tex, axes_cam, centre_cam):
        """Texture waves of local coordinates ``l = axes (p - centre)`` as camera-space waves."""
        a1, o1, a2, o2 = tex[:4]
        b1 = _to_world(axes_cam, a1)  # axes^T a
        b2 = _to_world(axes_cam, a2)
        return (*b1, o1 - _dot(b1, centre_cam), *b2, o2 - _dot(b2, centre_cam))

    # -- geometry
    def plane(self, normal, point, tangent1, tangent2, tex) -> None:
        n = _unit(self.vector(normal))
        p = self.point(point)
        if _dot(n, p) > 0:  # face the camera (the camera at the origin is on the normal's side)
            n = _mul(n, -1.0)
        axes = (self.vector(tangent1), self.vector(tangent2), n)
        waves = self.camera_waves(tex, axes, p)
        self.planes.append(Plane(n, _dot(n, p), waves, (tex[4], tex[5]), self.surfaces))
        self.surface(_ZERO_Q, n, waves, tex, 0, 0)

    def surface(self, Q, w, waves, tex, part: int, cls: int) -> None:
        """Append one surface: normal model n = t (Q d) + w, texture and label code."""
        self.surface_rows.extend((*Q, *w, *waves, *tex[4], *_sub(tex[5], tex[4])))
        inst = len(self.objects) + 1 if cls else 0
        self.surface_codes.append(self.surfaces | part << 12 | inst << 16 | cls << 24)
        self.surfaces += 1

    def add_object(self, kind: str, cls: int, prims: list) -> None:
        """``prims``: list of (centre_world, axes_world rows, size (3), part, texture)."""
        if kind == "ellipsoid" and len(prims) > 1:  # a person: numpy pays off
            return self._add_ellipsoids(cls, prims)
        # The helpers _matvec, _dot, _mul and _add are written out inline below (same operations
        # in the same order, so the same float64 values): this loop runs for every primitive.
        (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = self.R
        cam0, cam1, cam2 = self.cam
        first = self.surfaces
        inst = len(self.objects) + 1
        rows, codes = self.surface_rows, self.surface_codes
        cols, spheres, parts, corners = [], [], [], []  # cols: the P columns of params, flat
        waves = 0
        for centre, axes_w, size, part, tex in prims:
            v0, v1, v2 = centre[0] - cam0, centre[1] - cam1, centre[2] - cam2
            c = (r00 * v0 + r01 * v1 + r02 * v2, r10 * v0 + r11 * v1 + r12 * v2,
                 r20 * v0 + r21 * v1 + r22 * v2)  # fmt: skip
            A = tuple(
                (
                    r00 * a0 + r01 * a1 + r02 * a2,
                    r10 * a0 + r11 * a1 + r12 * a2,
                    r20 * a0 + r21 * a1 + r22 * a2,
                )
                for a0, a1, a2 in axes_w
            )
            if kind == "ellipsoid":
                radius = max(size)
                M = (
                    _mul(A[0], 1.0 / size[0]),
                    _mul(A[1], 1.0 / size[1]),
                    _mul(A[2], 1.0 / size[2]),
                )
            else:
                half = size if kind == "box" else (size[0], size[0], size[2])
                radius = math.sqrt(_dot(half, half))
                M = A
                (x0, x1, x2), (y0, y1, y2), (z0, z1, z2) = (_mul(A[i], half[i]) for i in range(3))
                cs = []
                for sx in (-1.0, 1.0):
                    px = (c[0] + x0 * sx, c[1] + x1 * sx, c[2] + x2 * sx)
                    for sy in (-1.0, 1.0):
                        py = (px[0] + y0 * sy, px[1] + y1 * sy, px[2] + y2 * sy)
                        for sz in (-1.0, 1.0):
                            cs.append((py[0] + z0 * sz, py[1] + z1 * sz, py[2] + z2 * sz))
                corners.append(cs)
            c0_, c1_, c2_ = c
            o = tuple(-(m[0] * c0_ + m[1] * c1_ + m[2] * c2_) for m in M)
            cam_waves = self.camera_waves(tex, A, c)
            kind_rows = _kind_rows(kind, o, size, M, c)
            colour = (*tex[4], *_sub(tex[5], tex[4]))
            cols.extend((*M[0], *M[1], *M[2], *o, *cam_waves, *colour, *kind_rows))
            spheres.append((*c, radius * 1.001 + 1e-4))
            parts.append(part)
            waves = max(waves, 2 if any(tex[2]) else (1 if any(tex[0]) else 0))
            code = part << 12 | inst << 16 | cls << 24
            for Q, w in _normal_models(kind, A, c, size, kind_rows):  # Builder.surface, inline
                rows.extend((*Q, *w, *cam_waves, *colour))
                codes.append(self.surfaces | code)
                self.surfaces += 1
        if kind == "ellipsoid":
            pts = [
                (cx + sx * r, cy + sy * r, cz + sz * r)
                for cx, cy, cz, r in spheres
                for sx in (-1.0, 1.0)
                for sy in (-1.0, 1.0)
                for sz in (-1.0, 1.0)
            ]
        else:
            pts = [p for cs in corners for p in cs]
        bounds = None
        if max(p[2] for p in pts) < -1e-3:  # all in front of the camera
            xs = [p[0] / -p[2] for p in pts]
            ys = [p[1] / -p[2] for p in pts]
            bounds = (min(xs), max(xs), min(ys), max(ys))
        tab = _float32(cols).reshape(len(prims), -1).T  # float64 values rounded once to float32
        self.objects.append(
            SceneObject(
                kind,
                cls,
                np.ascontiguousarray(tab),
                spheres,
                np.arange(first, self.surfaces, FACES[kind], dtype=np.int64),
                parts,
                waves,
                None if kind == "ellipsoid" else corners,
                bounds,
            )  # fmt: skip
        )

    def _add_ellipsoids(self, cls: int, prims: list) -> None:
        """:meth:`add_object` for ellipsoids, vectorised over the P primitives (a person has 10).

        The same quantities as the generic path (float64, then float32), computed with numpy."""
        P = len(prims)
        R = self.R_array
        # every input of the P primitives as one [P, 29] float64 table: centre (3), axes (9),
        # size (3), texture a1 (3), o1, a2 (3), o2, colours c0 (3), c1 (3); operands of einsum are
        # contiguous copies, as einsum's kernels depend on the memory layout
        flat = []
        for c, ax, sz, _, t in prims:
            flat.extend((*c, *ax[0], *ax[1], *ax[2], *sz, *t[0], t[1], *t[2], t[3], *t[4], *t[5]))
        inp = _float64(flat).reshape(P, 29)
        c = np.einsum("ij,pj->pi", R, inp[:, 0:3] - self.cam_array)  # centres, camera frame
        A = np.einsum("pkj,ij->pki", np.ascontiguousarray(inp[:, 3:12]).reshape(P, 3, 3), R)
        size = inp[:, 12:15]
        parts = [p[3] for p in prims]
        M = A / size[:, :, None]
        o = -np.einsum("pij,pj->pi", M, c)
        a1 = np.ascontiguousarray(inp[:, 15:18])
        a2 = np.ascontiguousarray(inp[:, 19:22])
        b1 = np.einsum("pij,pi->pj", A, a1)  # A^T a: waves of local coordinates in the camera
        b2 = np.einsum("pij,pi->pj", A, a2)
        o1 = inp[:, 18] - np.einsum("pi,pi->p", b1, c)
        o2 = inp[:, 22] - np.einsum("pi,pi->p", b2, c)
        c0 = inp[:, 23:26]
        dc = inp[:, 26:29] - c0
        Q = np.einsum("pki,pkj->pij", M, M)
        B = np.einsum("pki,pk->pi", M, o)
        cc = np.einsum("pi,pi->p", o, o) - 1.0
        E = B[:, :, None] * B[:, None, :] - cc[:, None, None] * Q
        Qc = np.einsum("pij,pj->pi", Q, c)
        waves = np.concatenate([b1, o1[:, None], b2, o2[:, None]], axis=1)
        Qf, Ef = Q.reshape(P, 9), E.reshape(P, 9)
        # quadratic-polynomial rows of _kind_rows("ellipsoid"): Q00, -2 Q02, Q22, Q11, -2 Q12,
        # 2 Q01 (a), B0, B1, -B2 (b), the same entries of E (disc); scaling by +-1, +-2 is exact
        quad = _QUAD_SCALE * Qf[:, _QUAD_ENTRIES]
        disc = _QUAD_SCALE * Ef[:, _QUAD_ENTRIES]
        tab = np.concatenate(
            [M.reshape(P, 9), o, waves, c0, dc, quad, B * _B_SCALE, disc, Qf, Qc], axis=1
        )
        sym = Qf[:, _SYM_ENTRIES]
        self.surface_rows.extend(np.concatenate([sym, -Qc, waves, c0, dc], axis=1).ravel().tolist())
        first = self.surfaces
        inst = len(self.objects) + 1
        self.surface_codes.extend(
            (first + i) | part << 12 | inst << 16 | cls << 24 for i, part in enumerate(parts)
        )
        self.surfaces += P
        radius = size.max(1) * 1.001 + 1e-4
        pts = (c[:, None, :] + _CORNER_SIGNS[None] * radius[:, None, None]).reshape(-1, 3)
        bounds = None
        if pts[:, 2].max() < -1e-3:  # all in front of the camera
            xs, ys = pts[:, 0] / -pts[:, 2], pts[:, 1] / -pts[:, 2]
            bounds = (float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max()))
        n_waves = max(2 if any(p[4][2]) else (1 if any(p[4][0]) else 0) for p in prims)
        self.objects.append(
            SceneObject(
                "ellipsoid",
                cls,
                np.ascontiguousarray(tab.T.astype(np.float32)),
                np.concatenate([c, radius[:, None]], axis=1),
                np.arange(first, first + P, dtype=np.int64),
                parts,
                n_waves,
                None,
                bounds,
            )  # fmt: skip
        )

    def finish(self, style: str) -> Scene:
        u = self.u
        az = u() * 2 * math.pi
        el = math.radians(35 + 45 * u())
        light_w = (math.cos(el) * math.cos(az), math.sin(el), math.cos(el) * math.sin(az))
        light = tuple(float(np.float32(x)) for x in _unit(self.vector(light_w)))
        return Scene(
            fov=self.fov,
            planes=self.planes,
            objects=self.objects,
            light=light,
            ambient=float(np.float32(0.3 + 0.15 * u())),
            diffuse=float(np.float32(0.55 + 0.2 * u())),
            num_surfaces=self.surfaces,
            surface_table=_float32(self.surface_rows).reshape(self.surfaces, -1),
            surface_code=np.array(self.surface_codes, dtype=np.int32),
            style=style,
        )


_ZERO_Q = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _float32(values: list) -> np.ndarray:
    """[n] float32 array of a flat list of Python floats, each rounded once from float64 (the
    values of ``np.array(values, dtype=np.float32)``). Packing the floats as C doubles and casting
    is several times faster than ``np.array`` on a list, which inspects every element."""
    return _float64(values).astype(np.float32)


def _float64(values: list) -> np.ndarray:
    """[n] float64 array (read-only) of a flat list of Python floats, via their packed bytes."""
    return np.frombuffer(struct.pack(f"{len(values)}d", *values))


# Entries of a flattened 3x3 Q for the ellipsoid rows (see _kind_rows) and their exact scales.
_QUAD_ENTRIES = [0, 2, 8, 4, 5, 1]  # Q00, Q02, Q22, Q11, Q12, Q01
_QUAD_SCALE = np.array([1.0, -2.0, 1.0, 1.0, -2.0, 2.0])
_B_SCALE = np.array([1.0, 1.0, -1.0])
_SYM_ENTRIES = [0, 1, 2, 4, 5, 8]  # Q00 Q01 Q02 Q11 Q12 Q22
#: [8, 3] the signs of a box's corners, x slowest.
_CORNER_SIGNS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)


def _sym_outer(*terms):
    """Q = sum of s a a^T over (s, a) terms, as its 6 unique entries (00 01 02 11 12 22)."""
    out = [0.0] * 6
    for s, a in terms:
        for n, (i, j) in enumerate(((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))):
            out[n] += s * a[i] * a[j]
    return out


def _normal_models(kind: str, A, c, size, kind_rows):
    """(Q, w) per face: the outward normal at the hit p = t d is n = t (Q d) + w, i.e. the gradient
    Q (p - c) (+ a constant) of the surface's implicit function; flat faces have Q = 0."""
    if kind == "ellipsoid":
        Qf = kind_rows[15:24]
        Q = (Qf[0], Qf[1], Qf[2], Qf[4], Qf[5], Qf[8])
        return [(Q, _mul(kind_rows[24:27], -1.0))]
    if kind == "box":
        return [(_ZERO_Q, _mul(A[i], s)) for i in range(3) for s in (1.0, -1.0)]
    Qs = _sym_outer((1.0, A[0]), (1.0, A[1]))
    if kind == "cylinder":
        Qc = _sym_mul(Qs, c)
        return [(Qs, _mul(Qc, -1.0)), (_ZERO_Q, A[2]), (_ZERO_Q, _mul(A[2], -1.0))]
    r, h = size[0], size[2]
    k2 = (r / (2.0 * h)) ** 2
    Qs = _sym_outer((1.0, A[0]), (1.0, A[1]), (-k2, A[2]))
    w = _add(_mul(_sym_mul(Qs, c), -1.0), _mul(A[2], k2 * h))
    return [(Qs, w), (_ZERO_Q, _mul(A[2], -1.0))]


def _sym_mul(Q, v):
    """Q v for Q given by its 6 unique entries."""
    return (
        Q[0] * v[0] + Q[1] * v[1] + Q[2] * v[2],
        Q[1] * v[0] + Q[3] * v[1] + Q[4] * v[2],
        Q[2] * v[0] + Q[4] * v[1] + Q[5] * v[2],
    )


def _kind_rows(kind: str, o, size, M, c) -> list[float]:
    """Kind-specific parameter rows (from ``R_K`` on): local origin ``o``, ``size``, rows ``M``
    of the local frame and centre ``c`` (camera coordinates)."""
    if kind == "ellipsoid":
        # |M (t d - c)|^2 = 1 with d = (X, Y, -1): a t^2 + 2 b t + cc = 0 where a = d'Qd,
        # Q = M^T M, b = B . d, B = M^T o, cc = |o|^2 - 1; disc = b^2 - a cc = d' E d, E = B B^T - cc Q.
        # Each is a quadratic polynomial in (X, Y): rows hold its coefficients, so that the
        # renderer evaluates a, b and disc with a few separable operations per pixel.
        m0, m1, m2 = M
        Q = [[m0[i] * m0[j] + m1[i] * m1[j] + m2[i] * m2[j] for j in range(3)] for i in range(3)]
        B = [m0[i] * o[0] + m1[i] * o[1] + m2[i] * o[2] for i in range(3)]
        cc = _dot(o, o) - 1.0
        E = [[B[i] * B[j] - cc * Q[i][j] for j in range(3)] for i in range(3)]
        Qc = [_dot(Q[i], c) for i in range(3)]
        return [
            Q[0][0], -2 * Q[0][2], Q[2][2], Q[1][1], -2 * Q[1][2], 2 * Q[0][1],  # a
            B[0], B[1], -B[2],  # b
            E[0][0], -2 * E[0][2], E[2][2], E[1][1], -2 * E[1][2], 2 * E[0][1],  # disc
            *Q[0], *Q[1], *Q[2], *Qc,  # the normal Q (p - c) at p = t d
        ]  # fmt: skip
    if kind == "box":
        e = size
        return [
            *e,
            *(-e[i] - o[i] for i in range(3)),  # slab entry planes, relative to the origin
            *(e[i] - o[i] for i in range(3)),
            *(1.0 / e[i] for i in range(3)),
        ]
    r, h = size[0], size[2]
    if kind == "cylinder":
        cap = 1.0 if o[2] > h else (-1.0 if o[2] < -h else 0.0)  # the cap facing the camera
        return [r * r, h, cap, o[0] * o[0] + o[1] * o[1] - r * r, 1.0 - 1e-5]
    k2 = (r / (2.0 * h)) ** 2
    w = h - o[2]
    cap = -1.0 if o[2] < -h else 0.0  # the base is visible from below only
    return [r * r, h, k2, w, o[0] * o[0] + o[1] * o[1] - k2 * w * w, cap]


# ----------------------------------------------------------------------------- the six classes


def _dims(u: _Uniform, cls: str) -> dict:
    """Random dimensions (metres; ``h`` and ``e`` are half sizes) of an object of class ``cls``."""
    if cls == "ball":
        return {"r": 0.15 + 0.3 * u()}
    if cls == "box":
        return {"e": (0.15 + 0.35 * u(), 0.12 + 0.35 * u(), 0.15 + 0.35 * u())}
    if cls == "can":
        return {"r": 0.1 + 0.18 * u(), "h": 0.18 + 0.35 * u()}
    if cls == "cone":
        return {"r": 0.18 + 0.25 * u(), "h": 0.3 + 0.35 * u()}
    if cls == "table":
        return {
            "w": 0.4 + 0.35 * u(),
            "d": 0.3 + 0.2 * u(),
            "h": 0.55 + 0.3 * u(),
            "t": 0.025 + 0.02 * u(),
            "leg": 0.025 + 0.015 * u(),
        }
    return {"H": 1.45 + 0.45 * u()}  # person


def _footprint(cls: str, dims: dict) -> float:
    """Radius of the object's footprint on the floor (for non-overlapping placement)."""
    if cls in ("ball", "can", "cone"):
        return dims["r"]
    if cls == "box":
        return math.hypot(dims["e"][0], dims["e"][2])
    if cls == "table":
        return math.hypot(dims["w"], dims["d"])
    return 0.3 * dims["H"]


def _bounding(cls: str, dims: dict) -> tuple[float, float]:
    """(height of the bounding-sphere centre above the floor, its radius)."""
    if cls == "ball":
        return dims["r"], dims["r"]
    if cls == "box":
        e = dims["e"]
        return e[1], math.sqrt(_dot(e, e))
    if cls in ("can", "cone"):
        return dims["h"], math.hypot(dims["r"], dims["h"])
    if cls == "table":
        return dims["h"] / 2, math.sqrt(dims["w"] ** 2 + dims["d"] ** 2 + (dims["h"] / 2) ** 2)
    return dims["H"] / 2, dims["H"] * 0.55


def _add_object(b: _Builder, cls: str, dims: dict, x: float, z: float, yaw: float) -> None:
    """Put an object of class ``cls`` standing on the floor at world ``(x, 0, z)``."""
    u = b.u
    Y = _yaw_frame(yaw)
    up = (0.0, 1.0, 0.0)
    cid = CLASS_ID[cls]
    if cls == "ball":
        r = dims["r"]
        axes = _frame_along(_sub(u.vec(), (0.5, 0.5, 0.5)))  # random orientation of the texture
        b.add_object("ellipsoid", cid, [((x, r, z), axes, (r, r, r), 0, b.texture(2 * r))])
    elif cls == "box":
        e = dims["e"]
        b.add_object("box", cid, [((x, e[1], z), Y, e, 0, b.texture(2 * max(e)))])
    elif cls in ("can", "cone"):
        r, h = dims["r"], dims["h"]
        axes = (Y[0], Y[2], up)  # local z = world up
        kind = "cylinder" if cls == "can" else "cone"
        b.add_object(kind, cid, [((x, h, z), axes, (r, r, h), 0, b.texture(2 * max(r, h)))])
    elif cls == "table":
        w, d, h, t, leg = dims["w"], dims["d"], dims["h"], dims["t"], dims["leg"]
        tex_top = b.texture(2 * w)
        tex_leg = b.texture(h, colours=tex_top[4:6])
        prims = [((x, h - t, z), Y, (w, t, d), 0, tex_top)]
        leg_h = (h - 2 * t) / 2
        for sx in (-1, 1):
            for sz in (-1, 1):
                off = _to_world(Y, (sx * (w - 1.5 * leg), 0.0, sz * (d - 1.5 * leg)))
                prims.append(((x + off[0], leg_h, z + off[2]), Y, (leg, leg_h, leg), 0, tex_leg))
        b.add_object("box", cid, prims)
    else:
        _add_person(b, dims["H"], x, z, Y)


def _add_person(b: _Builder, H: float, x: float, z: float, Y) -> None:
    """An articulated person: head, torso, upper/lower arms and upper/lower legs (ellipsoids).

    Joint angles are random (standing, walking, waving); the lowest foot touches the floor. The
    parts are labelled 1..6 in :data:`ubernet_lite.tasks.PART_NAMES` order.
    """
    u = b.u
    deg = math.radians

    def limb(start, theta, phi, length):
        """End of a limb from ``start``: ``theta`` swings it forward from hanging down (about the
        body's x axis), ``phi`` spreads it sideways. Body frame: x sideways, y up, z front."""
        v = (math.sin(phi), -math.cos(theta) * math.cos(phi), math.sin(theta) * math.cos(phi))
        return _add(start, _mul(v, length))

    parts = []  # (part name, joint a, joint b, thickness radius)
    for side in (-1.0, 1.0):
        hip = (side * 0.055 * H, 0.52 * H, 0.0)
        th = deg(-25 + 50 * u())
        knee = limb(hip, th, side * deg(8 * u()), 0.25 * H)
        ankle = limb(knee, th - deg(50 * u()), side * deg(4 * u()), 0.25 * H)
        parts.append(("upper leg", hip, knee, 0.055 * H))
        parts.append(("lower leg", knee, ankle, 0.042 * H))
        shoulder = (side * 0.125 * H, 0.80 * H, 0.0)
        th = deg(-40 + 130 * u())
        elbow = limb(shoulder, th, side * deg(5 + 60 * u()), 0.17 * H)
        wrist = limb(elbow, th + deg(90 * u()), side * deg(5 + 40 * u()), 0.16 * H)
        parts.append(("upper arm", shoulder, elbow, 0.04 * H))
        parts.append(("lower arm", elbow, wrist, 0.032 * H))
    # the lowest ankle's ellipsoid touches the floor
    lift = 0.045 * H - min(p[2][1] for p in parts if p[0] == "lower leg")
    skin = b.colour()
    tex_shirt = b.texture(0.4 * H, colours=(b.colour(), b.colour()))
    tex_trousers = b.texture(0.5 * H, colours=(b.colour(), b.colour()))
    tex_skin = b.texture(1.0, plain=True, colours=(skin, skin))
    tex = {"upper arm": tex_shirt, "lower arm": tex_skin, "upper leg": tex_trousers}
    tex["lower leg"] = tex_trousers

    def world(v):
        w = _to_world(Y, v)
        return (x + w[0], lift + w[1], z + w[2])

    prims = [
        (
            world((0.0, 0.665 * H, 0.0)),
            Y,
            (0.15 * H, 0.17 * H, 0.08 * H),
            PART_ID["torso"],
            tex_shirt,
        ),
        (
            world((0.0, 0.92 * H, 0.01 * H)),
            Y,
            (0.06 * H, 0.075 * H, 0.065 * H),
            PART_ID["head"],
            tex_skin,
        ),
    ]
    for name, a, c, r in parts:
        a_w, c_w = world(a), world(c)
        axis = _sub(c_w, a_w)
        half = math.sqrt(_dot(axis, axis)) / 2 + 0.6 * r
        centre = _mul(_add(a_w, c_w), 0.5)
        prims.append((centre, _frame_along(axis), (r, r, half), PART_ID[name], tex[name]))
    b.add_object("ellipsoid", CLASS_ID["person"], prims)


# ----------------------------------------------------------------------------- the three styles

_CLASS_WEIGHTS = {
    "scene": (1.0, 1.0, 1.0, 1.0, 1.0, 1.2),
    "indoor": (0.8, 1.3, 1.0, 0.8, 1.4, 1.0),
}


def _weighted_choice(u: _Uniform, weights) -> int:
    x = u() * sum(weights)
    for i, w in enumerate(weights):
        x -= w
        if x < 0:
            return i
    return len(weights) - 1


def sample_scene(rng: random.Random, style: str = "scene") -> Scene:
    """Draw one scene of ``style`` (see :data:`STYLES`) from the random stream ``rng``."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    u = _Uniform(rng)
    if style == "msra":
        return _sample_msra(u)
    if style == "person":
        return _sample_msra(u, cls="person", frac=(0.35, 0.55), style="person")
    return _sample_room(u, style)


def _sample_room(u: _Uniform, style: str) -> Scene:
    indoor = style == "indoor"
    fov = math.radians(50 + 15 * u())
    pitch = math.radians(10 + 18 * u())
    cam_h = 1.2 + 0.8 * u()
    b = _Builder(u, cam_h, pitch, fov)
    b.plane((0, 1, 0), (0, 0, 0), (1, 0, 0), (0, 0, 1), b.texture(2.0 + 4.0 * u()))
    if indoor:
        back = 4.5 + 3.5 * u()
        left, right = 2.0 + 2.0 * u(), 2.0 + 2.0 * u()
    else:
        back = 10.0 + 10.0 * u()
        left = right = None
        if u() < 0.3:
            if u() < 0.5:
                left = 2.0 + 3.0 * u()
            else:
                right = 2.0 + 3.0 * u()
    b.plane((0, 0, 1), (0, 0, -back), (1, 0, 0), (0, 1, 0), b.texture(4.0))
    if left is not None:
        b.plane((1, 0, 0), (-left, 0, 0), (0, 0, 1), (0, 1, 0), b.texture(4.0))
    if right is not None:
        b.plane((-1, 0, 0), (right, 0, 0), (0, 0, 1), (0, 1, 0), b.texture(4.0))

    n_obj = 2 + min(int(u() * 5), 4)
    weights = _CLASS_WEIGHTS[style]
    placed: list[tuple[float, float, float]] = []
    tan_half = math.tan(fov / 2)
    z_near = 1.5 + cam_h * 0.5
    z_far = min(back - 0.8, 8.0)
    for _ in range(n_obj):
        cls = SYNTH_CLASSES[_weighted_choice(u, weights)]
        dims = _dims(u, cls)
        foot = _footprint(cls, dims)
        for _try in range(6):
            depth = z_near + (z_far - z_near) * u() ** 1.3
            x = (2 * u() - 1) * depth * tan_half * 1.1  # in view, a little past its edges
            yaw = 2 * math.pi * u()
            lo = -left + foot if left is not None else -1e9
            hi = right - foot if right is not None else 1e9
            if not (lo <= x <= hi) or depth + foot > back:
                continue
            if all(math.hypot(x - px, -depth - pz) > foot + pr + 0.05 for px, pz, pr in placed):
                placed.append((x, -depth, foot))
                _add_object(b, cls, dims, x, -depth, yaw)
                break
    return b.finish(style)


def _sample_msra(
    u: _Uniform, cls: str | None = None, frac=(0.6, 0.3), style: str = "msra"
) -> Scene:
    """One object, large and roughly centred, in front of a plain backdrop (floor and wall):
    of class ``cls`` (None: a random class), its projected bounding radius ``frac[0]`` to
    ``frac[0] + frac[1]`` of half the image."""
    fov = math.radians(45 + 10 * u())
    if cls is None:
        cls = SYNTH_CLASSES[min(int(u() * len(SYNTH_CLASSES)), len(SYNTH_CLASSES) - 1)]
    dims = _dims(u, cls)
    cy, rad = _bounding(cls, dims)
    frac = frac[0] + frac[1] * u()  # projected bounding radius / half the image
    dist = rad / (frac * math.tan(fov / 2))
    elev = math.radians(5 + 25 * u())
    cam_h = cy + dist * math.sin(elev)
    horiz = dist * math.cos(elev)
    b = _Builder(u, cam_h, elev, fov)
    grey = 0.3 + 0.6 * u()
    bg = tuple(min(max(grey + 0.25 * u() - 0.125, 0.05), 0.95) for _ in range(3))
    plain = b.texture(1.0, plain=True, colours=(bg, bg))
    b.plane((0, 1, 0), (0, 0, 0), (1, 0, 0), (0, 0, 1), plain)
    back = horiz + rad + 2.0 + 6.0 * u()
    b.plane((0, 0, 1), (0, 0, -back), (1, 0, 0), (0, 1, 0), plain)
    x = (u() - 0.5) * 0.4 * rad  # a little off centre
    _add_object(b, cls, dims, x, -horiz, 2 * math.pi * u())
    return b.finish(style)
