"""Ray casting of a :class:`~ubernet_lite.data.synthetic.scene.Scene` into per-pixel buffers.

The camera is a pinhole at the origin looking along -z (camera coordinates: x right, y down, z
towards the camera). Pixel ``(v, u)`` of a ``size x size`` image looks along the (unnormalised)
direction ``d = ((u + 0.5 - size/2) / f, (v + 0.5 - size/2) / f, -1)``, focal length
``f = size / (2 tan(fov / 2))``. Because ``d_z = -1`` the ray parameter ``t`` of a hit *is* its
depth, and the z-buffer compares ``t`` directly.

The z-buffer holds one int64 *key* per pixel, ``bits(t) << 12 | surface id``: the bit pattern of
a positive float32 orders like its value, so the smallest key is the nearest hit, and on a tie the
lowest surface id wins (the plane or object drawn first, the first primitive of an object), just as
a sequential strict ``t < depth`` test would decide. Merging a hit into the z-buffer is then one
``np.minimum``; depth and surface id are split off the keys at the end.

1. Planes (floor, walls): the camera is inside the room, so a pixel sees the plane with the
   largest *inverse* depth ``q = (n . d) / offset`` (from ``t = offset / (n . d)``), one full-image
   operation per plane since ``n . d`` is separable in ``(u, v)``; without side walls ``q`` depends
   on the row only and every plane owns a band of whole rows (depth per row). Planes are shaded
   right away and start the z-buffer.
2. Objects: each primitive is intersected in its local frame (ellipsoid: a unit sphere after
   scaling, with ``a``, ``b`` and the discriminant as quadratic polynomials of the pixel
   coordinates; box: slabs; can/cone: quadric plus cap), only over the pixel window it projects to
   (bounding-box culling; all primitives of an object, e.g. the ten ellipsoids of a person, as one
   batch ``[P, h, w]`` reduced to the nearest by a minimum over keys), and merged into the
   z-buffer. Windows reach past the image border (by :data:`EXTEND` image sizes) so that each
   object's unoccluded projected area can be counted (``difficult``).
3. Deferred shading of all object pixels at once (gathered per pixel from the scene's surface
   table): every surface has a normal model ``n = t (Q d) + w`` (the gradient of its implicit
   function: ``Q`` = 0 for flat faces), a texture
   ``pattern = (floor(b1 . p + o1) + floor(b2 . p + o2)) mod 2`` of the camera-space hit point
   ``p = t d`` picking colour ``c0`` or ``c1``, and Lambertian shading
   ``albedo * (ambient + diffuse * max(0, n . light))``.

Only elementwise IEEE float32 operations (+, -, *, /, sqrt, floor, comparisons) touch per-pixel
data, never ``sin``/``exp`` or BLAS reductions, so the buffers are bit-identical on any machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import scene as ss
from .scene import Scene

_F = np.float32
_INF = _F(np.inf)
_INF_BITS = np.array(np.inf, dtype=_F).view(np.uint32)[()]  # 0x7F800000, the bits of +inf
#: Object windows extend this many image sizes past each border (for the truncation measure).
EXTEND = 0.5


@dataclass
class Buffers:
    """Per-pixel result of ray casting a scene.

    Attributes:
        depth: [H, W] float32 camera depth of the nearest hit.
        surface: [H, W] int64 (``np.intp``) surface id (planes first, then each primitive's
            faces); the labels below are per-surface lookups of ``surface_code``.
        normal: [3, H, W] float32 unit normals, camera coordinates.
        image: [3, H, W] float32 shaded colour in [0, 1].
        full_area: [num_objects] int64, pixels of each object's unoccluded projection, counted on
            the image extended by :data:`EXTEND` sizes past its borders.
        surface_code: [S] int32 the scene's ``surface | part << 12 | instance << 16 | class << 24``
            per surface id (``Scene.surface_code``).
        surface_pixels: [S] int64 pixels of the image showing each *object* surface (counted
            while shading; 0 for the planes, which are not counted).

    Derived on access (one lookup each): ``code`` [H, W] int32 packed code,
    ``instance`` [H, W] uint8 object index + 1 (0 for planes), ``semantic`` [H, W] uint8 class
    1..K (0 for planes), ``part`` [H, W] uint8 person part 1..6 (0 elsewhere).
    """

    depth: np.ndarray
    surface: np.ndarray
    normal: np.ndarray
    image: np.ndarray
    full_area: np.ndarray
    surface_code: np.ndarray
    surface_pixels: np.ndarray

    @property
    def code(self) -> np.ndarray:
        return np.take(self.surface_code, self.surface)

    @property
    def instance(self) -> np.ndarray:
        return np.take(((self.surface_code >> 16) & 0xFF).astype(np.uint8), self.surface)

    @property
    def semantic(self) -> np.ndarray:
        return np.take((self.surface_code >> 24).astype(np.uint8), self.surface)

    @property
    def part(self) -> np.ndarray:
        return np.take(((self.surface_code >> 12) & 0xF).astype(np.uint8), self.surface)


def focal(scene: Scene, size: int) -> float:
    """Focal length in pixels of a ``size``-pixel image of ``scene``."""
    return size / (2.0 * math.tan(scene.fov / 2.0))


def _ray_coords(lo: int, hi: int, size: int, f: float) -> np.ndarray:
    """Ray direction component (x or y) of pixel columns/rows ``lo..hi-1``, float32 [hi - lo]."""
    return (np.arange(lo, hi, dtype=_F) + _F(0.5) - _F(size / 2.0)) / _F(f)


def _window(bounds, size: int, f: float):
    """Pixel window ``(v0, v1, u0, u1)`` of an object whose projection has normalised ``bounds``
    (``SceneObject.bounds``), reaching past the image by EXTEND sizes at most; ``None`` if it
    misses that extended image."""
    lo_lim = -math.floor(EXTEND * size)
    hi_lim = size - lo_lim
    if bounds is None:  # reaches behind the camera: the whole extended image
        return lo_lim, hi_lim, lo_lim, hi_lim
    half = size / 2.0 - 0.5
    xmin, xmax, ymin, ymax = bounds
    u0 = max(math.floor(xmin * f + half), lo_lim)
    u1 = min(math.ceil(xmax * f + half) + 1, hi_lim)
    v0 = max(math.floor(ymin * f + half), lo_lim)
    v1 = min(math.ceil(ymax * f + half) + 1, hi_lim)
    if u0 >= u1 or v0 >= v1:
        return None
    return v0, v1, u0, u1


# ----------------------------------------------------------------------------- intersections
# ``g`` is an object's parameter table: [R, P, 1, 1] (all P primitives of an object as one batch,
# rays X = dx [1, 1, w], Y = dy [1, h, 1]) or the 1-D column [R] of a single primitive (each row a
# float32 scalar; rays X [1, w], Y [h, 1]). Rows that play the same part for the three axes are
# taken together as [3, ...] arrays (``_rows3``, ``_local_dirs``), so that one numpy call does the
# work of three. Each returns the depth t (inf where missed) and the face index of the hit (an int
# array or 0).


def _rows3(g, r):
    """Rows ``r .. r + 2`` of the table ``g`` as one array [3, ...] that broadcasts against the
    rays: [3, 1, 1] for one primitive (``g`` 1-D), [3, P, 1, 1] for a batch."""
    rows = g[r : r + 3]
    return rows[:, None, None] if rows.ndim == 1 else rows


def _local_dirs(g, X, Y):
    """The local ray directions d_l = M d with d = (X, Y, -1), as one array [3, ...] (component i
    is ``(M_i0 X - M_i2) + M_i1 Y``; the three components in one numpy call per operation)."""
    M = g[0:9].reshape((3, 3) + g.shape[1:])  # [3 (component i), 3 (column j), ...]
    if M.ndim == 2:
        M = M[:, :, None, None]  # one primitive: [3, 3, 1, 1] against rays [h, w]
    return (M[:, 0] * X - M[:, 2]) + M[:, 1] * Y


def _t_ellipsoid(g, X, Y):
    k = ss.R_K
    X2, Y2, XY = X * X, Y * Y, X * Y
    # a t^2 + 2 b t + cc = 0 with a, b, disc = b^2 - a cc quadratic polynomials in (X, Y); the
    # nearer root t = (-b - sqrt(disc)) / a = (b + sqrt(disc)) / (-a), and -a is evaluated with
    # negated coefficients (IEEE rounding is symmetric, so this is exactly the negated a).
    # -a and disc are evaluated side by side, as q [2, ...] = (-a, disc): coefficient j of both
    # is c[j] [2, ...] (half the numpy calls; every element is computed as before)
    c = g[_QUADRATICS]  # [6, 2] or [6, 2, P, 1, 1]: rows k..k+5 (a) and k+9..k+14 (disc)
    if c.ndim == 2:
        c = c[:, :, None, None]  # one primitive: [6, 2, 1, 1] against rays [h, w]
    np.negative(c[:, 0], out=c[:, 0])
    q = np.add(c[0] * X2 + c[1] * X + c[2], c[3] * Y2 + c[4] * Y)
    q += c[5] * XY
    neg_a, t = q[0], q[1]
    np.sqrt(t, out=t)  # NaN where the ray misses: every comparison with NaN is False
    t += (g[k + 6] * X + g[k + 8]) + g[k + 7] * Y  # + b
    t /= neg_a
    return _positive_or_inf(t), 0


def _positive_or_inf(t: np.ndarray) -> np.ndarray:
    """``np.where(t > 0, t, inf)`` for float32 ``t``, in place, as three cheap integer operations
    (np.where is several times slower, and a person's [10, h, w] batch makes it count).

    Read as uint32, the bits of a float32 order the positive floats like their values up to +inf
    (0x7F800000); +0 is 0, and NaNs and negative floats lie above 0x7F800000. Subtracting 1 (0 wraps
    to the top), clamping at 0x7F800000 - 1 and adding 1 back maps exactly the rays that miss
    (t <= 0 or NaN) to +inf and leaves every t > 0 as it is."""
    u = t.view(np.uint32)
    u -= np.uint32(1)
    np.minimum(u, _INF_BITS - np.uint32(1), out=u)
    u += np.uint32(1)
    return t


def _t_box(g, X, Y):
    # the three slabs side by side, [3, ...]: entry lo and exit hi of each
    inv = _local_dirs(g, X, Y)
    np.divide(_F(1.0), inv, out=inv)
    t1 = _rows3(g, ss.R_K + 3) * inv  # (-e - o) / d
    t2 = np.multiply(_rows3(g, ss.R_K + 6), inv, out=inv)  # (e - o) / d
    lo = np.minimum(t1, t2)
    hi = np.maximum(t1, t2, out=t1)
    tns = lo  # tns[i]: entry into slab i
    tn = np.maximum(lo[0], lo[1])  # the last entry and the first exit
    np.maximum(tn, lo[2], out=tn)
    tf = np.minimum(hi[0], hi[1])
    np.minimum(tf, hi[2], out=tf)
    tn = np.where((tn <= tf) & (tn > 0), tn, _INF)
    # the entry face: on the axis whose slab is entered last, the side the camera is on
    faces = [(g[ss.R_O + i] < 0) + 2 * i for i in range(3)]  # [P, 1, 1] each
    face = np.where(tn == tns[0], faces[0], np.where(tn == tns[1], faces[1], faces[2]))
    return tn, face


def _t_cylinder(g, X, Y):
    d = _local_dirs(g, X, Y)  # [3, ...]
    o = g[ss.R_O : ss.R_O + 3]
    r2, h, cap, c = g[ss.R_K], g[ss.R_K + 1], g[ss.R_K + 2].item(), g[ss.R_K + 3]
    a = d[0] * d[0] + d[1] * d[1]
    b = o[0] * d[0] + o[1] * d[1]
    t = (-b - np.sqrt(b * b - a * c)) / a
    z = o[2] + t * d[2]
    t = np.where((t > 0) & (np.abs(z) <= h), t, _INF)
    if cap == 0:
        return t, 0
    tc = (cap * h - o[2]) / d[2]  # the cap facing the camera, at local z = cap * h
    x = o[0] + tc * d[0]
    y = o[1] + tc * d[1]
    use = (tc > 0) & (x * x + y * y <= r2) & (tc < t)
    return np.where(use, tc, t), use * (1 if cap > 0 else 2)  # faces: 0 side, 1 top, 2 bottom


def _t_cone(g, X, Y):
    d = _local_dirs(g, X, Y)  # [3, ...]
    o = g[ss.R_O : ss.R_O + 3]
    r2, h, k2, w, c, cap = (g[ss.R_K + i] for i in range(6))
    a = d[0] * d[0] + d[1] * d[1] - k2 * d[2] * d[2]
    b = o[0] * d[0] + o[1] * d[1] + (k2 * w) * d[2]
    sq = np.sqrt(b * b - a * c)
    t = np.full(np.broadcast_shapes(a.shape, sq.shape), _INF, dtype=_F)
    for root in ((-b - sq) / a, (-b + sq) / a):
        z = o[2] + root * d[2]
        good = (root > 0) & (z <= h) & (z >= -h) & (root < t)
        t = np.where(good, root, t)
    if cap.item() == 0:
        return t, 0
    tc = (-h - o[2]) / d[2]  # the base, seen from below
    x = o[0] + tc * d[0]
    y = o[1] + tc * d[1]
    use = (tc > 0) & (x * x + y * y <= r2) & (tc < t)
    return np.where(use, tc, t), use * 1  # faces: 0 side, 1 base


#: Rows of the ellipsoid's parameter table holding the coefficients of a and disc, as [6, 2].
_QUADRATICS = np.array([[ss.R_K + j, ss.R_K + 9 + j] for j in range(6)])

_INTERSECT = {
    "ellipsoid": _t_ellipsoid,
    "box": _t_box,
    "cylinder": _t_cylinder,
    "cone": _t_cone,
}


# ----------------------------------------------------------------------------- the z-buffer


def render_buffers(scene: Scene, size: int) -> Buffers:
    """Ray-cast ``scene`` at ``size`` x ``size`` pixels (see the module docstring)."""
    with np.errstate(all="ignore"):  # missed rays carry inf/NaN; they are masked out
        return _render(scene, size)


def _planes(scene: Scene, size: int, coords: np.ndarray, normal, image) -> np.ndarray:
    """Shade the planes into ``normal`` and ``image`` and return the z-buffer [H, W] (int64 keys,
    see :func:`_keys`) they leave: the largest inverse depth q = (n . d) / offset wins."""
    X, Y = coords[None, :], coords[:, None]  # square image: rows and columns share coordinates
    L = scene.light
    amb, dif = scene.ambient, scene.diffuse
    coef = []  # q = a X + b Y - c, with (a, b, c) = n / offset
    for pl in scene.planes:
        n, s = pl.normal, 1.0 / pl.offset
        coef.append((_F(n[0] * s), _F(n[1] * s), _F(n[2] * s)))
    zbuf = np.empty((size, size), dtype=np.int64)
    if all(a == 0 for a, _, _ in coef):
        # no side walls: floor and back walls have n_x = 0, so q depends on the row only and each
        # plane owns a band of whole rows
        Y1 = coords
        qmax = None
        owner = np.zeros(size, dtype=np.int32)
        for k, (_, b, c) in enumerate(coef):
            q = b * Y1 - c
            if qmax is None:
                qmax = q
            else:
                better = q > qmax
                qmax = np.where(better, q, qmax)
                owner[better] = k
        t_row = _F(1.0) / qmax  # [H] depth of each row
        zbuf[:] = _keys(t_row, owner)[:, None]
        bands = {}
        for k in range(len(coef)):
            rows = np.flatnonzero(owner == k)
            if rows.size:
                bands[k] = (int(rows[0]), int(rows[-1]) + 1)
    else:
        bands = None
        qmax = None
        code = np.empty((size, size), dtype=np.int64)
        for k, (a, b, c) in enumerate(coef):
            q = (a * X - c) + b * Y
            if qmax is None:
                qmax = q
                code.fill(k)
            else:  # a strictly larger q wins (ties: the plane drawn first)
                np.putmask(code, q > qmax, k)  # (np.copyto with where= is several times slower)
                np.maximum(qmax, q, out=qmax)
        depth = np.divide(_F(1.0), qmax, out=qmax)
        zbuf = _keys(depth, code)
    for k, pl in enumerate(scene.planes):
        if bands is not None:
            if k not in bands:
                continue
            (r0, r1), c0, c1, mw = bands[k], 0, size, None
            t = t_row[r0:r1, None]  # [h, 1]: the depth is constant along a row
        else:
            m = code == k
            rows = np.flatnonzero(m.any(1))
            if rows.size == 0:
                continue
            r0, r1 = int(rows[0]), int(rows[-1]) + 1
            cols = np.flatnonzero(m[r0:r1].any(0))
            c0, c1 = int(cols[0]), int(cols[-1]) + 1
            mw = m[r0:r1, c0:c1]
            if mw.all():
                mw = None
            t = depth[r0:r1, c0:c1]
        win = (slice(None), slice(r0, r1), slice(c0, c1))
        shade = amb + dif * max(0.0, _dot3(pl.normal, L))
        pat = None
        for j in (0, 4):
            b, o = pl.waves[j : j + 3], pl.waves[j + 3]
            if b == (0.0, 0.0, 0.0):
                continue
            bd = (_F(b[0]) * X[:, c0:c1] - _F(b[2])) + _F(b[1]) * Y[r0:r1]  # b . d, separable
            bd *= t
            bd += _F(o)
            w = np.floor(bd, out=bd)
            if pat is None:
                pat = w
            else:
                pat += w
        nrm = np.array(pl.normal, dtype=_F)[:, None, None]
        c0_ = np.array(pl.colours[0], dtype=np.float64) * shade
        col0 = c0_.astype(_F)[:, None, None]
        if pat is not None:
            dcol = (2.0 * (np.array(pl.colours[1], dtype=np.float64) * shade - c0_)).astype(_F)
            pat *= _F(0.5)
            pat -= np.floor(pat)  # parity / 2: 0 or 0.5 exactly
        if mw is None:
            normal[win] = nrm
            if pat is None:
                image[win] = col0
            else:
                out = image[win]
                np.multiply(pat[None], dcol[:, None, None], out=out)
                out += col0
        else:
            np.copyto(normal[win], nrm, where=mw)
            rgb = col0 if pat is None else col0 + pat[None] * dcol[:, None, None]
            np.copyto(image[win], rgb, where=mw)
    return zbuf


def _dot3(a, b) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


#: Columns of ``Scene.surface_table`` in the order :func:`_shade_objects` reads them: the rows of
#: the symmetric Q (Q0. Q1. Q2.), w, the two texture waves side by side (x, y, z, offset) and the
#: colours c0, c1 - c0.
_SHADE_ROWS = [
    ss.S_Q, ss.S_Q + 1, ss.S_Q + 2,  # Q00 Q01 Q02
    ss.S_Q + 1, ss.S_Q + 3, ss.S_Q + 4,  # Q10 Q11 Q12
    ss.S_Q + 2, ss.S_Q + 4, ss.S_Q + 5,  # Q20 Q21 Q22
    ss.S_W, ss.S_W + 1, ss.S_W + 2,
    ss.S_B1, ss.S_B2, ss.S_B1 + 1, ss.S_B2 + 1, ss.S_B1 + 2, ss.S_B2 + 2, ss.S_O1, ss.S_O2,
    ss.S_C0, ss.S_C0 + 1, ss.S_C0 + 2, ss.S_DC, ss.S_DC + 1, ss.S_DC + 2,
]  # fmt: skip


def _shade_objects(scene: Scene, size: int, coords, n_planes: int, depth, code, normal, image):
    """Deferred shading of every object pixel at once: normal, texture, Lambertian colour.

    The three normal components, the two texture waves and the three colour channels are each
    computed as one [3, N] or [2, N] operation (elementwise, in the order of the equations).
    Returns the surface ids [N] of the N object pixels."""
    idx = np.flatnonzero(code >= n_planes)  # surfaces after the planes' belong to objects
    if idx.size == 0:
        return idx
    rows = idx // size  # (np.nonzero of the 2-D mask is several times slower than this)
    cols = idx - rows * size
    surf = np.take(code, idx)
    t = np.take(depth, idx)
    X = np.take(coords, cols)
    Y = np.take(coords, rows)
    # per-pixel surface parameters G [26, N] (contiguous rows): gathering whole rows of the
    # [S, 26] table and transposing is several times cheaper than np.take along axis 1
    table = scene.surface_table[:, _SHADE_ROWS]  # [S, 26], C order
    G = np.ascontiguousarray(np.take(table, surf, axis=0).T)  # [26, N]
    # n = t (Q d) + w with d = (X, Y, -1): component k is t (Q_k0 X + Q_k1 Y - Q_k2) + w_k
    n = G[0:3] * X
    n += G[3:6] * Y
    n -= G[6:9]
    n *= t
    n += G[9:12]
    sq = n * n
    inv = sq[0] + sq[1]
    inv += sq[2]
    np.sqrt(inv, out=inv)
    np.divide(_F(1.0), inv, out=inv)
    n *= inv  # unit normals [3, N]
    L = scene.light
    lam = n * np.array(L, dtype=_F)[:, None]
    lam = lam[0] + lam[1] + lam[2]
    shade = _F(scene.diffuse) * np.maximum(lam, _F(0.0), out=lam)
    shade = _F(scene.ambient) + shade
    px, py = t * X, t * Y
    # the two waves floor(b . p + o) at p = t d, as [2, N]
    w = G[12:14] * px
    w += G[14:16] * py
    w -= G[16:18] * t
    w += G[18:20]
    np.floor(w, out=w)
    w = w[0] + w[1]
    w *= _F(0.5)
    w -= np.floor(w)  # parity of the pattern / 2: 0 or 0.5
    w += w
    rgb = G[23:26] * w
    rgb += G[20:23]
    rgb *= shade
    # scattered back one channel at a time: 1-D fancy assignment is numpy's fast path (several
    # times faster than assigning [3, N] through a [:, idx] index)
    normal_flat, image_flat = normal.reshape(3, -1), image.reshape(3, -1)
    for c in range(3):
        normal_flat[c][idx] = n[c]
        image_flat[c][idx] = rgb[c]
    return surf


def _render(scene: Scene, size: int) -> Buffers:
    if scene.num_surfaces > _SURFACE_MASK + 1:
        raise ValueError(
            f"a scene may have at most {_SURFACE_MASK + 1} surfaces, got {scene.num_surfaces}"
        )
    f = focal(scene, size)
    H = W = size
    ext = math.floor(EXTEND * size)
    coords = _ray_coords(-ext, size + ext, size, f)  # pixel -ext .. size + ext - 1
    inner = coords[ext : ext + size]

    normal = np.empty((3, H, W), dtype=_F)
    image = np.empty((3, H, W), dtype=_F)
    # z-buffer of keys depth_bits << 12 | surface: the bits of a non-negative float32 order like
    # its value, so the smallest key is the nearest hit and, on a tie, the lowest surface id (the
    # plane or the object drawn first, the first primitive of an object)
    zbuf = _planes(scene, size, inner, normal, image)

    full_area = np.zeros(len(scene.objects), dtype=np.int64)
    for idx, obj in enumerate(scene.objects):
        tab = obj.params
        win = _window(obj.bounds, size, f)
        if win is None:
            continue
        v0, v1, u0, u1 = win
        X = coords[u0 + ext : u1 + ext]
        Y = coords[v0 + ext : v1 + ext]
        if tab.shape[1] == 1:
            # one primitive: its parameters as float32 scalars and rays as [h, w] broadcasts
            # (numpy calls on scalars and 2-D arrays cost less than on [1, 1, 1] and 3-D ones;
            # the elementwise float32 arithmetic, hence every value, is the same)
            t, face = _INTERSECT[obj.kind](tab[:, 0], X[None, :], Y[:, None])
            key = _keys(t, int(obj.surface[0]) + face)
        else:
            # all primitives of the object at once: t [P, h, w], then the nearest per pixel
            t, face = _INTERSECT[obj.kind](
                tab[:, :, None, None], X[None, None, :], Y[None, :, None]
            )
            key = _keys(t, obj.surface[:, None, None] + face).min(axis=0)
        full_area[idx] = int(np.count_nonzero(key < _INF_KEY))
        iv0, iv1, iu0, iu1 = max(v0, 0), min(v1, H), max(u0, 0), min(u1, W)
        if iv0 >= iv1 or iu0 >= iu1:
            continue
        Z = zbuf[iv0:iv1, iu0:iu1]
        np.minimum(Z, key[iv0 - v0 : iv1 - v0, iu0 - u0 : iu1 - u0], out=Z)

    code = zbuf & _SURFACE_MASK  # [H, W] surface ids
    np.right_shift(zbuf, _SURFACE_BITS, out=zbuf)
    depth = zbuf.astype(np.int32).view(_F)
    surf = _shade_objects(scene, size, inner, len(scene.planes), depth, code, normal, image)
    np.minimum(image, _F(1.0), out=image)
    return Buffers(
        depth=depth,
        surface=code,
        normal=normal,
        image=image,
        full_area=full_area,
        surface_code=scene.surface_code,
        surface_pixels=np.bincount(surf, minlength=scene.num_surfaces),
    )


#: Low bits of a z-buffer key holding the surface id (``Scene.surface_code`` keeps 12 as well).
_SURFACE_BITS = 12
_SURFACE_MASK = (1 << _SURFACE_BITS) - 1
_INF_KEY = int(np.array(np.inf, dtype=_F).view(np.int32)) << _SURFACE_BITS


def _keys(t: np.ndarray, surface) -> np.ndarray:
    """int64 z-buffer keys ``bits(t) << 12 | surface`` of depths ``t`` (float32, > 0 or inf)."""
    key = np.left_shift(t.view(np.int32), _SURFACE_BITS, dtype=np.int64)  # int64(bits) << 12
    key |= surface
    return key
