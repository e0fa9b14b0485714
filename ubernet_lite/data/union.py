"""The union of diverse, partially labelled data sets (Sec. 3 of the paper, "diverse datasets").

No single data set carries ground truth for all seven tasks. UberNet trains on the *union* of
data sets that each label only some tasks, with a loss that only counts the labels a sample has
(Eq. 2, ``delta_{t,i}``). :data:`DATASET_TABLE` is the paper's table of those data sets (the
course slides' "Divers datasets", reference 000): how many images each has and how many of them
carry each target. Two kinds of members fill a union, one class holds them:

- views of the synthetic world that keep only the labels of a real data set
  (:class:`~ubernet_lite.data.synthetic.views.UnionMember`, :func:`ubernet_lite.data.diverse_union`);
- the real data sets themselves (:func:`ubernet_lite.data.real.diverse_union_real`).

A member is any ``Dataset`` whose samples follow docs/design.md and that has
``label_mask(j)`` (``has_label`` of item ``j`` without decoding or rendering it).
:class:`DiverseUnion` concatenates the members and gives each a share of the draws
(``proportions``), :class:`UnionSampler` draws by those shares, and :class:`AnnotationMatrix`
counts the labels of a union: the paper's table computed from the data.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence

import torch
from torch.utils.data import Dataset, Sampler

from ..progress import progress_bar
from ..tasks import TARGETS
from .sample import stable_seed

#: The data-set table of the course slides (reference 000, "Divers datasets"), the only copy:
#: images per training set (``"images"``) and how many of them carry each target (targets not
#: listed: none). The synthetic union's fractions (``synthetic/views.py``) and the real union's
#: counts and proportions (``real/union.py``) are derived from it.
DATASET_TABLE: dict[str, dict[str, int]] = {
    "voc07": {"images": 5011, "detection": 5011, "semantic": 422},  # VOC'07 trainval
    "voc12_train": {"images": 5717, "detection": 5717, "semantic": 4998,
                    "semantic_boundaries": 4998, "boundaries": 4998, "parts": 1716},
    "voc12_val": {"images": 5823, "detection": 5823, "semantic": 5105,
                  "semantic_boundaries": 5105, "boundaries": 5105, "parts": 1817},
    "nyu": {"images": 23024, "normals": 23024},
    "msra10k": {"images": 10000, "saliency": 10000},
    "bsd": {"images": 5100, "boundaries": 5100},
}  # fmt: skip

#: The paper's order of the rows of its data-set table.
TABLE_ROWS = (
    "detection",
    "semantic",
    "semantic_boundaries",
    "parts",
    "normals",
    "saliency",
    "boundaries",
)


def table_counts(*columns: str) -> dict[str, int]:
    """``{"images": n, target: count}`` of one column of :data:`DATASET_TABLE`, or the sum of
    several (e.g. VOC'12 train + val)."""
    out: dict[str, int] = {}
    for c in columns:
        for key, n in DATASET_TABLE[c].items():
            out[key] = out.get(key, 0) + n
    return out


# --------------------------------------------------------------------------------------------
# Proportions
# --------------------------------------------------------------------------------------------


def check_proportions(proportions, names: Sequence[str]) -> list[float]:
    """Normalised proportions, one per name, from a dict ``{name: weight}`` or a sequence.

    Weights must be finite and >= 0 and not all zero; a dict must name only known members
    (members it leaves out get 0).
    """
    names = list(names)
    if isinstance(proportions, Mapping):
        unknown = [k for k in proportions if k not in names]
        if unknown:
            raise ValueError(f"proportions name unknown members {unknown}; the members are {names}")
        weights = [proportions.get(n, 0.0) for n in names]
    elif isinstance(proportions, Sequence) and not isinstance(proportions, str):
        weights = list(proportions)
        if len(weights) != len(names):
            raise ValueError(
                f"proportions: expected {len(names)} weights (one per member {names}), "
                f"got {len(weights)}"
            )
    else:
        raise ValueError(
            f"proportions must be a dict {{member: weight}} or a list of {len(names)} weights, "
            f"got {proportions!r}"
        )
    try:
        weights = [float(w) for w in weights]
    except (TypeError, ValueError):
        raise ValueError(f"proportions must be numbers, got {proportions!r}") from None
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise ValueError(
            f"proportions must be finite and >= 0, got {dict(zip(names, weights, strict=True))}"
        )
    total = sum(weights)
    if total <= 0:
        raise ValueError(
            f"proportions are all zero ({dict(zip(names, weights, strict=True))}); "
            "give at least one member a positive weight"
        )
    return [w / total for w in weights]


def allocate(length: int, proportions: Sequence[float]) -> list[int]:
    """Split ``length`` items by ``proportions`` (largest remainder; sums exactly to ``length``)."""
    raw = [p * length for p in proportions]
    counts = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda k: (-(raw[k] - counts[k]), k))
    for k in order[: length - sum(counts)]:
        counts[k] += 1
    return counts


