"""The real-data loaders on tiny fixture trees written in each data set's on-disk format.

Every fixture is built here with PIL, scipy.io.savemat (MATLAB v5 structs, cells, sparse maps)
and h5py (NYUv2's MATLAB v7.3 = HDF5 layout, axes reversed), so nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import scipy.sparse as sparse
import torch
from PIL import Image

from ubernet_lite.data import real
from ubernet_lite.data.real import (
    CorruptFileError,
    DatasetNotFoundError,
    diverse_union_real,
    load_dataset,
)
from ubernet_lite.data.real.nyu import decode_normals, encode_normals_png, normals_from_depth
from ubernet_lite.data.real.parts import PERSON_PART_MAP
from ubernet_lite.tasks import PART_NAMES, TARGETS, VOC_CLASSES

H, W = 12, 16  # non-square, so that a transposed axis shows
REPO = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """A module of data_scripts/ (they import each other by plain name, as when run as scripts)."""
    folder = str(REPO / "data_scripts")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, REPO / "data_scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses need their module registered
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------------------------
# Fixture writers, one per format
# ----------------------------------------------------------------------------------------------


def rgb(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save_png_image(arr: np.ndarray, path: Path) -> None:
    """A lossless image under a ``.jpg`` name (PIL reads by content), so pixels compare exactly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG")


