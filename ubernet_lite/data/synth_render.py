"""Ray casting of a :class:`~ubernet_lite.data.synth_scene.Scene` into per-pixel buffers.

The camera is a pinhole at the origin looking along -z (camera coordinates: x right, y down, z
towards the camera). Pixel ``(v, u)`` of a ``size x size`` image looks along the (unnormalised)
direction ``d = ((u + 0.5 - size/2) / f, (v + 0.5 - size/2) / f, -1)``, focal length
``f = size / (2 tan(fov / 2))``. Because ``d_z = -1`` the ray parameter ``t`` of a hit *is* its
depth, and the z-buffer compares ``t`` directly.

1. Planes (floor, walls): the camera is inside the room, so a pixel sees the plane with the
   largest *inverse* depth ``q = (n . d) / offset`` (from ``t = offset / (n . d)``), one full-image
   operation per plane since ``n . d`` is separable in ``(u, v)``; planes are shaded right away.
2. Objects: each primitive is intersected in its local frame (ellipsoid: a unit sphere after
   scaling, with ``a``, ``b`` and the discriminant as quadratic polynomials of the pixel
   coordinates; box: slabs; can/cone: quadric plus cap), only over the pixel window it projects to
   (bounding-box culling; the ten ellipsoids of a person as one batch ``[P, h, w]``), and z-tested
   into the depth and surface-id buffers. Windows reach past the image border (by :data:`EXTEND`
   image sizes) so that each object's unoccluded projected area can be counted (``difficult``).
3. Deferred shading of all object pixels at once: every surface has a normal model
   ``n = t (Q d) + w`` (the gradient of its implicit function: ``Q`` = 0 for flat faces), a texture
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

from . import synth_scene as ss
from .synth_scene import Scene

_F = np.float32
_INF = _F(np.inf)
#: Object windows extend this many image sizes past each border (for the truncation measure).
EXTEND = 0.5


@dataclass
class Buffers:
    """Per-pixel result of ray casting a scene.

    Attributes:
        depth: [H, W] float32 camera depth of the nearest hit.
        surface: [H, W] int16 surface id (planes first, then each primitive's faces).
        instance: [H, W] uint8 object index + 1 (0 for planes).
        semantic: [H, W] uint8 class 1..K (0 for planes).
        part: [H, W] uint8 person part 1..6 (0 elsewhere).
        normal: [3, H, W] float32 unit normals, camera coordinates.
        image: [3, H, W] float32 shaded colour in [0, 1].
        full_area: [num_objects] int64, pixels of each object's unoccluded projection, counted on
            the image extended by :data:`EXTEND` sizes past its borders.
        code: [H, W] int32 packed ``surface | part << 12 | instance << 16 | class << 24``.
    """

    depth: np.ndarray
    surface: np.ndarray
    instance: np.ndarray
    semantic: np.ndarray
    part: np.ndarray
    normal: np.ndarray
    image: np.ndarray
    full_area: np.ndarray
    code: np.ndarray


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
# Parameters are rows of an object's table ``g`` shaped [P, 1, 1] (ellipsoids: all P primitives as
# one batch) or [1, 1] (one primitive), rays X = dx [.., 1, w], Y = dy [.., h, 1]. Each returns the
# depth t (inf where missed) and the face index of the hit (an int array or 0).


def _local_dir(g, i, X, Y):
    """Component i of the local ray direction, d_l = M d with d = (X, Y, -1)."""
    return (g[3 * i] * X - g[3 * i + 2]) + g[3 * i + 1] * Y


def _t_ellipsoid(g, X, Y):
    k = ss.R_K
    X2, Y2, XY = X * X, Y * Y, X * Y
    # a t^2 + 2 b t + cc = 0 with a, b, disc = b^2 - a cc quadratic polynomials in (X, Y)
    a = ((g[k] * X2 + g[k + 1] * X + g[k + 2]) + (g[k + 3] * Y2 + g[k + 4] * Y)) + g[k + 5] * XY
    b = (g[k + 6] * X + g[k + 8]) + g[k + 7] * Y
    disc = ((g[k + 9] * X2 + g[k + 10] * X + g[k + 11]) + (g[k + 12] * Y2 + g[k + 13] * Y)) + g[
        k + 14
    ] * XY
    t = np.sqrt(disc)  # NaN where the ray misses: every comparison with NaN is False
    t += b
    t /= a
    np.negative(t, out=t)  # t = (-b - sqrt(disc)) / a, the nearer root
    t[~(t > 0)] = _INF
    return t, 0


def _t_box(g, X, Y):
    tn = tf = None
    tns = []
    for i in range(3):
        inv = _F(1.0) / _local_dir(g, i, X, Y)
        t1 = g[ss.R_K + 3 + i] * inv  # (-e - o) / d
        t2 = g[ss.R_K + 6 + i] * inv  # (e - o) / d
        lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
        tns.append(lo)
        tn = lo if tn is None else np.maximum(tn, lo)
        tf = hi if tf is None else np.minimum(tf, hi)
    tn[~((tn <= tf) & (tn > 0))] = _INF
    # the entry face: on the axis whose slab is entered last, the side the camera is on
    faces = [(g[ss.R_O + i] < 0) + 2 * i for i in range(3)]  # [P, 1, 1] each
    face = np.where(tn == tns[0], faces[0], np.where(tn == tns[1], faces[1], faces[2]))
    return tn, face


def _t_cylinder(g, X, Y):
    d = [_local_dir(g, i, X, Y) for i in range(3)]
    o = g[ss.R_O : ss.R_O + 3]
    r2, h, cap, c = g[ss.R_K], g[ss.R_K + 1], g[ss.R_K + 2].item(), g[ss.R_K + 3]
    a = d[0] * d[0] + d[1] * d[1]
    b = o[0] * d[0] + o[1] * d[1]
    t = (-b - np.sqrt(b * b - a * c)) / a
    z = o[2] + t * d[2]
    t[~((t > 0) & (np.abs(z) <= h))] = _INF
    if cap == 0:
        return t, 0
    tc = (cap * h - o[2]) / d[2]  # the cap facing the camera, at local z = cap * h
    x = o[0] + tc * d[0]
    y = o[1] + tc * d[1]
    use = (tc > 0) & (x * x + y * y <= r2) & (tc < t)
    t[use] = tc[use]
    return t, use * (1 if cap > 0 else 2)  # faces: 0 side, 1 top, 2 bottom


def _t_cone(g, X, Y):
    d = [_local_dir(g, i, X, Y) for i in range(3)]
    o = g[ss.R_O : ss.R_O + 3]
    r2, h, k2, w, c, cap = (g[ss.R_K + i] for i in range(6))
    a = d[0] * d[0] + d[1] * d[1] - k2 * d[2] * d[2]
    b = o[0] * d[0] + o[1] * d[1] + (k2 * w) * d[2]
    sq = np.sqrt(b * b - a * c)
    t = np.full(np.broadcast_shapes(a.shape, sq.shape), _INF, dtype=_F)
    for root in ((-b - sq) / a, (-b + sq) / a):
        z = o[2] + root * d[2]
        good = (root > 0) & (z <= h) & (z >= -h) & (root < t)
        t[good] = root[good]
    if cap.item() == 0:
        return t, 0
    tc = (-h - o[2]) / d[2]  # the base, seen from below
    x = o[0] + tc * d[0]
    y = o[1] + tc * d[1]
    use = (tc > 0) & (x * x + y * y <= r2) & (tc < t)
    t[use] = tc[use]
    return t, use * 1  # faces: 0 side, 1 base


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


def _planes(scene: Scene, size: int, coords: np.ndarray, depth, code, normal, image) -> None:
    """Fill the buffers with the planes: the largest inverse depth q = (n . d) / offset wins."""
    X, Y = coords[None, :], coords[:, None]  # square image: rows and columns share coordinates
    L = scene.light
    amb, dif = scene.ambient, scene.diffuse
    coef = []  # q = a X + b Y - c, with (a, b, c) = n / offset
    for pl in scene.planes:
        n, s = pl.normal, 1.0 / pl.offset
        coef.append((_F(n[0] * s), _F(n[1] * s), _F(n[2] * s)))
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
        depth[:] = (_F(1.0) / qmax)[:, None]
        code[:] = owner[:, None]
        bands = {}
        for k in range(len(coef)):
            rows = np.flatnonzero(owner == k)
            if rows.size:
                bands[k] = (int(rows[0]), int(rows[-1]) + 1)
    else:
        bands = None
        qmax = None
        for k, (a, b, c) in enumerate(coef):
            q = (a * X - c) + b * Y
            if qmax is None:
                qmax = q
                code.fill(k)
            else:
                better = q > qmax
                np.copyto(qmax, q, where=better)
                np.copyto(code, k, where=better)
        np.divide(_F(1.0), qmax, out=depth)
    for k, pl in enumerate(scene.planes):
        if bands is not None:
            if k not in bands:
                continue
            (r0, r1), c0, c1, mw = bands[k], 0, size, None
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
        win = (slice(None), slice(r0, r1), slice(c0, c1))
        shade = amb + dif * max(0.0, _dot3(pl.normal, L))
        t = depth[r0:r1, c0:c1]
        pat = None
        for j in (0, 4):
            b, o = pl.waves[j : j + 3], pl.waves[j + 3]
            if b == (0.0, 0.0, 0.0):
                continue
            bd = (_F(b[0]) * X[:, c0:c1] - _F(b[2])) + _F(b[1]) * Y[r0:r1]  # b . d, separable
            bd *= t
            bd += _F(o)
            w = np.floor(bd, out=bd)
            pat = w if pat is None else pat + w
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


def _dot3(a, b) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _shade_objects(scene: Scene, size: int, coords, n_planes: int, depth, code, normal, image):
    """Deferred shading of every object pixel at once: normal, texture, Lambertian colour."""
    W = size
    code_f = code.reshape(-1)
    idx = np.flatnonzero(code_f >= n_planes)  # code holds bare surface ids until the end
    if idx.size == 0:
        return
    surf = code_f[idx]
    t = depth.reshape(-1)[idx]
    X = coords[idx % W]
    Y = coords[idx // W]
    G = np.take(scene.surface_table.T, surf, axis=1)  # [23, N], contiguous rows
    q = G[ss.S_Q : ss.S_Q + 6]
    # n = t (Q d) + w with d = (X, Y, -1), Q symmetric
    n0 = t * (q[0] * X + q[1] * Y - q[2]) + G[ss.S_W]
    n1 = t * (q[1] * X + q[3] * Y - q[4]) + G[ss.S_W + 1]
    n2 = t * (q[2] * X + q[4] * Y - q[5]) + G[ss.S_W + 2]
    inv = _F(1.0) / np.sqrt(n0 * n0 + n1 * n1 + n2 * n2)
    nrm = np.stack((n0 * inv, n1 * inv, n2 * inv))
    L = scene.light
    lam = nrm[0] * _F(L[0]) + nrm[1] * _F(L[1]) + nrm[2] * _F(L[2])
    shade = _F(scene.ambient) + _F(scene.diffuse) * np.maximum(lam, _F(0.0))
    px, py = t * X, t * Y
    b = G[ss.S_B1 : ss.S_O2 + 1]
    w = np.floor(b[0] * px + b[1] * py - b[2] * t + b[3])
    w += np.floor(b[4] * px + b[5] * py - b[6] * t + b[7])
    w *= _F(0.5)
    w -= np.floor(w)  # parity of the pattern / 2: 0 or 0.5
    w += w
    rgb = G[ss.S_C0 : ss.S_C0 + 3] + w * G[ss.S_DC : ss.S_DC + 3]
    rgb *= shade
    normal.reshape(3, -1)[:, idx] = nrm
    image.reshape(3, -1)[:, idx] = rgb


def _render(scene: Scene, size: int) -> Buffers:
    f = focal(scene, size)
    H = W = size
    ext = math.floor(EXTEND * size)
    coords = _ray_coords(-ext, size + ext, size, f)  # pixel -ext .. size + ext - 1
    inner = coords[ext : ext + size]

    depth = np.empty((H, W), dtype=_F)
    code = np.empty((H, W), dtype=np.int32)  # surface ids while casting rays
    normal = np.empty((3, H, W), dtype=_F)
    image = np.empty((3, H, W), dtype=_F)
    _planes(scene, size, inner, depth, code, normal, image)

    full_area = np.zeros(len(scene.objects), dtype=np.int64)
    for idx, obj in enumerate(scene.objects):
        tab = obj.params
        P = tab.shape[1]
        win = _window(obj.bounds, size, f)
        if win is None:
            continue
        v0, v1, u0, u1 = win
        X = coords[u0 + ext : u1 + ext]
        Y = coords[v0 + ext : v1 + ext]
        # all primitives of the object at once: t_all [P, h, w], then the nearest per pixel
        t_all, face = _INTERSECT[obj.kind](
            tab[:, :, None, None], X[None, None, :], Y[None, :, None]
        )
        surf0 = obj.surface
        if P == 1:
            t = t_all[0]
            surf = int(surf0[0]) + (face[0] if np.ndim(face) else face)
        else:
            k = t_all.argmin(axis=0)
            t = t_all.min(axis=0)
            if np.ndim(face):
                surf = np.take_along_axis(face + surf0[:, None, None], k[None], axis=0)[0]
            else:
                surf = surf0[k]
        hit = t < _INF
        full_area[idx] = int(np.count_nonzero(hit))
        iv0, iv1, iu0, iu1 = max(v0, 0), min(v1, H), max(u0, 0), min(u1, W)
        if iv0 >= iv1 or iu0 >= iu1:
            continue
        crop = (slice(iv0 - v0, iv1 - v0), slice(iu0 - u0, iu1 - u0))
        t = t[crop]
        D = depth[iv0:iv1, iu0:iu1]
        m = t < D
        np.copyto(D, t, where=m)
        np.copyto(code[iv0:iv1, iu0:iu1], surf[crop] if np.ndim(surf) else surf, where=m)

    _shade_objects(scene, size, inner, len(scene.planes), depth, code, normal, image)
    np.minimum(image, _F(1.0), out=image)
    code = scene.surface_code[code]
    return Buffers(
        depth=depth,
        surface=(code & 0xFFF).astype(np.int16),
        instance=((code >> 16) & 0xFF).astype(np.uint8),
        semantic=(code >> 24).astype(np.uint8),
        part=((code >> 12) & 0xF).astype(np.uint8),
        normal=normal,
        image=image,
        full_area=full_area,
        code=code,
    )
