"""The union of diverse, partially labelled data sets (Sec. 3 of the paper, "diverse datasets").

No single data set carries ground truth for all seven tasks. UberNet trains on the *union* of
data sets that each label only some tasks, with a loss that only counts the labels a sample has
(Eq. 2, ``delta_{t,i}``). This module builds such a union from views of the synthetic world: every
member renders the world in its own style and keeps only the labels its real counterpart has,
following the course slides' table (reference 000, "Divers datasets"):

| member  | real data set   | images | labels kept (fraction of the images)                         |
| ------- | --------------- | ------ | ------------------------------------------------------------ |
| voc07   | VOC'07 trainval | 5011   | detection (all), semantic (422 / 5011 = 8 %)                 |
| voc12   | VOC'12 train    | 5717   | detection (all); semantic, semantic boundaries, boundaries   |
|         |                 |        | (4998 / 5717 = 87 %); human parts (1716 / 5717 = 30 %)       |
| nyu     | NYU             | 23024  | normals                                                      |
| msra10k | MSRA10K         | 10000  | saliency (one dominant object on a plain background)         |
| bsd     | BSD             | 5100   | boundaries                                                   |

A label a sample does not carry is *absent* from its dict and ``has_label[target]`` is False; it is
never filled with zeros. Which samples of a member carry a partial label is a deterministic random
subset of exactly ``round(fraction * len(member))`` items; the subsets of one member are nested
(the 30 % with parts are among the 87 % with segmentation, as the part annotations of PASCAL are a
subset of its segmented images).

The paper uses "a particular proportion of images per dataset, moderately favoring the high-level
tasks" (Sec. 5); :data:`DEFAULT_PROPORTIONS` does the same. ``proportions`` sets both how many of the
union's ``length`` items each member holds and how often :class:`UnionSampler` draws from it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, Sampler

from ..tasks import TARGETS

#: Sample keys that belong to each target (``detection`` stands for boxes, labels, difficult).
TARGET_KEYS: dict[str, tuple[str, ...]] = {
    "boundaries": ("boundaries",),
    "normals": ("normals",),
    "saliency": ("saliency",),
    "semantic": ("semantic",),
    "parts": ("parts",),
    "semantic_boundaries": ("semantic_boundaries",),
    "detection": ("boxes", "labels", "difficult"),
}

#: Keys of a member's table entry that are not targets.
MEMBER_OPTIONS = ("style", "proportion")

#: The paper's order of the rows of its data-set table (slides 000, "Divers datasets").
TABLE_ROWS = (
    "detection",
    "semantic",
    "semantic_boundaries",
    "parts",
    "normals",
    "saliency",
    "boundaries",
)

#: Image counts of the real data sets in the slides' table (for ``proportions="paper"``).
PAPER_SIZES = {"voc07": 5011, "voc12": 5717, "nyu": 23024, "msra10k": 10000, "bsd": 5100}

#: Default members: target -> fraction of the member's images labelled, plus the view's style
#: and the member's share of the union. Fractions are the slides' table counts.
DEFAULT_TABLE: dict[str, dict] = {
    "voc07": {"detection": 1.0, "semantic": 422 / 5011, "style": "scene", "proportion": 0.25},
    "voc12": {
        "detection": 1.0,
        "semantic": 4998 / 5717,
        "semantic_boundaries": 4998 / 5717,
        "boundaries": 4998 / 5717,
        "parts": 1716 / 5717,
        "style": "scene",
        "proportion": 0.30,
    },
    "nyu": {"normals": 1.0, "style": "indoor", "proportion": 0.15},
    "msra10k": {"saliency": 1.0, "style": "msra", "proportion": 0.15},
    "bsd": {"boundaries": 1.0, "style": "scene", "proportion": 0.15},
}

#: The default share of each member in the union (moderately favouring the high-level tasks).
DEFAULT_PROPORTIONS = {name: entry["proportion"] for name, entry in DEFAULT_TABLE.items()}


def stable_seed(*parts) -> int:
    """A 31-bit seed from any printable parts, the same on every machine and Python run."""
    return zlib.crc32("/".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberSpec:
    """One member of the union, parsed from a table entry.

    Attributes:
        name: the member's name (a column of the annotation matrix).
        fractions: target -> fraction of the member's images that carry it, in [0, 1]; targets
            not listed have fraction 0.
        style: the world's rendering style for this view (``"scene"``, ``"indoor"``, ``"msra"``).
        proportion: the member's (unnormalised) share of the union.
    """

    name: str
    fractions: dict[str, float]
    style: str = "scene"
    proportion: float = 1.0


def parse_table(table: Mapping[str, Mapping]) -> list[MemberSpec]:
    """Check a union table ``{name: {target: fraction, "style": str, "proportion": float}}``.

    Raises:
        ValueError: with one line saying what was expected, for an unknown task name, a fraction
            outside [0, 1], or an empty table.
    """
    if not isinstance(table, Mapping) or not table:
        raise ValueError(
            "a union table must be a non-empty dict {name: {target: fraction in [0, 1], ...}}; "
            f"got {table!r}"
        )
    specs = []
    for name, entry in table.items():
        if not isinstance(entry, Mapping):
            raise ValueError(
                f"union table entry {name!r} must be a dict {{target: fraction}}, got {entry!r}"
            )
        fractions = {}
        for key, value in entry.items():
            if key in MEMBER_OPTIONS:
                continue
            if key not in TARGETS:
                raise ValueError(
                    f"union table entry {name!r}: unknown task {key!r}; the targets are "
                    f"{list(TARGETS)} (plus the options {list(MEMBER_OPTIONS)})"
                )
            try:
                frac = float(value)
            except (TypeError, ValueError):
                frac = float("nan")
            if not 0.0 <= frac <= 1.0:
                raise ValueError(
                    f"union table entry {name!r}: the fraction of {key!r} must be a number in "
                    f"[0, 1] (1 = all images labelled), got {value!r}"
                )
            fractions[key] = frac
        style = entry.get("style", "scene")
        if not isinstance(style, str):
            raise ValueError(f"union table entry {name!r}: style must be a string, got {style!r}")
        specs.append(
            MemberSpec(str(name), fractions, style=style, proportion=entry.get("proportion", 1.0))
        )
    return specs


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
# One member: a view of the world that keeps only some labels
# --------------------------------------------------------------------------------------------


def _default_world(split: str, size: int, seed: int, style: str, length: int):
    from .synthetic import SynthWorld

    return SynthWorld(split=split, size=size, seed=seed, style=style, length=length)


class UnionMember(Dataset):
    """A view of the world with the labels of one real data set (a column of the paper's table).

    ``member[j]`` is ``world[j]`` with the labels this member does not carry removed (keys absent,
    ``has_label[t]`` False) and ``meta["dataset"] = name``. ``instances`` (not a task) is dropped.

    Args:
        spec: the member's :class:`MemberSpec`.
        length: number of images.
        split, size, seed: as for the world; the world's seed is derived from ``(seed, name)``.
        world: ``world(split=, size=, seed=, style=)`` -> an indexable data set of fully labelled
            samples (default: :class:`ubernet_lite.data.SynthWorld`).
    """

    def __init__(
        self,
        spec: MemberSpec,
        length: int,
        split: str = "train",
        size: int = 128,
        seed: int = 0,
        world: Callable | None = None,
    ):
        self.spec = spec
        self.name = spec.name
        self.style = spec.style
        self.fractions = {t: spec.fractions.get(t, 0.0) for t in TARGETS}
        self.length = int(length)
        self.split = split
        world_seed = stable_seed(seed, spec.name)
        if world is None:
            self.world = _default_world(split, size, world_seed, spec.style, self.length)
        else:
            self.world = world(split=split, size=size, seed=world_seed, style=spec.style)
        if hasattr(self.world, "__len__") and len(self.world) < self.length:
            raise ValueError(
                f"member {self.name!r} needs {self.length} images but its world has only "
                f"{len(self.world)}"
            )
        # A deterministic random rank per image; image j carries target t iff its rank is below
        # round(fraction_t * length): exact counts, nested subsets.
        g = torch.Generator().manual_seed(stable_seed(seed, split, spec.name, "labels"))
        self._rank = torch.argsort(torch.randperm(self.length, generator=g))
        self._cut = {t: round(f * self.length) for t, f in self.fractions.items()}

    def __len__(self) -> int:
        return self.length

    def label_mask(self, j: int) -> dict[str, bool]:
        """``has_label`` of item ``j`` over all seven targets, without rendering it."""
        r = int(self._rank[self._check_index(j)])
        return {t: r < self._cut[t] for t in TARGETS}

    def _check_index(self, j: int) -> int:
        j = int(j)
        if not -self.length <= j < self.length:
            raise IndexError(f"member {self.name!r}: index {j} out of range [0, {self.length})")
        return j % self.length if self.length else j

    def __getitem__(self, j: int) -> dict:
        j = self._check_index(j)
        has = self.label_mask(j)
        sample = dict(self.world[j])
        sample.pop("instances", None)
        for t in TARGETS:
            keys = TARGET_KEYS[t]
            if has[t]:
                missing = [k for k in keys if k not in sample]
                if missing:
                    raise KeyError(
                        f"member {self.name!r} should carry {t!r} but its world's sample {j} "
                        f"lacks {missing}"
                    )
            else:
                for k in keys:
                    sample.pop(k, None)
        sample["has_label"] = has
        meta = dict(sample.get("meta", {}))
        meta.update(dataset=self.name, split=self.split, index=j, style=self.style)
        sample["meta"] = meta
        return sample

    def __repr__(self) -> str:
        labels = ", ".join(f"{t}={f:.0%}" for t, f in self.fractions.items() if f > 0)
        return f"UnionMember({self.name!r}, n={self.length}, style={self.style!r}, {labels})"


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

    Item ``i`` is item ``j`` of member ``m`` (members concatenated in table order); it is a pure
    function of ``(seed, split, size, length, i)``, the table and the proportions. Use :func:`diverse_union` to build one.

    Attributes:
        members: the :class:`UnionMember` views, in table order.
        proportions: the members' normalised shares (their sizes follow them).
    """

    def __init__(
        self,
        specs: Sequence[MemberSpec],
        proportions: Sequence[float],
        length: int,
        split: str = "train",
        size: int = 128,
        seed: int = 0,
        world: Callable | None = None,
    ):
        self.split, self.size, self.seed = split, size, seed
        self.proportions = list(proportions)
        sizes = allocate(length, self.proportions)
        self.members = [
            UnionMember(spec, n, split=split, size=size, seed=seed, world=world)
            for spec, n in zip(specs, sizes, strict=True)
        ]
        self.offsets = [0]
        for m in self.members:
            self.offsets.append(self.offsets[-1] + len(m))

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, i: int) -> tuple[int, int]:
        """(member number, index within the member) of union item ``i``."""
        i = int(i)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"union index {i} out of range [0, {n})")
        i %= n
        for k in range(len(self.members)):
            if i < self.offsets[k + 1]:
                return k, i - self.offsets[k]
        raise AssertionError("unreachable")

    def __getitem__(self, i: int) -> dict:
        k, j = self.locate(i)
        sample = self.members[k][j]
        sample["meta"]["union_index"] = int(i) % len(self)
        return sample

    def label_mask(self, i: int) -> dict[str, bool]:
        """``has_label`` of union item ``i`` (without rendering it)."""
        k, j = self.locate(i)
        return self.members[k].label_mask(j)

    def annotation_matrix(
        self, from_samples: bool = False, progress: bool = False
    ) -> AnnotationMatrix:
        """Labelled images per task and member (the paper's data-set table).

        Args:
            from_samples: render every item and count its ``has_label`` (slow, but reads the data
                itself); by default the members' label masks are counted without rendering.
            progress: show a progress bar (``tqdm.auto``) over the members' images.
        """
        from ..progress import progress_bar

        counts = {t: {m.name: 0 for m in self.members} for t in TARGETS}
        for m in self.members:
            for j in progress_bar(range(len(m)), enabled=progress, desc=m.name, leave=False):
                has = m[j]["has_label"] if from_samples else m.label_mask(j)
                for t in TARGETS:
                    counts[t][m.name] += bool(has[t])
        return AnnotationMatrix(counts, {m.name: len(m) for m in self.members})

    def sampler(self, proportions=None, num_samples: int | None = None, seed: int = 0):
        """A :class:`UnionSampler` over this union (default: the union's own proportions)."""
        return UnionSampler(self, proportions=proportions, num_samples=num_samples, seed=seed)

    def __repr__(self) -> str:
        body = ",\n  ".join(repr(m) for m in self.members)
        return f"DiverseUnion(split={self.split!r}, size={self.size}, n={len(self)},\n  {body})"