def save_palette_png(labels: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(labels.astype(np.uint8), mode="P")
    palette = np.random.default_rng(0).integers(0, 256, 768).tolist()
    im.putpalette(palette)
    im.save(path)


def voc_xml(objects, h=H, w=W) -> str:
    objs = "".join(
        f"<object><name>{n}</name><pose>Left</pose><truncated>0</truncated>"
        f"<difficult>{int(d)}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b, d in objects
    )
    return (
        f"<annotation><folder>VOC</folder><filename>x.jpg</filename><size><width>{w}</width>"
        f"<height>{h}</height><depth>3</depth></size><segmented>0</segmented>{objs}</annotation>"
    )


VOC_OBJECTS = {
    "2007_000001": [("dog", (2, 3, 9, 10), False), ("person", (5, 1, 16, 12), True)],
    "2007_000002": [("car", (1, 1, 4, 4), False)],
    "2007_000003": [("tvmonitor", (3, 2, 8, 6), False)],
}


def voc_semantic(seed: int) -> np.ndarray:
    sem = np.zeros((H, W), np.uint8)
    sem[2:10, 1:9] = 12  # dog
    sem[1:3, 1:9] = 255  # a void band
    sem[8:12, 10:16] = 15  # person
    return sem


def make_voc(root: Path, year: str, ids=None, seg_ids=None, person=None) -> Path:
    base = root / "VOCdevkit" / f"VOC{year}"
    ids = list(VOC_OBJECTS) if ids is None else ids
    seg_ids = ids[:1] if seg_ids is None else seg_ids
    for k, i in enumerate(ids):
        save_png_image(rgb(k), base / "JPEGImages" / f"{i}.jpg")
        objs = VOC_OBJECTS.get(i, [("person", (1, 1, W, H), False)])
        (base / "Annotations").mkdir(parents=True, exist_ok=True)
        (base / "Annotations" / f"{i}.xml").write_text(voc_xml(objs))
    for i in seg_ids:
        sem = voc_semantic(0)
        save_palette_png(sem, base / "SegmentationClass" / f"{i}.png")
        inst = np.where(sem == 12, 1, np.where(sem == 15, 2, np.where(sem == 255, 255, 0)))
        save_palette_png(inst, base / "SegmentationObject" / f"{i}.png")
    main = base / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    half = max(1, len(ids) // 2)
    splits = {"train": ids[:half], "val": ids[half:], "trainval": ids}
    for s, lst in splits.items():
        (main / f"{s}.txt").write_text("".join(f"{i}\n" for i in lst))
        flags = person or {}
        (main / f"person_{s}.txt").write_text("".join(f"{i} {flags.get(i, -1)}\n" for i in lst))
    segdir = base / "ImageSets" / "Segmentation"
    segdir.mkdir(parents=True, exist_ok=True)
    (segdir / "trainval.txt").write_text("".join(f"{i}\n" for i in seg_ids))
    return base


def sbd_cls(seed: int):
    seg = np.zeros((H, W), np.uint8)
    seg[3:9, 4:12] = 7  # car
    seg[9:12, 0:5] = 15  # person
    cells = np.empty((20, 1), dtype=object)
    for k in range(20):
        b = np.zeros((H, W))
        if k + 1 in (7, 15):
            m = seg == k + 1
            edge = m & ~np.pad(m, 1)[2:, 1:-1] | m & ~np.pad(m, 1)[:-2, 1:-1]
            b[edge] = 1
        cells[k, 0] = sparse.csc_matrix(b)
    return seg, cells


def make_sbd(root: Path, train=("2008_000001",), val=("2008_000002",), drop_field=None) -> Path:
    base = root / "benchmark_RELEASE" / "dataset"
    for k, i in enumerate((*train, *val)):
        save_png_image(rgb(10 + k), base / "img" / f"{i}.jpg")
        seg, cells = sbd_cls(k)
        gt = {"Segmentation": seg, "Boundaries": cells, "CategoriesPresent": np.array([7, 15])}
        if drop_field:
            gt.pop(drop_field)
        (base / "cls").mkdir(parents=True, exist_ok=True)
        sio.savemat(base / "cls" / f"{i}.mat", {"GTcls": gt})
        inst = (seg == 7) * 1 + (seg == 15) * 2
        (base / "inst").mkdir(parents=True, exist_ok=True)
        sio.savemat(base / "inst" / f"{i}.mat", {"GTinst": {"Segmentation": inst.astype(np.uint8)}})
    (base / "train.txt").write_text("".join(f"{i}\n" for i in train))
    (base / "val.txt").write_text("".join(f"{i}\n" for i in val))
    return base


def struct_array(fields, rows):
    arr = np.zeros((1, len(rows)), dtype=[(f, "O") for f in fields])
    for j, r in enumerate(rows):
        arr[0, j] = r
    return arr


def box(y0, y1, x0, x1):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def person_parts_mat(path: Path, with_unknown: bool = False) -> None:
    """Person A (rows 0-11, cols 0-7) with parts; a dog (cols 12-15); person B (cols 8-11) without
    parts. Part rows: hair 0, head 1, neck 2, torso 3-4, luarm 5, llarm 6, lhand 7, ruleg 8,
    rlleg 9, rfoot 10, row 11 unlabelled."""
    parts = [
        ("hair", box(0, 1, 0, 8)),
        ("head", box(1, 2, 0, 8)),
        ("neck", box(2, 3, 0, 8)),
        ("torso", box(3, 5, 0, 8)),
        ("luarm", box(5, 6, 0, 8)),
        ("llarm", box(6, 7, 0, 8)),
        ("lhand", box(7, 8, 0, 8)),
        ("ruleg", box(8, 9, 0, 8)),
        ("rlleg", box(9, 10, 0, 8)),
        ("rfoot", box(10, 11, 0, 8)),
    ]
    if with_unknown:
        parts.append(("tail", box(11, 12, 0, 2)))
    objects = struct_array(
        ["class", "classIndex", "mask", "parts"],
        [
            ("person", 15, box(0, 12, 0, 8), struct_array(["part_name", "mask"], parts)),
            ("dog", 12, box(0, 12, 12, 16), np.zeros((0, 0))),
            ("person", 15, box(0, 12, 8, 12), np.zeros((0, 0))),
        ],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.savemat(path, {"anno": {"imname": path.stem, "objects": objects}})


def make_parts(root: Path, ids, with_unknown=False) -> Path:
    base = root / "pascal_parts" / "Annotations_Part"
    for i in ids:
        person_parts_mat(base / f"{i}.mat", with_unknown)
    return base


def make_nyu(root: Path, n: int = 4, normals_for=(0, 1, 2)) -> dict:
    """The v7.3 layout: MATLAB [H, W, 3, N] seen by h5py as (N, 3, W, H)."""
    import h5py

    base = root / "nyuv2"
    (base / "normals").mkdir(parents=True, exist_ok=True)
    imgs = np.stack([rgb(20 + k) for k in range(n)])  # [N, H, W, 3]
    with h5py.File(base / "nyu_depth_v2_labeled.mat", "w", userblock_size=512) as f:
        f["images"] = imgs.transpose(0, 3, 2, 1)  # (N, 3, W, H)
        f["depths"] = np.ones((n, W, H), np.float32)
    with open(base / "nyu_depth_v2_labeled.mat", "r+b") as fh:  # MATLAB's text header
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: fixture HDF5 schema 1.00 .")
    sio.savemat(
        base / "splits.mat", {"trainNdxs": np.array([[1], [3], [4]]), "testNdxs": np.array([[2]])}
    )
    normals = {}
    for k in normals_for:
        n_ = np.zeros((3, H, W), np.float32)
        n_[2] = 1.0
        n_[:, :, :4] = np.array([0.6, 0.0, 0.8], np.float32)[:, None, None]
        n_[:, 0, 0] = 0  # invalid pixel
        normals[k] = n_
        Image.fromarray(encode_normals_png(torch.from_numpy(n_))).save(
            base / "normals" / f"{k:04d}.png"
        )
    return {"images": imgs, "normals": normals}


def make_msra(root: Path, ids=("1", "2")) -> Path:
    base = root / "MSRA10K_Imgs_GT" / "Imgs"
    for k, i in enumerate(ids):
        save_png_image(rgb(30 + k), base / f"{i}.jpg")
        m = np.zeros((H, W), np.uint8)
        m[2:8, 3:9] = 255
        Image.fromarray(m).save(base / f"{i}.png")
    return base


def bsds_gt(path: Path, annotators: int) -> list[np.ndarray]:
    maps = []
    cells = np.empty((1, annotators), dtype=object)
    for a in range(annotators):
        b = np.zeros((H, W), np.uint8)
        b[2 + a, :] = 1
        seg = (np.arange(H)[:, None] > 2 + a).astype(np.uint16).repeat(W, 1) + 1
        cells[0, a] = {"Segmentation": seg, "Boundaries": b}
        maps.append(b)
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.savemat(path, {"groundTruth": cells})
    return maps


def make_bsds(root: Path) -> Path:
    base = root / "BSR" / "BSDS500" / "data"
    for s, ids, a in (
        ("train", ["100075"], 3),
        ("val", ["3096"], 1),
        ("test", ["2018", "3063"], 2),
    ):
        for k, i in enumerate(ids):
            save_png_image(rgb(40 + k), base / "images" / s / f"{i}.jpg")
            bsds_gt(base / "groundTruth" / s / f"{i}.mat", a)
    return base


def make_pascal_s(root: Path) -> Path:
    base = root / "pascal_s" / "datasets"
    for k, i in enumerate(("1", "2", "10")):
        save_png_image(rgb(50 + k), base / "imgs" / "pascal" / f"{i}.jpg")
        m = np.zeros((H, W), np.uint8)
        m[:, 0:4] = 127  # just under half the subjects
        m[:, 4:8] = 128  # just over half
        m[:, 8:12] = 255
        (base / "masks" / "pascal").mkdir(parents=True, exist_ok=True)
        Image.fromarray(m).save(base / "masks" / "pascal" / f"{i}.png")
    return base


def check_sample(sample: dict, expected_targets: set[str], dataset: str) -> None:
    """The sample contract of docs/design.md."""
    img = sample["image"]
    assert img.dtype == torch.float32 and img.ndim == 3 and img.shape[0] == 3
    assert 0.0 <= img.min() and img.max() <= 1.0
    assert set(sample["has_label"]) == set(TARGETS)
    assert {t for t, v in sample["has_label"].items() if v} == expected_targets
    for t in TARGETS:
        keys = ("boxes", "labels", "difficult") if t == "detection" else (t,)
        for k in keys:
            assert (k in sample) == (t in expected_targets), (t, k)
    assert sample["meta"]["dataset"] == dataset
    hw = tuple(img.shape[-2:])
    for k, dtype in (("semantic", torch.int64), ("parts", torch.int64), ("saliency", torch.uint8)):
        if k in sample:
            assert sample[k].dtype == dtype and tuple(sample[k].shape) == hw, k
    if "boundaries" in sample:
        assert sample["boundaries"].dtype == torch.uint8 and tuple(sample["boundaries"].shape) == hw
        assert set(sample["boundaries"].unique().tolist()) <= {0, 1}
    if "normals" in sample:
        assert sample["normals"].dtype == torch.float32 and tuple(sample["normals"].shape) == (
            3,
            *hw,
        )


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    r = tmp_path_factory.mktemp("ubernet_data")
    make_voc(r, "2007")
    v12 = ["2008_000001", "2008_000002", "2008_000003", "2008_000004"]
    # train = 000001, 000002; val = 000003, 000004; persons in 000001 (train) and 000003 (val)
    make_voc(
        r, "2012", ids=v12, seg_ids=["2008_000002"], person={"2008_000001": 1, "2008_000003": 0}
    )
    make_sbd(r, train=("2008_000001",), val=("2008_000004",))
    make_parts(r, ["2008_000001", "2008_000003"])
    make_nyu(r)
    make_msra(r)
    make_bsds(r)
    make_pascal_s(r)
    return r


# ----------------------------------------------------------------------------------------------
# Loaders
# ----------------------------------------------------------------------------------------------


def test_voc2007_detection_semantic_and_void(root):
    ds = load_dataset("voc2007", root, split="trainval", with_instances=True)
    assert len(ds) == 3 and ds.ids == list(VOC_OBJECTS)
    s = ds[0]
    check_sample(s, {"detection", "semantic"}, "voc2007")
    assert s.keys() >= {"instances"}
    np.testing.assert_allclose(s["image"].permute(1, 2, 0).numpy() * 255, rgb(0), atol=1e-3)
    # VOC's 1-based inclusive boxes -> pixel edges [xmin - 1, ymin - 1, xmax, ymax]
    torch.testing.assert_close(s["boxes"], torch.tensor([[1.0, 2, 9, 10], [4.0, 0, 16, 12]]))
    assert s["labels"].tolist() == [VOC_CLASSES.index("dog") + 1, VOC_CLASSES.index("person") + 1]
    assert s["difficult"].dtype == torch.bool and s["difficult"].tolist() == [False, True]
    assert torch.equal(s["semantic"], torch.from_numpy(voc_semantic(0).astype(np.int64)))
    assert (s["semantic"] == 255).sum() == 16  # the void band survives the palette PNG
    assert s["instances"].dtype == torch.int64 and s["instances"].max() == 2
    assert (s["instances"][1:3, 1:9] == 0).all()  # instance void -> 0
    t = ds[1]  # no segmentation PNG: semantic absent, not zeros
    check_sample(t, {"detection"}, "voc2007")
    assert t["meta"] == {"dataset": "voc2007", "split": "trainval", "index": 1, "id": "2007_000002"}
    assert [ds.label_flags(i) for i in range(len(ds))] == [
        ds[i]["has_label"] for i in range(len(ds))
    ]
    seg = load_dataset("voc2007", root, split="trainval", image_set="segmentation")
    assert seg.ids == ["2007_000001"]


def test_sbd_semantic_and_boundaries(root):
    ds = load_dataset("sbd", root, split="train", with_instances=True)
    assert ds.ids == ["2008_000001"]
    s = ds[0]
    check_sample(s, {"semantic", "semantic_boundaries", "boundaries"}, "sbd")
    seg, cells = sbd_cls(0)
    assert torch.equal(s["semantic"], torch.from_numpy(seg.astype(np.int64)))
    sb = s["semantic_boundaries"]
    assert sb.dtype == torch.uint8 and sb.shape == (20, H, W)
    for k in range(20):
        assert torch.equal(
            sb[k], torch.from_numpy((cells[k, 0].toarray() != 0).astype(np.uint8))
        ), k
    assert sb[6].sum() > 0 and sb[14].sum() > 0 and sb[0].sum() == 0
    assert torch.equal(s["boundaries"], sb.max(0).values)
    assert set(s["instances"].unique().tolist()) == {0, 1, 2}
    assert len(load_dataset("sbd", root, split="trainval")) == 2


def test_parts_mapping_onto_six_parts(root):
    assert set(PERSON_PART_MAP.values()) == set(range(1, len(PART_NAMES) + 1))
    assert len(PERSON_PART_MAP) == 24
    lab = {n: PART_NAMES.index(n) + 1 for n in PART_NAMES}
    assert (
        PERSON_PART_MAP["lhand"] == lab["lower arm"]
        and PERSON_PART_MAP["rfoot"] == lab["lower leg"]
    )
    assert PERSON_PART_MAP["hair"] == lab["head"] and PERSON_PART_MAP["neck"] == lab["torso"]
    ds = load_dataset("pascal_parts", root, split="train")
    assert ds.ids == ["2008_000001"]  # person flag 1 and a part file
    assert load_dataset("pascal_parts", root, split="val").ids == ["2008_000003"]  # flag 0 counts
    s = ds[0]
    check_sample(s, {"parts"}, "pascal_parts")
    p = s["parts"]
    expected_rows = ["head", "head", "torso", "torso", "torso", "upper arm", "lower arm", "lower arm",
                     "upper leg", "lower leg", "lower leg"]  # fmt: skip
    for r, name in enumerate(expected_rows):
        assert (p[r, 0:8] == lab[name]).all(), (r, name)
    assert (p[11, 0:8] == 255).all()  # person pixels no part covers: ignore
    assert (p[:, 8:12] == 255).all()  # a person annotated without parts: ignore
    assert (p[:, 12:16] == 0).all()  # a dog is background for the human-part task


def test_parts_unknown_name_is_ignored_with_warning(tmp_path):
    make_voc(tmp_path, "2012", ids=["2008_000001", "2008_000002"], person={"2008_000001": 1})
    make_parts(tmp_path, ["2008_000001"], with_unknown=True)
    ds = load_dataset("pascal_parts", tmp_path, split="train")
    with pytest.warns(UserWarning, match="tail"):
        p = ds[0]["parts"]
    assert (p[11, 0:2] == 255).all() and (p[11, 2:8] == 255).all()
    assert ds.unknown_parts == {"tail"}


def test_nyu_v73_axes_and_normals(root):
    import h5py

    written = make_nyu(root / "again")  # same content as the fixture root's
    with h5py.File(root / "nyuv2" / "nyu_depth_v2_labeled.mat", "r") as f:
        assert f["images"].shape == (4, 3, W, H)  # what h5py sees: every MATLAB axis reversed
    ds = load_dataset("nyuv2", root, split="train")
    assert ds.indices.tolist() == [0, 2, 3]  # 1-based trainNdxs [1, 3, 4]
    assert load_dataset("nyuv2", root, split="test").indices.tolist() == [1]
    assert len(load_dataset("nyuv2", root, split="all")) == 4
    s = ds[1]  # image index 2
    check_sample(s, {"normals"}, "nyuv2")
    assert s["image"].shape == (3, H, W)
    np.testing.assert_allclose(
        s["image"].permute(1, 2, 0).numpy() * 255, written["images"][2], atol=1e-3
    )
    n = s["normals"]
    assert torch.equal(n[:, 0, 0], torch.zeros(3))  # invalid pixel -> zero vector
    norms = n.norm(dim=0)
    assert (
        torch.allclose(norms[norms > 0], torch.ones(()), atol=1e-5)
        and (norms > 0).sum() == H * W - 1
    )
    torch.testing.assert_close(n[:, 5, 2], torch.tensor([0.6, 0.0, 0.8]), atol=0.01, rtol=0)
    torch.testing.assert_close(n[:, 5, 10], torch.tensor([0.0, 0.0, 1.0]), atol=0.01, rtol=0)
    t = ds[2]  # index 3 has no derived normals file: only the image
    check_sample(t, set(), "nyuv2")
    assert [ds.label_flags(i)["normals"] for i in range(3)] == [True, True, False]


def test_closed_form_eigenvector_matches_eigh():
    from ubernet_lite.data.real.nyu import smallest_eigenvector_sym3

    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 3, 3, generator=g, dtype=torch.float64)
    A = x @ x.transpose(1, 2)
    A[:100, 2] *= 1e-3  # nearly planar point clouds, as in a depth map
    A[:100, :, 2] *= 1e-3
    vec, mid = smallest_eigenvector_sym3(A)
    evals, evecs = torch.linalg.eigh(A)
    cos = (vec * evecs[:, :, 0]).sum(-1).abs()
    assert cos.min() > 1 - 1e-6
    torch.testing.assert_close(mid, evals[:, 1])


def test_normals_from_depth_recovers_a_plane():
    fx, fy, cx, cy = 50.0, 50.0, 20.0, 15.0
    v, u = np.meshgrid(np.arange(30.0), np.arange(40.0), indexing="ij")
    # plane through (0, 0, 4) facing the camera and tilted to the right: n_fwd . P = d
    n_fwd = np.array([0.3, -0.2, -1.0]) / np.linalg.norm([0.3, -0.2, -1.0])
    d = n_fwd @ np.array([0.0, 0.0, 4.0])
    ray = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)])
    depth = d / np.tensordot(n_fwd, ray, axes=1)
    depth[0, 0] = 0  # a hole
    n = normals_from_depth(depth, (fx, fy, cx, cy), window=5)
    expected = torch.tensor(
        [n_fwd[0], n_fwd[1], -n_fwd[2]], dtype=torch.float32
    )  # z towards camera
    assert expected[2] > 0
    torch.testing.assert_close(n[:, 15, 20], expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(n[:, 29, 39], expected, atol=1e-4, rtol=0)
    assert torch.equal(n[:, 0, 0], torch.zeros(3))
    back = decode_normals(encode_normals_png(n))
    assert torch.equal(back[:, 0, 0], torch.zeros(3))
    assert (back[:, 15, 20] - expected).abs().max() < 0.01


def test_msra_bsds_pascal_s(root):
    s = load_dataset("msra10k", root)[0]
    check_sample(s, {"saliency"}, "msra10k")
    assert s["saliency"].sum() == 36 and s["saliency"][2:8, 3:9].all()

    ds = load_dataset("bsds500", root, split="train", keep_annotators=True)
    b = ds[0]
    check_sample(b, {"boundaries"}, "bsds500")
    ann = b["boundaries_annotators"]
    assert ann.shape == (3, H, W) and ann.dtype == torch.uint8
    assert [int(ann[a].nonzero()[0, 0]) for a in range(3)] == [2, 3, 4]  # each annotator's own row
    assert torch.equal(b["boundaries"], ann.max(0).values) and b["boundaries"].sum() == 3 * W
    one = load_dataset("bsds500", root, split="val")[0]  # one annotator: squeezed cell still read
    assert one["boundaries"].sum() == W and "boundaries_annotators" not in one
    assert len(load_dataset("bsds500", root, split="trainval")) == 2
    assert len(load_dataset("bsds500", root, split="test")) == 2

    ps = load_dataset("pascal_s", root)
    assert ps.ids == ["1", "2", "10"]
    p = ps[2]
    check_sample(p, {"saliency"}, "pascal_s")
    assert (p["saliency"][:, 0:4] == 0).all() and (p["saliency"][:, 4:12] == 1).all()
    assert (p["saliency"][:, 12:] == 0).all()


# ----------------------------------------------------------------------------------------------
# Missing sets and bad files
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(real.DATASETS))
def test_missing_set_names_set_folder_and_script(tmp_path, name):
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset(name, tmp_path)
    msg = str(e.value)
    assert repr(name) in msg and f"data_scripts/download_{name}.py" in msg
    assert str(tmp_path / real.DATASETS[name].folder) in msg


