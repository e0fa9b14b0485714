"""Invariants of the synthetic world (``ubernet_lite.data.synthetic``): the sample format of
docs/internals.md, geometry (unit normals facing the camera), label consistency (boxes, boundaries,
semantic boundaries, saliency, parts), determinism, disjoint splits and clear errors."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from ubernet_lite.data.synth_render import focal
from ubernet_lite.data.synthetic import (
    DIFFICULT_VISIBLE_SHARE,
    SPLITS,
    SynthWorld,
    _boxes,
    boundary_maps,
    render_sample,
    render_scene,
)
from ubernet_lite.tasks import PART_NAMES, SYNTH_CLASSES, TARGETS

K = len(SYNTH_CLASSES)
STYLES = ("scene", "indoor", "msra")


@pytest.fixture(scope="module")
def samples():
    """A few samples of every style at 64 and 96 px (with their renders, for surface ids)."""
    out = []
    for style in STYLES:
        for size, idx in ((64, 0), (96, 1), (96, 2)):
            scene, buf = render_scene(0, "train", idx, size, style)
            out.append((style, size, idx, scene, buf, render_sample(0, "train", idx, size, style)))
    return out


def _pairs(a: np.ndarray):
    """The two sides of every vertical and horizontal 4-neighbour pair of [H, W] ``a``."""
    return ((a[:-1, :], a[1:, :]), (a[:, :-1], a[:, 1:]))


def test_sample_format(samples):
    for _style, size, idx, _scene, _buf, s in samples:
        H = W = size
        n = s["boxes"].shape[0]
        assert s["image"].dtype == torch.float32 and s["image"].shape == (3, H, W)
        assert float(s["image"].min()) >= 0 and float(s["image"].max()) <= 1
        assert s["normals"].dtype == torch.float32 and s["normals"].shape == (3, H, W)
        for key in ("semantic", "parts", "instances"):
            assert s[key].dtype == torch.int64 and s[key].shape == (H, W), key
        for key in ("boundaries", "saliency"):
            assert s[key].dtype == torch.uint8 and s[key].shape == (H, W), key
            assert set(s[key].unique().tolist()) <= {0, 1}
        assert s["semantic_boundaries"].dtype == torch.uint8
        assert s["semantic_boundaries"].shape == (K, H, W)
        assert s["boxes"].dtype == torch.float32 and s["boxes"].shape == (n, 4) and n >= 1
        assert s["labels"].dtype == torch.int64 and s["labels"].shape == (n,)
        assert s["difficult"].dtype == torch.bool and s["difficult"].shape == (n,)
        assert int(s["labels"].min()) >= 1 and int(s["labels"].max()) <= K
        assert int(s["semantic"].max()) <= K and int(s["parts"].max()) <= len(PART_NAMES)
        assert int(s["instances"].max()) == n
        assert s["has_label"] == {t: True for t in TARGETS}
        assert s["meta"]["dataset"] == "synthetic"
        assert s["meta"]["split"] == "train" and s["meta"]["index"] == idx


def test_normals_unit_and_facing_the_camera(samples):
    for _style, size, _idx, scene, buf, s in samples:
        n = s["normals"].numpy().astype(np.float64)
        assert np.abs(np.sqrt((n**2).sum(0)) - 1).max() < 1e-4
        # every visible surface faces the camera: n . d <= 0 for the pixel's viewing ray d
        f = focal(scene, size)
        c = (np.arange(size) + 0.5 - size / 2) / f
        dot = n[0] * c[None, :] + n[1] * c[:, None] - n[2]
        assert dot.max() < 1e-3
        # the floor (surface 0) is one plane: its normal is the same at every floor pixel
        floor = buf.surface == 0
        assert floor.any()
        assert np.abs(n[:, floor] - n[:, floor][:, :1]).max() < 1e-5


def test_depth_everywhere(samples):
    for *_, buf, _s in samples:
        assert np.isfinite(buf.depth).all() and (buf.depth > 0).all()


def test_boxes_are_mask_extents(samples):
    for *_, s in samples:
        inst = s["instances"]
        for i, box in enumerate(s["boxes"]):
            ys, xs = torch.nonzero(inst == i + 1, as_tuple=True)
            expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert box.tolist() == [float(v) for v in expected]
            # the instance has one class, the label
            assert set(s["semantic"][inst == i + 1].unique().tolist()) == {int(s["labels"][i])}


def test_labels_agree(samples):
    person = SYNTH_CLASSES.index("person") + 1
    for *_, s in samples:
        sem, parts, inst = s["semantic"], s["parts"], s["instances"]
        assert torch.equal(sem == 0, inst == 0)  # background is exactly the non-object pixels
        assert torch.equal(parts > 0, sem == person)  # every person pixel has a part, only those


def test_boundaries_lie_where_labels_change(samples):
    for *_, buf, s in samples:
        b = s["boundaries"].numpy().astype(bool)
        surf = buf.surface
        # (1) every pair of 4-neighbours on different surfaces (instance, part, plane or face) has
        # a boundary on one of its two pixels
        for (pa, pb), (sa, sb) in zip(_pairs(b), _pairs(surf), strict=True):
            change = sa != sb
            assert (pa | pb)[change].all()
        # the same from the sample's own labels: instance or part changes are boundaries
        for key in ("instances", "parts"):
            lab = s[key].numpy()
            for (pa, pb), (la, lb) in zip(_pairs(b), _pairs(lab), strict=True):
                assert (pa | pb)[la != lb].all(), key
        # (2) a boundary pixel has a 4-neighbour on another surface
        near_change = np.zeros_like(b)
        for (ia, ib), (sa, sb) in zip(
            (((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
             ((slice(None), slice(None, -1)), (slice(None), slice(1, None)))),
            _pairs(surf),
            strict=True,
        ):  # fmt: skip
            near_change[ia] |= sa != sb
            near_change[ib] |= sa != sb
        assert not (b & ~near_change).any()
        assert b.any()


def test_semantic_boundaries_subset_of_boundaries(samples):
    for *_, s in samples:
        sb = s["semantic_boundaries"].numpy().astype(bool)
        b = s["boundaries"].numpy().astype(bool)
        assert not (sb & ~b[None]).any()
        sem = s["semantic"].numpy()
        for k in range(K):
            # a class-k contour pixel is of class k or next to a pixel of class k
            is_k = np.pad(sem == k + 1, 1)
            near_k = (
                is_k[1:-1, 1:-1]
                | is_k[:-2, 1:-1]
                | is_k[2:, 1:-1]
                | is_k[1:-1, :-2]
                | is_k[1:-1, 2:]
            )
            assert not (sb[k] & ~near_k).any()
            if (sem == k + 1).any():
                assert sb[k].any()  # every visible class has a contour
            else:
                assert not sb[k].any()


def test_texture_edges_are_not_boundaries():
    found = 0
    for idx in range(6):
        scene, buf = render_scene(3, "val", idx, 96, "scene")
        s = render_sample(3, "val", idx, 96, "scene")
        img = s["image"].numpy()
        b = s["boundaries"].numpy().astype(bool)
        surf = buf.surface
        # pixels whose whole 3x3 neighbourhood lies on one surface
        pad = np.pad(surf, 1, mode="edge")
        same = np.ones_like(b)
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                same &= pad[dy : dy + surf.shape[0], dx : dx + surf.shape[1]] == surf
        grad = np.zeros(b.shape)
        grad[:, :-1] = np.abs(img[:, :, 1:] - img[:, :, :-1]).max(0)
        texture_edge = same & (grad > 0.15)
        found += int(texture_edge.sum())
        assert not (b & texture_edge).any()
    assert found > 0  # the scenes do have strong texture edges inside surfaces


def test_saliency_is_one_object(samples):
    for style, *_, s in samples:
        sal = s["saliency"].bool()
        inst = s["instances"]
        ids = inst[sal].unique().tolist()
        assert len(ids) == 1 and ids[0] >= 1
        assert torch.equal(sal, inst == ids[0])  # the whole visible object
        areas = torch.bincount(inst.flatten())[1:]
        assert int(areas[ids[0] - 1]) == int(areas.max())  # the dominant one
        if style == "msra":
            assert int(inst.max()) == 1 and float(sal.float().mean()) > 0.02


def test_difficult_is_consistent(samples):
    for *_, scene, buf, s in samples:
        per_object = np.bincount(buf.instance.ravel(), minlength=len(scene.objects) + 1)[1:]
        keep = np.flatnonzero(per_object)
        visible, full = per_object[keep], buf.full_area[keep]
        assert np.array_equal(visible, torch.bincount(s["instances"].flatten())[1:].numpy())
        assert (full >= visible).all()  # the unoccluded projection holds the visible pixels
        assert np.array_equal(s["difficult"].numpy(), visible < DIFFICULT_VISIBLE_SHARE * full)


def test_indoor_has_walls():
    s = render_sample(0, "test", 5, 64, "indoor")
    n = s["normals"].numpy()
    bg = s["semantic"].numpy() == 0
    distinct = {tuple(np.round(v, 3)) for v in n[:, bg].T}
    assert len(distinct) >= 2  # floor and at least one wall are in view


def test_determinism_and_index_order():
    a = SynthWorld("val", size=64, seed=7, length=4)
    b = SynthWorld("val", size=64, seed=7, length=4)
    forward = [a[i] for i in range(4)]
    backward = [b[i] for i in reversed(range(4))][::-1]
    for x, y in zip(forward, backward, strict=True):
        for key in ("image", "normals", "semantic", "parts", "instances", "boundaries",
                    "semantic_boundaries", "saliency", "boxes", "labels", "difficult"):  # fmt: skip
            assert torch.equal(x[key], y[key]), key
    assert torch.equal(a[-1]["image"], forward[3]["image"])
    assert torch.equal(render_sample(7, "val", 2, 64)["image"], forward[2]["image"])
    other_seed = SynthWorld("val", size=64, seed=8, length=4)
    assert not torch.equal(other_seed[0]["image"], forward[0]["image"])


def test_splits_disjoint():
    images = {}
    for split in SPLITS:
        world = SynthWorld(split, size=64, seed=0, length=6)
        images[split] = [world[i]["image"].numpy().tobytes() for i in range(6)]
    seen = [img for split in SPLITS for img in images[split]]
    assert len(set(seen)) == len(seen)


def test_any_size_from_64():
    for size in (64, 81):
        s = SynthWorld("train", size=size, length=1)[0]
        assert s["image"].shape == (3, size, size)


def test_bad_input():
    with pytest.raises(ValueError, match="64"):
        SynthWorld(size=16)
    with pytest.raises(ValueError, match="train"):
        SynthWorld(split="validation")
    with pytest.raises(ValueError, match="msra"):
        SynthWorld(style="cartoon")
    with pytest.raises(ValueError, match="length"):
        SynthWorld(length=-1)
    world = SynthWorld(size=64, length=3)
    with pytest.raises(IndexError):
        world[3]
    with pytest.raises(TypeError):
        world["0"]


# ----------------------------------------------------------------------------- the fast paths
# The renderer and the label maps use sparse and packed shortcuts; these tests hold them to plain
# dense reference computations and to the exact bits of samples rendered before the shortcuts.


def _dense_boundary_maps(surface, depth, instances, semantic, K):
    """Reference: the same rule as ``boundary_maps``, one dense comparison per neighbour pair."""
    H, W = surface.shape
    bnd = np.zeros((H, W), dtype=np.uint8)
    sem = np.zeros((K + 1, H, W), dtype=np.uint8)
    for dy, dx in ((1, 0), (0, 1)):
        for y in range(H - dy):
            for x in range(W - dx):
                y2, x2 = y + dy, x + dx
                if surface[y, x] == surface[y2, x2]:
                    continue
                py, px = (y2, x2) if depth[y2, x2] < depth[y, x] else (y, x)
                bnd[py, px] = 1
                if instances[y, x] != instances[y2, x2]:
                    sem[semantic[y, x], py, px] = 1
                    sem[semantic[y2, x2], py, px] = 1
    return bnd, sem[1:]


def test_boundary_maps_match_dense_reference():
    rng = np.random.default_rng(0)
    K = 3
    for H, W in ((9, 9), (7, 12)):
        inst = rng.integers(0, 4, (H, W))
        surface = inst * 3 + rng.integers(0, 2, (H, W))  # two faces per instance
        depth = rng.integers(1, 4, (H, W)).astype(np.float32)  # many ties
        semantic = np.where(inst > 0, inst % K + 1, 0)
        got = boundary_maps(surface, depth, inst, semantic, K)
        ref = _dense_boundary_maps(surface, depth, inst, semantic, K)
        for g, r in zip(got, ref, strict=True):
            assert g.dtype == np.uint8 and np.array_equal(g, r)
    one = np.zeros((5, 5), dtype=np.int64)  # a single surface: no boundary at all
    b, sb = boundary_maps(one, np.ones((5, 5), np.float32), one, one, K)
    assert not b.any() and not sb.any() and sb.shape == (K, 5, 5)


def _box_reference(inst, n):
    out = []
    for i in range(1, n + 1):
        ys, xs = np.nonzero(inst == i)
        out.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.array(out, dtype=np.float32).reshape(n, 4)


def test_boxes_every_path_matches_reference():
    rng = np.random.default_rng(1)
    for (H, W), n in (((16, 16), 5), ((12, 20), 5), ((16, 16), 40), ((30, 30), 70)):
        inst = rng.integers(0, n + 1, (H, W))
        inst.flat[: n + 1] = np.arange(n + 1)  # every instance present
        ref = _box_reference(inst, n)
        assert np.array_equal(_boxes(inst, n), ref)  # word bits, or bincount beyond 62
        if n <= 32:
            bits = np.where(inst > 0, np.left_shift(1, np.maximum(inst, 1) - 1), 0)
            assert np.array_equal(_boxes(inst, n, bits), ref)
    assert _boxes(np.zeros((4, 4), dtype=np.int64), 0).shape == (0, 4)


def test_buffers_labels_are_lookups_of_the_surface():
    scene, buf = render_scene(0, "train", 4, 64, "scene")
    code = buf.code
    assert np.array_equal(code & 0xFFF, buf.surface)
    assert np.array_equal(buf.instance, (code >> 16) & 0xFF)
    assert np.array_equal(buf.semantic, code >> 24)
    assert np.array_equal(buf.part, (code >> 12) & 0xF)
    # an object's first surface id follows its predecessor's surfaces
    firsts = [int(o.surface[0]) for o in scene.objects]
    assert firsts == sorted(firsts) and firsts[0] == len(scene.planes)
    obj = scene.objects[0]
    assert obj.spheres.shape == (obj.params.shape[1], 4)
    assert obj.part.shape == (obj.params.shape[1],)


#: sha256 (first 32 hex digits) over every target of a sample, recorded from the renderer before
#: its speed-ups; a sample is a pure function of (seed, split, index, size, style). If the world is
#: changed on purpose, update these (and the notebooks' stored data-set statistics).
GOLDEN = {
    ("scene", 3): "6ab5ae4320778e3ba3a4d552ed021ead",
    ("indoor", 1): "f160454c7b752c634fd4412eda46b583",
    ("msra", 2): "bb1005da4f2a59ff8776ae1e929a6b5b",
}


def test_samples_are_bit_identical_to_the_recorded_ones():
    keys = ("image", "normals", "semantic", "parts", "instances", "boundaries",
            "semantic_boundaries", "saliency", "boxes", "labels", "difficult")  # fmt: skip
    for (style, idx), digest in GOLDEN.items():
        s = render_sample(0, "train", idx, 64, style)
        h = hashlib.sha256()
        for k in keys:
            h.update(s[k].numpy().tobytes())
        assert h.hexdigest()[:32] == digest, (style, idx)


def test_bench_measures_and_prints(capsys):
    from ubernet_lite.bench import data as bench

    r = bench.measure(64, bench.CHUNK + 1)
    assert r["n"] == bench.CHUNK + 1 and r["wall_s"] > 0
    assert r["wall_rate"] > 0 and r["median_chunk_rate"] > 0 and len(r["chunk_rates"]) == 1
    # the median over rounds, with the slowest and fastest round
    rounds = [dict(r, wall_rate=v, cpu_rate=v) for v in (300.0, 100.0, 200.0)]
    m = bench.summarize(rounds)
    assert (m["wall_rate"], m["wall_min"], m["wall_max"], m["runs"]) == (200.0, 100.0, 300.0, 3)
    bench.main(["--sizes", "64", "--n", "3", "--repeats", "2"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("SynthWorld benchmark: style=scene") and "median of 2 rounds" in out[0]
    assert "64 px:" in out[1] and "samples/s wall-clock (rounds" in out[1]
    assert "2 x 3 samples" in out[1]
    assert "median over chunks" in out[2]
    with pytest.raises(SystemExit):
        bench.main(["--repeats", "0"])
