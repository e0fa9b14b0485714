"""Feeding a GPU: a ``torch.utils.data.DataLoader`` with worker processes, driven by the stream.

``LoaderFeed(stream, device, workers=4)`` has the interface of :class:`.stream.Prefetcher`
(``next_batch``, ``state_dict``, ``load_state_dict``, ``close``) and replaces its one background
thread (which shares the GIL with training) by ``workers`` processes:

* the micro-batches are those of the :class:`~.stream.MicroBatchStream`: a batch sampler
  (:class:`StreamBatchSampler`) draws them in the main process, in the stream's order, and hands
  each worker ``(epoch, index)`` keys (this process's share of the micro-batch in a distributed
  run); a worker sets its copy of the dataset to that epoch and loads the sample, so the
  augmentation stays a pure function of ``(seed, epoch, index)`` whatever worker loads it;
* every batch carries the stream position after it (``(epoch, offset)``): the checkpoint stores
  the position of the last *consumed* micro-batch, not of the ones the workers have prefetched,
  so resumption stays exact;
* ``pin_memory`` (for CUDA devices) and ``persistent_workers``; the copy to the device is
  non-blocking; ``has_label`` stays on the CPU (the optimiser's counters and the lazy choice of
  branches read it: no GPU round trip).
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from ..data import collate
from .stream import MicroBatchStream, to_device

__all__ = ["LoaderFeed", "StreamBatchSampler"]


class _EpochIndexed(Dataset):
    """``dataset`` read by ``(epoch, index, position)`` keys: ``(position, sample)``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, i, position = key
        if i is None:  # the placeholder of an empty share
            return position, None
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)  # this worker's copy: augmentation of (seed, epoch, i)
        return position, self.dataset[i]


def _collate(items) -> dict:
    """Collate the samples; ``"stream"`` is the position after the micro-batch."""
    position = items[0][0]
    samples = [s for _, s in items if s is not None]
    batch = collate(samples) if samples else {"empty": True}
    batch["stream"] = position
    return batch


class StreamBatchSampler:
    """An endless batch sampler: the stream's micro-batches as lists of ``(epoch, i, position)``.

    ``share``: indices -> this process's share (distributed runs); an empty share is one
    placeholder key, so that its position still comes through.
    """

    def __init__(self, stream: MicroBatchStream, share=None):
        self.stream, self.share = stream, share

    def __iter__(self):
        while True:
            idx = self.stream.next_indices()
            epoch, position = self.stream.epoch, self.stream.state_dict()
            if self.share is not None:
                idx = self.share(idx)
            yield [(epoch, i, position) for i in idx] or [(epoch, None, position)]


class LoaderFeed:
    """Collated micro-batches of ``stream`` from ``workers`` DataLoader processes, on ``device``.

    Args:
        stream: the micro-batch stream (its ``dataset`` is read by the workers).
        device: the training device; CUDA gets pinned memory and non-blocking copies.
        workers: worker processes (0: load in the main process, as DataLoader does).
        share: indices -> this process's share (distributed runs).
        prefetch_factor: micro-batches each worker loads ahead.
    """

    def __init__(
        self,
        stream: MicroBatchStream,
        device,
        workers: int = 4,
        share=None,
        prefetch_factor: int = 2,
    ):
        self.stream, self.device, self.workers = stream, device, int(workers)
        self.share, self.prefetch_factor = share, prefetch_factor
        self.cuda = torch.device(device).type == "cuda"
        self._it = None
        self._position = stream.state_dict()  # after the last consumed micro-batch

    def _iterator(self):
        if self._it is None:
            self.stream.load_state_dict(self._position)
            extra = {}
            if self.workers > 0:
                extra = dict(persistent_workers=True, prefetch_factor=self.prefetch_factor)
            loader = DataLoader(
                _EpochIndexed(self.stream.dataset),
                batch_sampler=StreamBatchSampler(self.stream, self.share),
                collate_fn=_collate,
                num_workers=self.workers,
                pin_memory=self.cuda,
                **extra,
            )
            self._it = iter(loader)
        return self._it

    def next_batch(self) -> dict | None:
        """The next micro-batch on ``device`` (non-blocking; ``has_label`` on the CPU), or None
        for an empty share."""
        batch = next(self._iterator())
        self._position = batch.pop("stream")
        if batch.pop("empty", False):
            return None
        return to_device(batch, self.device, non_blocking=self.cuda)

    def state_dict(self) -> dict:
        """The stream position after the last consumed micro-batch."""
        return dict(self._position)

    def load_state_dict(self, state: dict) -> None:
        self.close()
        self._position = dict(state)
        self.stream.load_state_dict(state)

    def close(self) -> None:
        """Stop the workers (the next batch starts them again from the consumed position)."""
        if self._it is not None:
            shutdown = getattr(self._it, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            self._it = None
        self.stream.load_state_dict(self._position)