def test_default_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("UBERNET_DATA", str(tmp_path))
    assert real.data_root() == tmp_path
    make_msra(tmp_path)
    assert len(load_dataset("msra10k")) == 2
    with pytest.raises(ValueError, match="splits are"):
        load_dataset("msra10k", split="val")
    with pytest.raises(KeyError, match="unknown data set 'coco'"):
        load_dataset("coco")


def test_truncated_jpeg_raises_naming_file_or_skips(tmp_path):
    base = make_voc(tmp_path, "2007")
    bad = base / "JPEGImages" / "2007_000002.jpg"
    good = Image.fromarray(rgb(1))
    good.save(bad, format="JPEG")
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    ds = load_dataset("voc2007", tmp_path)
    with pytest.raises(CorruptFileError, match="2007_000002.jpg"):
        ds[1]
    skipping = load_dataset("voc2007", tmp_path, on_error="skip")
    with pytest.warns(UserWarning, match="2007_000002.jpg"):
        s = skipping[1]
    assert s["meta"]["id"] == "2007_000003" and len(skipping.skipped) == 1


def test_corrupt_annotations_name_file_and_field(tmp_path):
    base = make_voc(tmp_path, "2007")
    (base / "Annotations" / "2007_000001.xml").write_text("<annotation><object><name>dog</name")
    (base / "Annotations" / "2007_000002.xml").write_text(
        voc_xml([("unicorn", (1, 1, 3, 3), False)])
    )
    ds = load_dataset("voc2007", tmp_path)
    with pytest.raises(CorruptFileError, match=r"2007_000001\.xml: corrupt XML"):
        ds[0]
    with pytest.raises(CorruptFileError, match=r"2007_000002\.xml.*'unicorn'"):
        ds[1]
    (base / "Annotations" / "2007_000003.xml").write_text(voc_xml([("cat", (5, 5, 3, 8), False)]))
    with pytest.raises(CorruptFileError, match=r"2007_000003\.xml: object 0 has an empty bndbox"):
        ds[2]
    (base / "Annotations" / "2007_000003.xml").write_text(voc_xml([("cat", (1, 1, 3, 8), False)]))
    save_palette_png(np.full((H, W), 40, np.uint8), base / "SegmentationClass" / "2007_000003.png")
    with pytest.raises(CorruptFileError, match=r"2007_000003\.png.*outside 0\.\.20"):
        ds[2]

    make_sbd(tmp_path, drop_field="Boundaries")
    with pytest.raises(
        CorruptFileError, match=r"2008_000001\.mat: missing field 'GTcls\.Boundaries'"
    ):
        load_dataset("sbd", tmp_path)[0]
    png = make_msra(tmp_path) / "2.png"
    png.write_bytes(png.read_bytes()[:20])
    with pytest.raises(CorruptFileError, match=r"2\.png"):
        load_dataset("msra10k", tmp_path)[1]
    (make_bsds(tmp_path) / "groundTruth" / "val" / "3096.mat").write_bytes(b"MATLAB 5.0 garbage")
    with pytest.raises(CorruptFileError, match=r"3096\.mat"):
        load_dataset("bsds500", tmp_path, split="val")[0]


