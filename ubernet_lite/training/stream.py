"""The trainer's data stream: union sampler -> ``(epoch, offset)`` -> micro-batches.

* :class:`MicroBatchStream` -- micro-batches of union indices (Table 1's ``i ~ U[1, N]``, members
  weighted by their proportions), keeping only samples labelled for a trained task; resumable
  from ``(epoch, offset)``.
* :class:`Prefetcher` -- loads, augments and ``collate``\\ s them, the next micro-batch in a
  background thread while the current one trains.
* :func:`to_device` -- a collated batch moved to the training device.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from ..data import collate


def to_device(batch: dict, device, non_blocking: bool = False) -> dict:
    """A collated batch with every tensor (also inside lists and dicts) moved to ``device``;
    ``has_label`` (and ``meta``) stay on the CPU: the optimiser's counters and the choice of
    branches read them, and the losses move the masks they use."""

    def move(x):
        if torch.is_tensor(x):
            return x.to(device, non_blocking=non_blocking)
        if isinstance(x, dict):
            return {k: move(v) for k, v in x.items()}
        if isinstance(x, list):
            return [move(v) for v in x]
        return x

    return {k: (v if k in ("meta", "has_label") else move(v)) for k, v in batch.items()}


class MicroBatchStream:
    """Micro-batches of union indices, resumable from ``(epoch, offset)``.

    Each epoch draws ``len(union)`` indices from the union's sampler (seeded by the epoch), drops
    the samples labelled for none of ``targets`` and chunks the rest into ``micro_batch``-sized
    groups (a last partial group included).
    """

    def __init__(self, union, targets, micro_batch: int, seed: int, dataset=None):
        self.union, self.targets, self.micro_batch = union, set(targets), micro_batch
        self.dataset = union if dataset is None else dataset
        self.sampler = union.sampler(seed=seed)
        self.epoch, self.offset = 0, 0
        self._indices: list[int] | None = None

    def _epoch_indices(self) -> list[int]:
        empty = 0
        while self._indices is None:
            self.sampler.set_epoch(self.epoch)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(self.epoch)
            keep = [i for i in self.sampler if self._labelled(i)]
            if keep:
                self._indices = keep
                break
            if empty == 0 and not any(self._labelled(i) for i in range(len(self.union))):
                raise ValueError(
                    f"no sample of the union is labelled for the trained targets {sorted(self.targets)}"
                )
            # a small union drawn with replacement can miss its few labelled samples in an epoch
            empty += 1
            if empty >= 100:
                raise ValueError(
                    f"100 epochs in a row drew no sample labelled for {sorted(self.targets)}; "
                    "expected the sampling proportions to give weight to the data sets that carry them"
                )
            self.epoch += 1
        return self._indices

    def _labelled(self, i: int) -> bool:
        mask = self.union.label_mask(i)
        return any(mask[t] for t in self.targets)

    def next_indices(self) -> list[int]:
        idx = self._epoch_indices()
        if self.offset >= len(idx):
            self.epoch, self.offset, self._indices = self.epoch + 1, 0, None
            idx = self._epoch_indices()
        chunk = idx[self.offset : self.offset + self.micro_batch]
        self.offset += len(chunk)
        return chunk

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.offset, self._indices = int(state["epoch"]), int(state["offset"]), None


class Prefetcher:
    """Collated micro-batches of ``stream`` (samples read from ``stream.dataset``) on ``device``.

    With ``prefetch``, the following micro-batch is rendered in a background thread while the
    current one trains (the data are pure functions of ``(seed, epoch, index)``: no global RNG
    is touched, so the result is the same as without prefetching). The next indices are drawn
    only after the pending batch is done, so the sampler's epoch never changes under a running
    load.
    """

    def __init__(self, stream: MicroBatchStream, device, prefetch: bool = True, share=None):
        self.stream, self.device, self.prefetch = stream, device, prefetch
        self.share = share  # indices -> this process's share of them (distributed runs)
        self._executor: ThreadPoolExecutor | None = None
        self._pending = None  # (stream position before the pending indices, future)

    def load(self, idx: list[int]) -> dict | None:
        """Samples ``idx`` of the stream's dataset (this process's share of them), collated (on
        the CPU); None for an empty share."""
        if self.share is not None:
            idx = self.share(idx)
        if not idx:
            return None
        return collate([self.stream.dataset[i] for i in idx])

    def _submit(self) -> None:
        """Draw the next indices now and render them in the background thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ubernet-data")
        state = self.stream.state_dict()
        self._pending = (state, self._executor.submit(self.load, self.stream.next_indices()))

    def next_batch(self) -> dict:
        """The next collated micro-batch, on ``device`` (None: an empty share)."""
        if not self.prefetch:
            batch = self.load(self.stream.next_indices())
        else:
            if self._pending is None:
                self._submit()
            _, future = self._pending
            batch = future.result()
            self._pending = None
            self._submit()
        return None if batch is None else to_device(batch, self.device)

    def state_dict(self) -> dict:
        """The sampler position of the *consumed* micro-batches (a prefetched one is not)."""
        return dict(self._pending[0]) if self._pending is not None else self.stream.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.close()
        self.stream.load_state_dict(state)

    def close(self) -> None:
        """Stop the prefetching thread (a later batch restarts it)."""
        if self._pending is not None:
            self.stream.load_state_dict(self._pending[0])
            self._pending = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
