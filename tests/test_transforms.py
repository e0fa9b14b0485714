"""Geometry of the joint transforms: flips, crops, scales move every label with the image."""

import pytest
import torch

from ubernet_lite.data import (
    ColorJitter,
    RandomCrop,
    RandomScale,
    TransformedDataset,
    crop,
    hflip,
    resize,
    train_transforms,
)
from ubernet_lite.data import SynthWorld as world

SIZE = 64


@pytest.fixture(scope="module")
def samples():
    w = world(split="train", size=SIZE, seed=0)
    return [w[i] for i in range(6)]


def extents(instances: torch.Tensor, n: int) -> torch.Tensor:
    """[n, 4] xyxy boxes of instance masks 1..n, continuous coordinates (max + 1)."""
    out = []
    for k in range(1, n + 1):
        ys, xs = torch.nonzero(instances == k, as_tuple=True)
        out.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return torch.tensor(out, dtype=torch.float32).reshape(-1, 4)


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k, v in a.items():
        if isinstance(v, torch.Tensor):
            assert v.dtype == b[k].dtype and torch.equal(v, b[k]), k
        else:
            assert v == b[k], k


def test_world_boxes_are_instance_extents(samples):
    """The convention the transforms rely on (docs: box = [min x, min y, max x + 1, max y + 1])."""
    for s in samples:
        assert torch.equal(s["boxes"], extents(s["instances"], len(s["boxes"])))


def test_flip_twice_is_identity(samples):
    for s in samples:
        assert_same(hflip(hflip(s)), s)


def test_flip_moves_everything(samples):
    s = samples[0]
    f = hflip(s)
    assert torch.equal(f["image"], s["image"].flip(-1))
    assert torch.equal(f["semantic_boundaries"], s["semantic_boundaries"].flip(-1))
    assert torch.equal(f["normals"][0], -s["normals"][0].flip(-1))
    assert torch.equal(f["normals"][1:], s["normals"][1:].flip(-1))
    for t in samples:
        ft = hflip(t)
        assert torch.equal(ft["boxes"], extents(ft["instances"], len(ft["boxes"])))
        assert torch.equal(ft["labels"], t["labels"])


def sphere(h: int, w: int, cx: float, cy: float, r: float) -> torch.Tensor:
    """Normals [3, h, w] of a sphere seen from the front (camera coords: x right, y down, z to us)."""
    y, x = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    nx, ny = (x - cx) / r, (y - cy) / r
    nz = (1 - nx**2 - ny**2).clamp_min(0).sqrt()
    inside = (nx**2 + ny**2) < 1
    n = torch.stack([nx, ny, nz]) * inside
    n[2][~inside] = 1.0  # a wall facing the camera behind it
    return n


def test_flipped_normals_are_the_normals_of_the_flipped_scene():
    h, w = 40, 50
    scene = {"image": torch.rand(3, h, w), "normals": sphere(h, w, cx=15.0, cy=20.0, r=9.0)}
    mirrored = sphere(h, w, cx=w - 15.0, cy=20.0, r=9.0)  # the same ball, mirrored
    assert torch.allclose(hflip(scene)["normals"], mirrored, atol=1e-6)
    # a plain flip of the map without negating x would be wrong
    assert not torch.allclose(scene["normals"].flip(-1), mirrored, atol=1e-3)


def test_crop_inside_equals_slicing(samples):
    s = samples[1]
    c = crop(s, top=5, left=9, height=40, width=30)
    for key in (
        "image",
        "normals",
        "semantic",
        "parts",
        "boundaries",
        "semantic_boundaries",
        "saliency",
    ):
        assert torch.equal(c[key], s[key][..., 5:45, 9:39]), key
    for t in samples:
        ct = crop(t, 10, 20, 32, 32)
        assert torch.equal(ct["boxes"], extents(ct["instances"], len(ct["boxes"])))
        assert len(ct["labels"]) == len(ct["difficult"]) == len(ct["boxes"])
        assert int(ct["instances"].max()) == len(ct["boxes"])


def test_crop_drops_vanished_boxes_and_renumbers_instances():
    inst = torch.zeros(20, 20, dtype=torch.int64)
    inst[2:6, 2:6] = 1  # cropped away below
    inst[10:15, 12:18] = 2
    s = {
        "image": torch.rand(3, 20, 20),
        "instances": inst,
        "boxes": torch.tensor([[2.0, 2, 6, 6], [12, 10, 18, 15]]),
        "labels": torch.tensor([3, 5]),
        "difficult": torch.tensor([False, True]),
    }
    c = crop(s, top=8, left=8, height=12, width=12)
    assert torch.equal(c["boxes"], torch.tensor([[4.0, 2, 10, 7]]))
    assert c["labels"].tolist() == [5] and c["difficult"].tolist() == [True]
    assert torch.equal(c["boxes"], extents(c["instances"], 1))
    # without instance masks (real data): boxes are clipped to the window
    plain = {k: v for k, v in s.items() if k != "instances"}
    c = crop(plain, top=4, left=8, height=12, width=6)
    assert torch.equal(c["boxes"], torch.tensor([[4.0, 6, 6, 11]]))
    assert c["labels"].tolist() == [5]