def test_corrupt_nyu_file_is_named(tmp_path):
    make_nyu(tmp_path)
    mat = tmp_path / "nyuv2" / "nyu_depth_v2_labeled.mat"
    mat.write_bytes(mat.read_bytes()[:600])
    with pytest.raises(CorruptFileError, match="nyu_depth_v2_labeled.mat"):
        load_dataset("nyuv2", tmp_path)


# ----------------------------------------------------------------------------------------------
# The paper's union
# ----------------------------------------------------------------------------------------------


def test_union_has_label_table_merge_and_holdout(root):
    union = diverse_union_real(root)
    assert union.names == ["voc2007", "voc2012", "nyuv2", "msra10k", "bsds500"]
    # the part-segmentation test image 2008_000003 (person in val) is held out of training
    assert union.member("voc2012").ids == ["2008_000001", "2008_000002", "2008_000004"]
    table = union.label_table()
    zero = dict.fromkeys(TARGETS, 0)
    assert table == {
        "voc2007": {"images": 3, **zero, "detection": 3, "semantic": 1},
        "voc2012": {"images": 3, **zero, "detection": 3, "semantic": 3, "semantic_boundaries": 2,
                    "boundaries": 2, "parts": 1},
        "nyuv2": {"images": 3, **zero, "normals": 2},
        "msra10k": {"images": 2, **zero, "saliency": 2},
        "bsds500": {"images": 2, **zero, "boundaries": 2},
    }  # fmt: skip
    # one VOC 2012 image carrying detection (XML), semantic + boundaries (SBD) and parts (Part)
    s = union[union.offsets[1]]
    check_sample(
        s, {"detection", "semantic", "semantic_boundaries", "boundaries", "parts"}, "voc2012"
    )
    assert s["meta"]["id"] == "2008_000001" and s["meta"]["union_index"] == union.offsets[1]
    assert torch.equal(s["semantic"], torch.from_numpy(sbd_cls(0)[0].astype(np.int64)))
    v = union[union.offsets[1] + 1]  # 2008_000002: VOC's own segmentation (with void), no SBD
    assert (v["semantic"] == 255).any() and not v["has_label"]["boundaries"]
    for i in range(len(union)):
        assert union.label_mask(i) == union[i]["has_label"], i
    assert sum(union.proportions) == pytest.approx(1.0)
    assert union.proportions[2] == pytest.approx(23024 / (5011 + 11540 + 23024 + 10000 + 5100))
    keep_sbd_val = diverse_union_real(root, members=["voc2012"], sbd_split="train")
    assert keep_sbd_val.label_table()["voc2012"]["semantic_boundaries"] == 1
    w = union.sample_weights()
    assert w[: union.offsets[1]].sum().item() == pytest.approx(union.proportions[0])


