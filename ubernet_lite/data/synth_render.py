"""Ray casting of a :class:`~ubernet_lite.data.synth_scene.Scene` into per-pixel buffers.

The camera is a pinhole at the origin looking along -z (camera coordinates: x right, y down, z
towards the camera). Pixel ``(v, u)`` of a ``size x size`` image looks along the (unnormalised)
direction ``d = ((u + 0.5 - size/2) / f, (v + 0.5 - size/2) / f, -1)``, focal length
``f = size / (2 tan(fov / 2))``. Because ``d_z = -1`` the ray parameter ``t`` of a hit *is* its
depth, and the z-buffer compares ``t`` directly.

1. Planes (floor, walls): the camera is inside the room, so a pixel sees the plane with the
   largest *inverse* depth ``q = (n . d) / offset`` (Eq. ``t = offset / (n . d)``), one full-image
   operation per plane since ``n . d`` is separable in ``(u, v)``.
2. Objects: all primitives of an object are intersected at once, as a batch ``[P, h, w]`` over
   the pixel window their bounding spheres project to (bounding-box culling), in their local frames
   (ellipsoid: a unit sphere after scaling; box: slabs; cylinder/cone: quadrics plus a cap). The
   nearest primitive per pixel wins inside the object, then the object is z-tested against the
   buffers. Windows reach past the image border (by :data:`EXTEND` image sizes) so that each object's
   unoccluded projected area can be counted (for the ``difficult`` flag).
3. Normals are analytic (gradients of the implicit surfaces, mapped to the camera frame), colours
   are a texture ``c0 + pattern * (c1 - c0)``, ``pattern = (floor(b1 . p + o1) + floor(b2 . p + o2))
   mod 2`` of the camera-space hit point ``p``, times Lambertian shading.

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
        surface: [H, W] int32 surface id (planes first, then each primitive's faces).
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


def _window(spheres: np.ndarray, size: int, f: float):
    """Pixel window ``(v0, v1, u0, u1)`` covering the projections of bounding spheres [P, 4]
    (may reach past the image by EXTEND sizes); ``None`` if nothing is in front of the camera."""
    lo_lim = -math.floor(EXTEND * size)
    hi_lim = size - lo_lim
    half = size / 2.0
    us, vs = [], []
    for cx, cy, cz, r in spheres.tolist():
        D = -cz
        if D - r <= 1e-3:  # reaches behind the camera: use the whole extended image
            us += [lo_lim, hi_lim]
            vs += [lo_lim, hi_lim]
            continue
        # x / D over the box [cx +- r] x [D +- r] is extreme at its corners (D - r > 0)
        n, fr = D - r, D + r
        xs = ((cx - r) / n, (cx - r) / fr, (cx + r) / n, (cx + r) / fr)
        ys = ((cy - r) / n, (cy - r) / fr, (cy + r) / n, (cy + r) / fr)
        us += [math.floor(min(xs) * f + half - 0.5), math.ceil(max(xs) * f + half - 0.5) + 1]
        vs += [math.floor(min(ys) * f + half - 0.5), math.ceil(max(ys) * f + half - 0.5) + 1]
    u0, u1 = max(min(us), lo_lim), min(max(us), hi_lim)
    v0, v1 = max(min(vs), lo_lim), min(max(vs), hi_lim)
    if u0 >= u1 or v0 >= v1:
        return None
    return v0, v1, u0, u1


# ----------------------------------------------------------------------------- intersections
# Batched over an object's P primitives: parameters are [P, 1, 1] rows of its table ``g``, rays
# are X = dx [1, 1, w], Y = dy [1, h, 1]; each returns t [P, h, w] (inf where missed).


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
    return t


def _t_box(g, X, Y):
    tn = tf = None
    for i in range(3):
        inv = _F(1.0) / _local_dir(g, i, X, Y)
        t1 = g[ss.R_K + 3 + i] * inv  # (-e - o) / d
        t2 = g[ss.R_K + 6 + i] * inv  # (e - o) / d
        lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
        tn = lo if tn is None else np.maximum(tn, lo)
        tf = hi if tf is None else np.minimum(tf, hi)
    tn[~((tn <= tf) & (tn > 0))] = _INF
    return tn


def _t_cylinder(g, X, Y):
    d = [_local_dir(g, i, X, Y) for i in range(3)]
    o = g[ss.R_O : ss.R_O + 3]
    r2, h, cap, c = g[ss.R_K], g[ss.R_K + 1], g[ss.R_K + 2], g[ss.R_K + 3]
    a = d[0] * d[0] + d[1] * d[1]
    b = o[0] * d[0] + o[1] * d[1]
    t = (-b - np.sqrt(b * b - a * c)) / a
    z = o[2] + t * d[2]
    t[~((t > 0) & (np.abs(z) <= h))] = _INF
    if np.any(cap != 0):  # the cap facing the camera, at local z = cap * h
        tc = (cap * h - o[2]) / d[2]
        x = o[0] + tc * d[0]
        y = o[1] + tc * d[1]
        use = (tc > 0) & (x * x + y * y <= r2) & (tc < t) & (cap != 0)
        t[use] = tc[use]
    return t


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
    if np.any(cap != 0):  # base seen from below
        tc = (-h - o[2]) / d[2]
        x = o[0] + tc * d[0]
        y = o[1] + tc * d[1]
        use = (tc > 0) & (x * x + y * y <= r2) & (tc < t) & (cap != 0)
        t[use] = tc[use]
    return t


_INTERSECT = {
    "ellipsoid": _t_ellipsoid,
    "box": _t_box,
    "cylinder": _t_cylinder,
    "cone": _t_cone,
}


# ----------------------------------------------------------------------------- winner attributes
# On the visible pixels of an object only (1-D arrays): parameters ``g`` (rows gathered by each
# pixel's primitive, or scalars for a single primitive), depth t, ray components X, Y. Each returns
# the face index and the (unnormalised) camera-space normal.


def _to_camera(g, nl):
    """n_cam = M^T n_local for the rows of M in ``g``."""
    return [nl[0] * g[j] + nl[1] * g[3 + j] + nl[2] * g[6 + j] for j in range(3)]


def _local_point(g, t, X, Y):
    return [g[ss.R_O + i] + t * _local_dir(g, i, X, Y) for i in range(3)]


def _n_ellipsoid(g, t, X, Y):
    # gradient of |M (p - c)|^2: Q (p - c) = t Q d - Q c
    k = ss.R_K + 15
    return 0, [t * ((g[k + 3 * j] * X - g[k + 3 * j + 2]) + g[k + 3 * j + 1] * Y) - g[k + 9 + j] for j in range(3)]


def _n_box(g, t, X, Y):
    p = _local_point(g, t, X, Y)
    r = [np.abs(p[i]) * g[ss.R_K + 9 + i] for i in range(3)]  # |p_i| / e_i, 1 on face i
    rmax = np.maximum(np.maximum(r[0], r[1]), r[2])
    on = [r[i] >= rmax for i in range(3)]
    nl = [on[i] * p[i] for i in range(3)]
    axis = np.where(on[2], 2, np.where(on[1], 1, 0))
    neg = (nl[0] + nl[1] + nl[2]) < 0
    return axis * 2 + neg, _to_camera(g, nl)  # faces: 0 +x, 1 -x, 2 +y, 3 -y, 4 +z, 5 -z


def _n_cylinder(g, t, X, Y):
    p = _local_point(g, t, X, Y)
    h, cap, tol = g[ss.R_K + 1], g[ss.R_K + 2], g[ss.R_K + 4]
    on_cap = (p[2] * cap) >= h * tol
    side = ~on_cap
    nl = [p[0] * side, p[1] * side, on_cap * cap]
    return on_cap * np.where(cap > 0, 1, 2), _to_camera(g, nl)  # 0 side, 1 top, 2 bottom


def _n_cone(g, t, X, Y):
    p = _local_point(g, t, X, Y)
    h, k2, cap = g[ss.R_K + 1], g[ss.R_K + 2], g[ss.R_K + 5]
    on_cap = (cap != 0) & (p[2] <= -h * _F(1 - 1e-5))
    side = ~on_cap
    nl = [p[0] * side, p[1] * side, np.where(on_cap, _F(-1.0), k2 * (h - p[2]))]
    return on_cap * 1, _to_camera(g, nl)  # 0 side, 1 base


_NORMAL = {
    "ellipsoid": _n_ellipsoid,
    "box": _n_box,
    "cylinder": _n_cylinder,
    "cone": _n_cone,
}


def _pattern(g, t, X, Y, waves: int):
    """Texture pattern in {0, 1} at the hit point p = t d (camera coordinates), or None."""
    if waves == 0:
        return None
    b, o = ss.R_B1, ss.R_O1
    w = np.floor(t * ((g[b] * X - g[b + 2]) + g[b + 1] * Y) + g[o])
    if waves == 2:
        b, o = ss.R_B2, ss.R_O2
        w += np.floor(t * ((g[b] * X - g[b + 2]) + g[b + 1] * Y) + g[o])
    w *= _F(0.5)
    w -= np.floor(w)
    return w + w  # parity of the sum of the waves: 0 or 1


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
    qmax = None
    for k, pl in enumerate(scene.planes):
        n, s = pl.normal, 1.0 / pl.offset
        q = (_F(n[0] * s) * X - _F(n[2] * s)) + _F(n[1] * s) * Y
        if qmax is None:
            qmax = q
            code.fill(k)
        else:
            better = q > qmax
            np.copyto(qmax, q, where=better)
            np.copyto(code, k, where=better)
    np.divide(_F(1.0), qmax, out=depth)
    for k, pl in enumerate(scene.planes):
        if k == 0 and len(scene.planes) == 1:
            m = None
            r0, r1, c0, c1 = 0, size, 0, size
        else:
            m = code == k
            rows = np.flatnonzero(m.any(1))
            if rows.size == 0:
                continue
            r0, r1 = int(rows[0]), int(rows[-1]) + 1
            cols = np.flatnonzero(m[r0:r1].any(0))
            c0, c1 = int(cols[0]), int(cols[-1]) + 1
        win = (slice(None), slice(r0, r1), slice(c0, c1))
        mw = None if m is None else m[r0:r1, c0:c1]
        shade = amb + dif * max(0.0, _dot3(pl.normal, L))
        t = depth[r0:r1, c0:c1]
        pat = None
        for j in (0, 4):
            b, o = pl.waves[j : j + 3], pl.waves[j + 3]
            if b == (0.0, 0.0, 0.0):
                continue
            bd = (_F(b[0]) * X[:, c0:c1] - _F(b[2])) + _F(b[1]) * Y[r0:r1]  # b . d, separable
            w = np.floor(t * bd + _F(o))
            pat = w if pat is None else pat + w
        nrm = np.array(pl.normal, dtype=_F)[:, None, None]
        c0_ = np.array(pl.colours[0], dtype=np.float64) * shade
        col0 = c0_.astype(_F)[:, None, None]
        if pat is None:
            rgb = col0
        else:
            dcol = (2.0 * (np.array(pl.colours[1], dtype=np.float64) * shade - c0_)).astype(_F)
            pat *= _F(0.5)
            pat -= np.floor(pat)  # parity / 2: 0 or 0.5 exactly
            rgb = col0 + pat[None] * dcol[:, None, None]
        if mw is None:
            normal[win] = nrm
            image[win] = rgb
        else:
            np.copyto(normal[win], nrm, where=mw)
            np.copyto(image[win], rgb, where=mw)


def _dot3(a, b) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _render(scene: Scene, size: int) -> Buffers:
    f = focal(scene, size)
    H = W = size
    ext = math.floor(EXTEND * size)
    coords = _ray_coords(-ext, size + ext, size, f)  # pixel -ext .. size + ext - 1
    inner = coords[ext : ext + size]
    L = tuple(_F(x) for x in scene.light)
    amb, dif = _F(scene.ambient), _F(scene.diffuse)

    depth = np.empty((H, W), dtype=_F)
    code = np.empty((H, W), dtype=np.int32)  # surface | part << 12 | instance << 16 | class << 24
    normal = np.empty((3, H, W), dtype=_F)
    image = np.empty((3, H, W), dtype=_F)
    _planes(scene, size, inner, depth, code, normal, image)
    depth_f, code_f = depth.reshape(-1), code.reshape(-1)
    normal_f, image_f = normal.reshape(3, -1), image.reshape(3, -1)

    full_area = np.zeros(len(scene.objects), dtype=np.int64)
    for idx, obj in enumerate(scene.objects):
        win = _window(obj.spheres, size, f)
        if win is None:
            continue
        v0, v1, u0, u1 = win
        tab = obj.params
        P = tab.shape[1]
        X = coords[u0 + ext : u1 + ext]
        Y = coords[v0 + ext : v1 + ext]
        t_all = _INTERSECT[obj.kind](tab[:, :, None, None], X[None, None, :], Y[None, :, None])
        if P == 1:
            t = t_all[0]
        else:
            k = t_all.argmin(axis=0)
            t = t_all.min(axis=0)
        full_area[idx] = int(np.count_nonzero(t < _INF))
        # the part of the window inside the image, and its pixels where this object is in front
        iv0, iv1, iu0, iu1 = max(v0, 0), min(v1, H), max(u0, 0), min(u1, W)
        if iv0 >= iv1 or iu0 >= iu1:
            continue
        crop = (slice(iv0 - v0, iv1 - v0), slice(iu0 - u0, iu1 - u0))
        t = t[crop]
        rows, cols = np.nonzero(t < depth[iv0:iv1, iu0:iu1])
        if rows.size == 0:
            continue
        tc = t[rows, cols]
        Xc = X[cols + (iu0 - u0)]
        Yc = Y[rows + (iv0 - v0)]
        codes = (
            obj.surface + (obj.part << 12) + ((idx + 1) << 16) + (obj.cls << 24)
        ).astype(np.int32)
        if P == 1:
            g = tab[:, 0]
            cc = codes[0]
        else:
            kc = k[crop][rows, cols]
            g = tab[:, kc]
            cc = codes[kc]
        face, n = _NORMAL[obj.kind](g, tc, Xc, Yc)
        inv = _F(1.0) / np.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2])
        nrm = np.empty((3, tc.size), dtype=_F)
        for j in range(3):
            np.multiply(n[j], inv, out=nrm[j])
        lam = nrm[0] * L[0] + nrm[1] * L[1] + nrm[2] * L[2]
        shade = amb + dif * np.maximum(lam, _F(0.0))
        pat = _pattern(g, tc, Xc, Yc, obj.waves)
        rgb = np.empty((3, tc.size), dtype=_F)
        for j in range(3):
            c0 = g[ss.R_C0 + j]
            np.multiply(c0 if pat is None else c0 + pat * g[ss.R_DC + j], shade, out=rgb[j])
        gi = (rows + iv0) * W + (cols + iu0)
        depth_f[gi] = tc
        code_f[gi] = cc + face
        normal_f[:, gi] = nrm
        image_f[:, gi] = rgb
    np.minimum(image, _F(1.0), out=image)
    return Buffers(
        depth=depth,
        surface=code & 0xFFF,
        instance=((code >> 16) & 0xFF).astype(np.uint8),
        semantic=(code >> 24).astype(np.uint8),
        part=((code >> 12) & 0xF).astype(np.uint8),
        normal=normal,
        image=image,
        full_area=full_area,
        code=code,
    )