def test_padded_crop_fills_ignore_and_zero(samples):
    s = samples[2]
    c = crop(s, top=-4, left=SIZE - 20, height=SIZE, width=32)  # sticks out top and right
    inside = (slice(4, SIZE), slice(0, 20))
    assert torch.equal(c["semantic"][inside], s["semantic"][: SIZE - 4, SIZE - 20 :])
    assert (c["semantic"][:4] == 255).all() and (c["semantic"][:, 20:] == 255).all()
    assert (c["boundaries"][:, 20:] == 255).all() and (c["semantic_boundaries"][:, :4] == 255).all()
    assert (c["normals"][:, :4] == 0).all() and (c["image"][:, :, 20:] == 0).all()
    assert (c["instances"][:4] == 0).all()
    assert c["semantic"].dtype == torch.int64 and c["boundaries"].dtype == torch.uint8
    assert torch.equal(c["boxes"], extents(c["instances"], len(c["boxes"])))


def test_random_crop_pads_small_images(samples):
    c = RandomCrop(80)(samples[0], torch.Generator().manual_seed(0))
    assert c["image"].shape == (3, 80, 80) and c["semantic"].shape == (80, 80)
    assert (c["semantic"] == 255).any()


def test_resize_labels_normals_edges():
    h = w = 32
    s = {
        "image": torch.rand(3, h, w),
        "semantic": torch.randint(0, 4, (h, w)),
        "normals": sphere(h, w, 16.0, 16.0, 10.0),
        "boundaries": torch.zeros(h, w, dtype=torch.uint8),
        "boxes": torch.tensor([[4.0, 8.0, 20.0, 24.0]]),
    }
    s["boundaries"][:, 11] = 1  # a thin vertical contour
    s["boundaries"][7, :] = 1  # a thin horizontal one
    small = resize(s, (16, 16))
    assert set(small["semantic"].unique().tolist()) <= set(s["semantic"].unique().tolist())
    assert small["semantic"].dtype == torch.int64
    assert torch.allclose(small["normals"].norm(dim=0), torch.ones(16, 16), atol=1e-5)
    e = small["boundaries"]
    assert e.dtype == torch.uint8 and set(e.unique().tolist()) == {0, 1}
    assert (e.sum(0) >= 1).all() and (e.sum(1) >= 1).all()  # still crossing every row/column
    assert int(e.sum()) <= 2 * 16  # and one pixel thin
    assert torch.equal(small["boxes"], torch.tensor([[2.0, 4.0, 10.0, 12.0]]))
    big = resize(s, (48, 48))
    assert set(big["boundaries"].unique().tolist()) == {0, 1}
    assert int(big["boundaries"].sum()) <= 2 * 2 * 48  # enlarged 1.5x: contours at most 2 px
    assert (big["boundaries"].sum(0) >= 1).all() and (big["boundaries"].sum(1) >= 1).all()
    assert torch.allclose(big["normals"].norm(dim=0), torch.ones(48, 48), atol=1e-5)
    assert big["image"].min() >= 0 and big["image"].max() <= 1


def test_resize_keeps_invalid_normals_zero():
    n = torch.zeros(3, 10, 10)
    n[2, :, :5] = 1
    out = resize({"image": torch.rand(3, 10, 10), "normals": n}, (20, 20))["normals"]
    assert (out[:, :, 10:] == 0).all() and torch.allclose(out[2, :, :10], torch.ones(20, 10))


def test_jitter_changes_the_image_only(samples):
    s = samples[3]
    j = ColorJitter(0.4, 0.4, 0.4, 0.05)(s, torch.Generator().manual_seed(1))
    assert not torch.equal(j["image"], s["image"])
    assert j["image"].min() >= 0 and j["image"].max() <= 1
    for k in s:
        if k != "image" and isinstance(s[k], torch.Tensor):
            assert j[k] is s[k]


def test_train_transforms_deterministic_and_partial(samples):
    t = train_transforms(48)
    a = t(samples[4], torch.Generator().manual_seed(7))
    b = t(samples[4], torch.Generator().manual_seed(7))
    assert_same(a, b)
    assert a["image"].shape == (3, 48, 48) and a["semantic_boundaries"].shape[-2:] == (48, 48)
    for k in range(4):  # boxes stay the extents of the instance masks through scale/crop/flip
        o = t(samples[k], torch.Generator().manual_seed(k))
        assert torch.equal(o["boxes"], extents(o["instances"], len(o["boxes"])))
        assert len(o["labels"]) == len(o["difficult"]) == len(o["boxes"])
    c = t(samples[4], torch.Generator().manual_seed(8))
    assert not torch.equal(a["image"], c["image"])
    partial = {
        k: v for k, v in samples[4].items() if k in ("image", "normals", "has_label", "meta")
    }
    p = t(partial, torch.Generator().manual_seed(7))
    assert set(p) == set(partial) and p["has_label"] is partial["has_label"]
    n = p["normals"].norm(dim=0)
    assert torch.allclose(n[n > 0], torch.ones_like(n[n > 0]), atol=1e-5)


def test_transformed_dataset_is_reproducible(samples):
    ds = TransformedDataset(samples, train_transforms(32), seed=0)
    assert_same(ds[1], ds[1])
    first = ds[1]["image"]
    ds.set_epoch(1)
    assert not torch.equal(ds[1]["image"], first)


def test_bad_input():
    with pytest.raises(ValueError, match="0 < lo <= hi"):
        RandomScale((0.0, 1.0))
    with pytest.raises(ValueError, match="positive int"):
        RandomCrop(0)
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        hflip({"image": torch.rand(64, 64)})