def test_union_proportions_members_and_sampler(root, tmp_path):
    union = diverse_union_real(
        root, members=["msra10k", "bsds500"], proportions={"msra10k": 3, "bsds500": 1}
    )
    assert union.proportions == [0.75, 0.25] and len(union) == 4
    idx = list(union.sampler(num_samples=400, seed=0))
    frac = sum(i < union.offsets[1] for i in idx) / len(idx)
    assert 0.65 < frac < 0.85
    assert diverse_union_real(
        root, members=["msra10k", "bsds500"], proportions=[1, 1]
    ).proportions == [0.5, 0.5]
    with pytest.raises(ValueError, match=">= 0"):
        diverse_union_real(root, members=["msra10k"], proportions={"msra10k": -1})
    with pytest.raises(ValueError, match="training union"):
        diverse_union_real(root, split="val")
    make_msra(tmp_path)  # a root with only MSRA10K
    with pytest.raises(DatasetNotFoundError, match="download_voc2007.py"):
        diverse_union_real(tmp_path)
    with pytest.warns(UserWarning) as record:
        partial = diverse_union_real(tmp_path, require_all=False)
    assert sum("leaving out" in str(w.message) for w in record) == 4
    assert partial.names == ["msra10k"]
    make_voc(tmp_path, "2012", ids=["2008_000001", "2008_000002"])  # VOC 2012 without SBD / Part
    with pytest.warns(UserWarning) as record:
        partial = diverse_union_real(tmp_path, require_all=False)
    assert any("voc2012 without SBD labels" in str(w.message) for w in record)
    assert partial.names == ["voc2012", "msra10k"]
    assert partial.label_table()["voc2012"]["boundaries"] == 0
    matrix = union.annotation_matrix()
    assert matrix["saliency", "msra10k"] == 2 and matrix["boundaries", "bsds500"] == 2