# --------------------------------------------------------------------------------------------
# The annotation matrix (the paper's table, computed from the data)
# --------------------------------------------------------------------------------------------


class AnnotationMatrix:
    """Counts of labelled images, task x member, plus the members' sizes.

    ``m["semantic"]`` is ``{member: count}``; ``m["semantic", "voc12"]`` one count;
    ``m.totals()`` the count per task over the union. Printing it gives the paper's table.
    """

    def __init__(self, counts: Mapping[str, Mapping[str, int]], sizes: Mapping[str, int]):
        self.members = list(sizes)
        self.sizes = dict(sizes)
        self.tasks = [t for t in TABLE_ROWS if t in counts]
        self.counts = {t: {m: int(counts[t].get(m, 0)) for m in self.members} for t in self.tasks}

    def __getitem__(self, key):
        if isinstance(key, tuple):
            task, member = key
            return self.counts[task][member]
        return dict(self.counts[key])

    def __eq__(self, other) -> bool:
        if not isinstance(other, AnnotationMatrix):
            return NotImplemented
        return self.counts == other.counts and self.sizes == other.sizes

    def totals(self) -> dict[str, int]:
        """Labelled images per task over the whole union."""
        return {t: sum(row.values()) for t, row in self.counts.items()}

    def to_dict(self) -> dict[str, dict[str, int]]:
        """``{"images": sizes, task: {member: count}}``."""
        return {"images": dict(self.sizes), **{t: dict(r) for t, r in self.counts.items()}}

    def _rows(self) -> list[list[str]]:
        rows = [["", *self.members, "total"]]
        rows.append(["images", *map(str, self.sizes.values()), str(sum(self.sizes.values()))])
        for t in self.tasks:
            row = self.counts[t]
            rows.append([t, *map(str, row.values()), str(sum(row.values()))])
        return rows

    def to_markdown(self) -> str:
        """The matrix as a Markdown table."""
        rows = self._rows()
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines)

    def __repr__(self) -> str:
        rows = self._rows()
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
        out = []
        for r in rows:
            cells = [r[0].ljust(widths[0])] + [
                c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
            ]
            out.append("  ".join(cells).rstrip())
        return "\n".join(out)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


# --------------------------------------------------------------------------------------------
# The union and its sampler
# --------------------------------------------------------------------------------------------


