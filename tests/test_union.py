"""The union of partially labelled views: masks follow the table, absent labels, sampler, errors."""

from collections import Counter

import pytest
import torch

from ubernet_lite.data import DEFAULT_TABLE, UnionSampler, diverse_union
from ubernet_lite.data import SynthWorld as world
from ubernet_lite.data.sample import TARGET_KEYS
from ubernet_lite.data.union import allocate
from ubernet_lite.tasks import TARGETS

SIZE = 64


@pytest.fixture(scope="module")
def union():
    return diverse_union(split="train", size=SIZE, seed=0, length=100, world=world)


def test_masks_match_configured_table(union):
    """Each member labels exactly round(fraction * n) images per target, no more, no less."""
    m = union.annotation_matrix()
    for member in union.members:
        n = len(member)
        entry = DEFAULT_TABLE[member.name]
        for t in TARGETS:
            assert m[t, member.name] == round(entry.get(t, 0.0) * n), (member.name, t)
    assert sum(m.sizes.values()) == len(union) == 100
    # VOC'07 has a little segmentation, but it has some; NYU has normals only
    assert 0 < m["semantic", "voc07"] < m["detection", "voc07"]
    assert m["normals"] == {
        "voc07": 0,
        "voc12": 0,
        "nyu": len(union.members[2]),
        "msra10k": 0,
        "bsd": 0,
    }


def test_samples_carry_exactly_their_labels(union):
    """has_label agrees with the mask, and unlabelled targets are absent (not zero-filled)."""
    rendered = union.annotation_matrix(from_samples=True)
    assert rendered == union.annotation_matrix()
    for i in range(0, len(union), 7):
        s = union[i]
        assert set(s["has_label"]) == set(TARGETS)
        assert s["has_label"] == union.label_mask(i)
        for t in TARGETS:
            for key in TARGET_KEYS[t]:
                assert (key in s) == s["has_label"][t], (i, t, key)
        assert "instances" not in s
        assert s["meta"]["dataset"] == union.members[union.locate(i)[0]].name
        assert s["meta"]["union_index"] == i


def test_partial_labels_are_nested_and_seeded(union):
    voc12 = union.members[1]
    masks = [voc12.label_mask(j) for j in range(len(voc12))]
    assert all(m["semantic"] for m in masks if m["parts"])  # parts images are segmented too
    other = diverse_union(split="train", size=SIZE, seed=1, length=100, world=world)
    assert [m["parts"] for m in masks] != [
        other.members[1].label_mask(j)["parts"] for j in range(len(voc12))
    ]


def test_deterministic(union):
    again = diverse_union(split="train", size=SIZE, seed=0, length=100, world=world)
    for i in (0, 33, 99):
        a, b = union[i], again[i]
        assert a.keys() == b.keys()
        for k, v in a.items():
            if isinstance(v, torch.Tensor):
                assert torch.equal(v, b[k]), (i, k)
    val = diverse_union(split="val", size=SIZE, seed=0, length=100, world=world)
    assert not torch.equal(val[0]["image"], union[0]["image"])
    assert val[0]["meta"]["split"] == "val"


def test_members_render_their_style():
    seen = []

    def recording_world(split, size, seed, style):
        seen.append(style)
        return world(split=split, size=size, seed=seed, style=style)

    u = diverse_union(size=SIZE, length=10, world=recording_world)
    assert seen == [DEFAULT_TABLE[m.name]["style"] for m in u.members]
    assert dict(zip(u.names, seen, strict=True))["msra10k"] == "msra"


def test_custom_table_and_proportions():
    table = {"a": {"semantic": 0.5, "normals": 1}, "b": {"saliency": 1.0, "style": "msra"}}
    u = diverse_union(size=SIZE, length=40, table=table, proportions={"a": 3, "b": 1}, world=world)
    m = u.annotation_matrix()
    assert m.sizes == {"a": 30, "b": 10}
    assert m["semantic"] == {"a": 15, "b": 0}
    assert m["normals"] == {"a": 30, "b": 0}
    assert m["detection"] == {"a": 0, "b": 0}
    assert "| semantic | 15 | 0 | 15 |" in m.to_markdown()
    assert repr(m).splitlines()[0].split() == ["a", "b", "total"]
    paper = diverse_union(size=SIZE, length=1000, proportions="paper", world=world)
    sizes = [len(x) for x in paper.members]
    assert sizes == [103, 117, 471, 205, 104]  # 1000 * (5011, 5717, 23024, 10000, 5100) / 48852


def test_allocate_sums_exactly():
    assert allocate(10, [1 / 3, 1 / 3, 1 / 3]) == [4, 3, 3]
    assert sum(allocate(997, [0.25, 0.3, 0.15, 0.15, 0.15])) == 997


def test_sampler_proportions_and_reproducibility(union):
    s = union.sampler(num_samples=4000, seed=3)
    draws = list(s)
    assert draws == list(union.sampler(num_samples=4000, seed=3))
    assert len(draws) == len(s) == 4000
    assert all(0 <= i < len(union) for i in draws)
    counts = Counter(union.locate(i)[0] for i in draws)
    for k, p in enumerate(union.proportions):
        assert abs(counts[k] / 4000 - p) < 0.04, (k, counts[k], p)
    s.set_epoch(1)
    assert list(s) != draws
    only = UnionSampler(union, proportions={"nyu": 1.0, "bsd": 1.0}, num_samples=500, seed=0)
    members = Counter(union.members[union.locate(i)[0]].name for i in only)
    assert set(members) == {"nyu", "bsd"} and min(members.values()) > 150


def test_sampler_feeds_a_dataloader(union):
    from ubernet_lite.data import collate

    loader = torch.utils.data.DataLoader(
        union, batch_size=4, sampler=union.sampler(num_samples=8), collate_fn=collate
    )
    batches = list(loader)
    assert len(batches) == 2
    assert batches[0]["images"].shape == (4, 3, SIZE, SIZE)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(table={"voc": {"segmentation": 1.0}}), "unknown task 'segmentation'"),
        (dict(table={"voc": {"semantic": 1.5}}), "in [0, 1]"),
        (dict(table={}), "non-empty"),
        (dict(proportions=[1, -1, 1, 1, 1]), ">= 0"),
        (dict(proportions=[0, 0, 0, 0, 0]), "all zero"),
        (dict(proportions={"coco": 1}), "unknown members"),
        (dict(proportions=[1, 2]), "expected 5 weights"),
        (dict(proportions="equal"), "'paper'"),
        (dict(length=-3), "length"),
    ],
)
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError) as err:
        diverse_union(size=SIZE, world=world, **kwargs)
    assert message in str(err.value)
    if "unknown task" in message:
        assert all(t in str(err.value) for t in TARGETS)  # the error lists the seven targets


def test_bad_sampler_input(union):
    with pytest.raises(ValueError, match=">= 0"):
        union.sampler(proportions={"nyu": -1.0})
    with pytest.raises(ValueError, match="all zero"):
        union.sampler(proportions={"nyu": 0.0})
    with pytest.raises(IndexError, match="out of range"):
        union[len(union)]


def test_real_union_is_delegated(tmp_path):
    """real=True builds the union of the real data sets (data/real/): nothing under root."""
    with pytest.raises(FileNotFoundError):
        diverse_union(real=True, root=tmp_path)
    with pytest.raises(ValueError, match="table=None"):
        diverse_union(real=True, root=tmp_path, table=DEFAULT_TABLE)