def test_collate_mixes_real_samples(root):
    from ubernet_lite.data import collate

    samples = [load_dataset(n, root)[0] for n in ("voc2007", "sbd", "nyuv2", "msra10k", "bsds500")]
    batch = collate(samples)
    assert batch["images"].shape[0] == 5
    assert batch["has_label"]["detection"].tolist() == [True, False, False, False, False]
    assert batch["has_label"]["normals"].tolist() == [False, False, True, False, False]


def test_registry_agrees_with_data_scripts():
    mod = load_script("_download")
    assert set(mod.SOURCES) == set(real.DATASETS)
    for name, src in mod.SOURCES.items():
        assert src.folder == real.DATASETS[name].folder, name
        assert (REPO / "data_scripts" / f"download_{name}.py").is_file(), name


# ----------------------------------------------------------------------------------------------
# data_scripts/_download.py against a local HTTP server (no network): resume, checksum, atomicity
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path):
    """Serves files of ``tmp_path / 'www'`` with HTTP Range support; records the Range headers."""
    import http.server
    import threading

    www = tmp_path / "www"
    www.mkdir()
    ranges: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            path = www / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            rng = self.headers.get("Range")
            ranges.append(rng)
            start = int(rng.split("=")[1].split("-")[0]) if rng else 0
            self.send_response(206 if rng else 200)
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            self.wfile.write(data[start:])

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}", ranges
    httpd.shutdown()


