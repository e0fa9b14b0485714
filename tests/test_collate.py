"""collate: the batch contract of docs/design.md for partially labelled samples."""

import pytest
import torch

from ubernet_lite.data import SynthWorld as world
from ubernet_lite.data import collate, crop, diverse_union
from ubernet_lite.tasks import TARGETS


@pytest.fixture(scope="module")
def union():
    return diverse_union(size=64, length=40, world=world)


def pick(union, names, needs="detection"):
    """The first sample of each named member (for voc12: the first with ``needs`` labelled)."""
    out = []
    for n in names:
        i = union.offsets[union.names.index(n)]
        while n == "voc12" and not union.label_mask(i)[needs]:
            i += 1
        out.append(union[i])
    return out


def test_batch_contract(union):
    samples = pick(union, ["voc12", "nyu", "msra10k", "voc07"], needs="semantic")
    b = collate(samples)
    assert b["images"].shape == (4, 3, 64, 64) and b["images"].dtype == torch.float32
    assert b["image_sizes"] == [(64, 64)] * 4
    assert set(b["has_label"]) == set(TARGETS)
    for t in TARGETS:
        assert b["has_label"][t].dtype == torch.bool and b["has_label"][t].shape == (4,)
        assert b["has_label"][t].tolist() == [s["has_label"][t] for s in samples]
    assert b["has_label"]["normals"].tolist() == [False, True, False, False]
    tg = b["targets"]
    assert tg["normals"].shape == (4, 3, 64, 64) and tg["normals"].dtype == torch.float32
    assert tg["saliency"].dtype == torch.uint8 and tg["semantic"].dtype == torch.int64
    # unlabelled samples: ignore 255 (zero normals), labelled ones: the sample's own values
    assert (tg["saliency"][[0, 1, 3]] == 255).all()
    assert torch.equal(tg["saliency"][2], samples[2]["saliency"])
    assert (tg["normals"][[0, 2, 3]] == 0).all()
    assert torch.equal(tg["normals"][1], samples[1]["normals"])
    assert torch.equal(tg["semantic"][0], samples[0]["semantic"])
    assert (tg["semantic"][[1, 2]] == 255).all()
    assert [len(x) for x in tg["boxes"]] == [len(s.get("boxes", [])) for s in samples]
    assert tg["boxes"][1].shape == (0, 4) and tg["labels"][1].dtype == torch.int64
    assert [m["dataset"] for m in b["meta"]] == ["voc12", "nyu", "msra10k", "voc07"]


def test_only_carried_dense_targets_are_present(union):
    b = collate(pick(union, ["nyu", "msra10k"]))
    assert set(b["targets"]) == {"normals", "saliency", "boxes", "labels", "difficult"}
    assert not b["has_label"]["detection"].any()


def test_padding_to_the_largest_sample(union):
    a, c = pick(union, ["voc12", "nyu"], needs="semantic")
    a = crop(a, 0, 0, 30, 40)
    b = collate([a, c])
    assert b["images"].shape == (2, 3, 64, 64) and b["image_sizes"] == [(30, 40), (64, 64)]
    assert (b["images"][0, :, 30:] == 0).all() and (b["images"][0, :, :, 40:] == 0).all()
    assert torch.equal(b["images"][0, :, :30, :40], a["image"])
    assert (b["targets"]["semantic"][0, 30:] == 255).all()
    assert torch.equal(b["targets"]["semantic"][0, :30, :40], a["semantic"])
    assert (b["targets"]["normals"][1] == c["normals"]).all()
    sb = b["targets"]["semantic_boundaries"]
    assert (
        sb.shape[:2] == (2, a["semantic_boundaries"].shape[0]) and (sb[0, :, :, 40:] == 255).all()
    )


def test_bad_input(union):
    s = pick(union, ["nyu"])[0]
    with pytest.raises(ValueError, match="non-empty list"):
        collate([])
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        collate([{**s, "image": torch.rand(48, 48)}])
    with pytest.raises(ValueError, match="has_label"):
        collate([{k: v for k, v in s.items() if k != "has_label"}])
    liar = {**s, "has_label": {**s["has_label"], "saliency": True}}
    with pytest.raises(ValueError, match="no 'saliency' key"):
        collate([liar])
