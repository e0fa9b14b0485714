"""The DataLoader feed: the stream's micro-batches, bit-identical to the thread prefetcher's,
from worker processes; exact resumption from the consumed position."""

from __future__ import annotations

import re

import torch

from ubernet_lite import data
from ubernet_lite.training.loader import LoaderFeed
from ubernet_lite.training.stream import MicroBatchStream, Prefetcher

TARGETS = {"semantic", "normals", "saliency", "boundaries"}


def _stream(length: int = 12) -> MicroBatchStream:
    union = data.diverse_union(split="train", size=64, seed=0, length=length)
    dataset = data.TransformedDataset(union, data.train_transforms(size=64), seed=0)
    return MicroBatchStream(union, TARGETS, micro_batch=3, seed=0, dataset=dataset)


def _same(a: dict, b: dict) -> None:
    assert a["images"].shape == b["images"].shape
    assert torch.equal(a["images"], b["images"])
    for t, m in a["has_label"].items():
        assert torch.equal(m, b["has_label"][t]) and m.device.type == "cpu"
    assert [m["index"] for m in a["meta"]] == [m["index"] for m in b["meta"]]


def test_loader_workers_give_the_prefetchers_batches_across_epochs_and_resume_exactly():
    """Bit-identical with the reference rendered on one thread, as DataLoader workers render
    (with more intra-op threads some reductions round differently: ~4e-7)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = Prefetcher(_stream(), "cpu", prefetch=False)
        expected = [ref.next_batch() for _ in range(7)]  # 12 images, micro-batch 3: two epochs
    finally:
        torch.set_num_threads(threads)
    feed = LoaderFeed(_stream(), "cpu", workers=2)
    try:
        got = [feed.next_batch() for _ in range(4)]
        state = feed.state_dict()
    finally:
        feed.close()
    for a, b in zip(got, expected[:4], strict=True):
        _same(a, b)
    resumed = LoaderFeed(_stream(), "cpu", workers=2)
    try:
        resumed.load_state_dict(state)
        rest = [resumed.next_batch() for _ in range(3)]
    finally:
        resumed.close()
    for a, b in zip(rest, expected[4:], strict=True):
        _same(a, b)


def test_loader_gives_shares_and_none_for_an_empty_share():
    feed = LoaderFeed(_stream(), "cpu", workers=0, share=lambda idx: idx[3:])
    assert feed.next_batch() is None  # micro-batch of 3: rank's share [3:] is empty
    assert feed.state_dict()["offset"] == 3
    feed.close()


def test_bench_data_real_prints_images_per_second_against_workers(tmp_path, capsys):
    from test_trainer_real import fixture_root

    from ubernet_lite import bench

    root = fixture_root(tmp_path / "real")
    argv = ["data", "--real", "--data-root", str(root), "--size", "64", "--workers", "0", "2"]
    threads = torch.get_num_threads()
    bench.main([*argv, "--batches", "2"])
    out = capsys.readouterr().out
    rates = [float(x) for x in re.findall(r"workers +\d+: +([\d.]+) images/s", out)]
    assert len(rates) == 2 and all(r > 0 for r in rates), out
    # the main process loads with one torch thread, then the caller's count comes back
    assert "1 torch thread(s) in the main process" in out and torch.get_num_threads() == threads