def bsds_tarball(tmp_path: Path, anchor_ok: bool = True) -> Path:
    import tarfile

    src = tmp_path / "src"
    make_bsds(src)
    if not anchor_ok:
        (src / "BSR" / "BSDS500" / "data").rename(src / "BSR" / "BSDS500" / "elsewhere")
    out = tmp_path / "www" / "BSR_bsds500.tgz"
    with tarfile.open(out, "w:gz") as tar:
        tar.add(src / "BSR", arcname="BSR")
    return out


def test_download_resumes_and_checks_md5(server, tmp_path):
    import hashlib

    dl = load_script("_download")
    www, url, ranges = server
    blob = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    (www / "blob.bin").write_bytes(blob)
    md5 = hashlib.md5(blob).hexdigest()
    dest = tmp_path / "dl" / "blob.bin"
    dest.parent.mkdir()
    (dest.parent / "blob.bin.part").write_bytes(blob[:100_000])  # an interrupted earlier run
    path, sha = dl.download(dl.Archive(f"{url}/blob.bin", "blob.bin", md5=md5), dest)
    assert ranges == ["bytes=100000-"] and path.read_bytes() == blob
    assert sha == hashlib.sha256(blob).hexdigest() and not (dest.parent / "blob.bin.part").exists()
    bad = tmp_path / "dl2" / "blob.bin"
    with pytest.raises(dl.ChecksumError, match="checksum"):
        dl.download(dl.Archive(f"{url}/blob.bin", "blob.bin", md5="0" * 32), bad)
    assert not bad.exists() and (bad.parent / "blob.bin.part.bad").exists()
    # no official checksum: the first download's sha256 is recorded, a changed file is refused
    rec = tmp_path / "dl3" / "blob.bin"
    dl.download(dl.Archive(f"{url}/blob.bin", "blob.bin"), rec)
    assert (rec.parent / "blob.bin.sha256").read_text().split()[0] == sha
    rec.write_bytes(b"tampered")
    (www / "blob.bin").write_bytes(b"changed upstream")
    with pytest.raises(dl.ChecksumError, match="recorded at first download"):
        dl.download(dl.Archive(f"{url}/blob.bin", "blob.bin"), rec)