class DiverseUnion(Dataset):
    """The union of partially labelled members: a single training set (Sec. 3).

    Item ``i`` is item ``j`` of member ``m`` (members concatenated in order); ``meta["dataset"]``
    names the member, ``meta["union_index"]`` is ``i``. Build one with
    :func:`ubernet_lite.data.diverse_union` (views of the synthetic world) or
    :func:`ubernet_lite.data.real.diverse_union_real` (the real data sets).

    Args:
        members: ``{name: data set}`` in order; each member has ``label_mask(j)``.
        proportions: the members' shares of the draws: ``{name: weight}`` or one weight per
            member (>= 0, not all 0; normalised by :func:`check_proportions`).
        split, size, seed: what the union was built with (shown by ``repr``; ``None`` where it
            does not apply, e.g. the size of real images).

    Attributes:
        members: the member data sets, in order.
        proportions: the members' normalised shares.
        offsets: ``offsets[m]`` is the union index of member ``m``'s first item; ``offsets[-1]``
            the union's length.
    """

    def __init__(
        self,
        members: Mapping[str, Dataset],
        proportions,
        split: str | None = None,
        size: int | None = None,
        seed: int | None = None,
    ):
        if not members:
            raise ValueError("a union needs at least one member data set")
        self.split, self.size, self.seed = split, size, seed
        self._names = list(members)
        self.members = list(members.values())
        self.proportions = check_proportions(proportions, self._names)
        self.offsets = [0]
        for m in self.members:
            self.offsets.append(self.offsets[-1] + len(m))

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def member(self, name: str) -> Dataset:
        """The member called ``name``."""
        if name not in self._names:
            raise KeyError(f"no member {name!r}; the members are {self._names}")
        return self.members[self._names.index(name)]

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, i: int) -> tuple[int, int]:
        """(member number, index within the member) of union item ``i``."""
        i = int(i)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"union index {i} out of range [0, {n})")
        i %= n
        k = bisect.bisect_right(self.offsets, i) - 1
        return k, i - self.offsets[k]

    def __getitem__(self, i: int) -> dict:
        k, j = self.locate(i)
        sample = self.members[k][j]
        sample["meta"]["union_index"] = int(i) % len(self)
        return sample

    def label_mask(self, i: int) -> dict[str, bool]:
        """``has_label`` of union item ``i`` (without rendering or decoding it)."""
        k, j = self.locate(i)
        return self.members[k].label_mask(j)

    def label_table(
        self, from_samples: bool = False, progress: bool = False
    ) -> dict[str, dict[str, int]]:
        """``{member: {"images": n, target: count}}``: labelled images per member and target.

        Args:
            from_samples: load every item and count its ``has_label`` (slow, but reads the data
                itself); by default the members' label masks are counted without loading.
            progress: show a progress bar (``tqdm.auto``) over the members' images.
        """
        table = {}
        for name, m in zip(self._names, self.members, strict=True):
            counts = {"images": len(m), **dict.fromkeys(TARGETS, 0)}
            for j in progress_bar(range(len(m)), enabled=progress, desc=name, leave=False):
                has = m[j]["has_label"] if from_samples else m.label_mask(j)
                for t in TARGETS:
                    counts[t] += bool(has[t])
            table[name] = counts
        return table

    def annotation_matrix(
        self, from_samples: bool = False, progress: bool = False
    ) -> AnnotationMatrix:
        """Labelled images per task and member (the paper's data-set table, from the data); the
        arguments are those of :meth:`label_table`."""
        table = self.label_table(from_samples=from_samples, progress=progress)
        counts = {t: {m: table[m][t] for m in self._names} for t in TARGETS}
        return AnnotationMatrix(counts, {m: table[m]["images"] for m in self._names})

    def sample_weights(self) -> torch.Tensor:
        """float64 [N]: the probability of drawing each union index (sums to 1)."""
        w = torch.zeros(len(self), dtype=torch.float64)
        for k, p in enumerate(self.proportions):
            a, b = self.offsets[k], self.offsets[k + 1]
            if b > a:
                w[a:b] = p / (b - a)
        return w / w.sum()

    def sampler(self, proportions=None, num_samples: int | None = None, seed: int = 0):
        """A :class:`UnionSampler` over this union (default: the union's own proportions)."""
        return UnionSampler(self, proportions=proportions, num_samples=num_samples, seed=seed)

    def __repr__(self) -> str:
        head = [
            f"{k}={v!r}" for k, v in (("split", self.split), ("size", self.size)) if v is not None
        ]
        head.append(f"n={len(self)}")
        body = ",\n  ".join(repr(m) for m in self.members)
        return f"DiverseUnion({', '.join(head)},\n  {body})"


class UnionSampler(Sampler[int]):
    """Draws union indices: a member with probability ``proportions[m]``, then one of its items
    uniformly, with replacement, reproducibly from ``seed`` (and the epoch, see :meth:`set_epoch`).

    This is the ``i ~ U[1, N]`` of Table 1 when the proportions are the members' sizes (the
    default); other proportions re-balance the tasks without rebuilding the union.

    Args:
        union: a :class:`DiverseUnion` (synthetic or real members alike).
        proportions: dict ``{member: weight}`` or a list of weights; default the union's own.
        num_samples: indices per epoch (default ``len(union)``).
        seed: the seed of the draws.
    """

    def __init__(self, union: DiverseUnion, proportions=None, num_samples=None, seed: int = 0):
        self.union = union
        names = union.names
        probs = check_proportions(union.proportions if proportions is None else proportions, names)
        empty = [
            n for n, p, m in zip(names, probs, union.members, strict=True) if p > 0 and not len(m)
        ]
        if empty:
            raise ValueError(f"proportions give weight to members without images: {empty}")
        self.probs = torch.tensor(probs, dtype=torch.float64)
        self.num_samples = len(union) if num_samples is None else int(num_samples)
        if self.num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw a different (still reproducible) sequence for each epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        g = torch.Generator().manual_seed(stable_seed(self.seed, self.epoch, "sampler"))
        n = self.num_samples
        member = (
            torch.multinomial(self.probs, n, replacement=True, generator=g)
            if n
            else torch.zeros(0, dtype=torch.long)
        )
        sizes = torch.tensor([len(m) for m in self.union.members], dtype=torch.float64)
        offsets = torch.tensor(self.union.offsets[:-1], dtype=torch.long)
        within = (torch.rand(n, generator=g, dtype=torch.float64) * sizes[member]).long()
        yield from (offsets[member] + within).tolist()