class UnionSampler(Sampler[int]):
    """Draws union indices: a member with probability ``proportions[m]``, then one of its items
    uniformly, with replacement, reproducibly from ``seed`` (and the epoch, see :meth:`set_epoch`).

    This is the ``i ~ U[1, N]`` of Table 1 when the proportions are the members' sizes (the
    default); other proportions re-balance the tasks without rebuilding the union.

    Args:
        union: a :class:`DiverseUnion`.
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


def diverse_union(
    split: str = "train",
    size: int = 128,
    seed: int = 0,
    table: Mapping[str, Mapping] | None = None,
    proportions=None,
    length: int = 1000,
    real: bool = False,
    world: Callable | None = None,
    root=None,
):
    """The union of partially labelled views of the synthetic world (the paper's diverse data sets).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (passed to the world; splits are disjoint).
        size: image side in pixels.
        seed: seed of the worlds, of the labelled subsets and nothing else.
        table: ``{name: {target: fraction in [0, 1], "style": str, "proportion": float}}``;
            default :data:`DEFAULT_TABLE` (the slides' table).
        proportions: members' shares: a dict ``{name: weight}``, a list, or ``"paper"`` for the
            real data sets' sizes; default the table's ``proportion`` entries.
        length: total number of images of the union.
        real: ``True`` builds the union of the real data sets under ``root`` instead
            (:func:`ubernet_lite.data.real.diverse_union_real`, issue 8); ``size``, ``seed``,
            ``length`` and ``world`` are then unused.
        world: ``world(split=, size=, seed=, style=)`` -> fully labelled samples (default
            :class:`~ubernet_lite.data.SynthWorld`).
        root: the data root of the real data sets (with ``real=True`` only).

    Returns:
        a :class:`DiverseUnion` (a torch ``Dataset``) with ``.members``, ``.annotation_matrix()``
        and ``.sampler()``.
    """
    if real:
        try:
            from .real import diverse_union_real
        except ImportError:
            raise NotImplementedError(
                "diverse_union(real=True) needs ubernet_lite/data/real.py (issue 8); load real "
                "data sets with ul.data.load_dataset(name, root, split) meanwhile"
            ) from None
        if table is not None:
            raise ValueError(
                "diverse_union(real=True) takes its members from real.py's table; "
                "pass table=None (choose members with ul.data.real.diverse_union_real)"
            )
        return diverse_union_real(root=root, split=split, proportions=proportions)
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be an integer >= 0, got {length!r}")
    specs = parse_table(DEFAULT_TABLE if table is None else table)
    names = [s.name for s in specs]
    if isinstance(proportions, str):
        if proportions != "paper":
            raise ValueError(f"proportions: the only named choice is 'paper', got {proportions!r}")
        missing = [n for n in names if n not in PAPER_SIZES]
        if missing:
            raise ValueError(f"proportions='paper' knows only {list(PAPER_SIZES)}, not {missing}")
        proportions = {n: PAPER_SIZES[n] for n in names}
    elif proportions is None:
        proportions = [s.proportion for s in specs]
    probs = check_proportions(proportions, names)
    return DiverseUnion(specs, probs, length, split=split, size=size, seed=seed, world=world)