def test_fetch_unpacks_atomically_and_marks_complete(server, tmp_path, monkeypatch):
    import dataclasses

    dl = load_script("_download")
    www, url, _ = server
    root = tmp_path / "root"
    src = dl.SOURCES["bsds500"]
    tgz = bsds_tarball(tmp_path, anchor_ok=False)
    arch = dataclasses.replace(src.archives[0], url=f"{url}/{tgz.name}", md5=None)
    monkeypatch.setitem(dl.SOURCES, "bsds500", dataclasses.replace(src, archives=(arch,)))
    # an archive whose layout is not the expected one: an error, and nothing left behind
    with pytest.raises(RuntimeError, match="BSR/BSDS500/data"):
        dl.fetch_dataset("bsds500", root)
    assert not (root / "BSR").exists() and not list(root.glob(".tmp-*"))
    assert dl.status("bsds500", root) == "missing"
    assert (root / ".downloads" / "BSR_bsds500.tgz").is_file()  # kept: a rerun need not fetch it
    for p in (root / ".downloads").iterdir():  # upstream fixes the archive: drop our cached copy
        p.unlink()
    bsds_tarball(tmp_path)
    folder = dl.fetch_dataset("bsds500", root)
    assert folder == root / "BSR" / "BSDS500" / "data" and (folder / dl.MARKER).is_file()
    assert dl.status("bsds500", root) == "ready"
    assert not (root / ".downloads" / tgz.name).exists()
    # the loader reads what was unpacked
    assert len(load_dataset("bsds500", root, split="test")) == 2
    (root / ".downloads" / "VOCtrainval_06-Nov-2007.tar.part").write_bytes(b"x")
    assert dl.status("voc2007", root) == "partial"
    (root / "VOCdevkit" / "VOC2012" / "Annotations").mkdir(parents=True)  # a copy of one's own
    assert dl.status("voc2012", root) == "present (no marker)"


def test_prepare_all_list(tmp_path, capsys):
    mod = load_script("prepare_all")
    make_msra(tmp_path)
    rows = dict(mod.list_sets(tmp_path))
    out = capsys.readouterr().out
    assert rows["msra10k"] == "present (no marker)" and rows["voc2007"] == "missing"
    assert "download_voc2007.py" in out and "GB" in out


def test_nyu_normals_derivation_script(tmp_path):
    make_nyu(tmp_path, n=2, normals_for=())
    assert load_dataset("nyuv2", tmp_path, split="all").label_table()["normals"] == 0
    (tmp_path / "nyuv2" / "normals").rmdir()  # the script renames its folder into place when done
    load_script("download_nyuv2").derive_normals(tmp_path, window=3)
    assert not (tmp_path / "nyuv2" / "normals.tmp").exists()
    ds = load_dataset("nyuv2", tmp_path, split="all")
    n = ds[1]["normals"]  # constant depth: a wall facing the camera, z towards the camera
    assert n.shape == (3, H, W)
    torch.testing.assert_close(n[:, 5, 7], torch.tensor([0.0, 0.0, 1.0]), atol=0.01, rtol=0)
