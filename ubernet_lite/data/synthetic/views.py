"""Views of the synthetic world with the labels of the paper's data sets, and their union.

Every member of the union renders the world in its own style and keeps only the labels its real
counterpart has, in the proportions of the slides' table (:data:`ubernet_lite.data.union.DATASET_TABLE`):

| member  | real data set (column of the table) | labels kept                                       |
| ------- | ----------------------------------- | ------------------------------------------------- |
| voc07   | VOC'07 trainval                     | detection, semantic                               |
| voc12   | VOC'12 train                        | detection, semantic, semantic boundaries,         |
|         |                                     | boundaries, human parts                           |
| nyu     | NYU                                 | normals (``"indoor"`` style: a room corner)       |
| msra10k | MSRA10K                             | saliency (``"msra"`` style: one dominant object)  |
| bsd     | BSD                                 | boundaries                                        |

A label a sample does not carry is *absent* from its dict and ``has_label[target]`` is False; it is
never filled with zeros. Which samples of a member carry a partial label is a deterministic random
subset of exactly ``round(fraction * len(member))`` items; the subsets of one member are nested
(the 30 % with parts are among the 87 % with segmentation, as the part annotations of PASCAL are a
subset of its segmented images).

The paper uses "a particular proportion of images per dataset, moderately favoring the high-level
tasks" (Sec. 5); :data:`DEFAULT_PROPORTIONS` does the same. ``proportions`` sets both how many of the
union's ``length`` items each member holds and how often :class:`~ubernet_lite.data.UnionSampler`
draws from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from ...tasks import TARGETS
from ..real.union import diverse_union_real
from ..sample import TARGET_KEYS, stable_seed
from ..union import DiverseUnion, allocate, check_proportions, table_counts
from .world import SynthWorld

#: Keys of a member's table entry that are not targets.
MEMBER_OPTIONS = ("style", "proportion")

#: The default members: the column of the slides' table each copies, the world's style of the
#: view, and the member's share of the union (moderately favouring the high-level tasks).
MEMBERS: dict[str, tuple[str, str, float]] = {
    "voc07": ("voc07", "scene", 0.25),
    "voc12": ("voc12_train", "scene", 0.30),
    "nyu": ("nyu", "indoor", 0.15),
    "msra10k": ("msra10k", "msra", 0.15),
    "bsd": ("bsd", "scene", 0.15),
}


def _fractions(column: str) -> dict[str, float]:
    counts = table_counts(column)
    return {t: n / counts["images"] for t, n in counts.items() if t != "images"}


#: Default members: target -> fraction of the member's images labelled (the slides' counts),
#: plus the view's style and the member's share of the union.
DEFAULT_TABLE: dict[str, dict] = {
    name: {**_fractions(column), "style": style, "proportion": share}
    for name, (column, style, share) in MEMBERS.items()
}

#: Image counts of the real data sets in the slides' table (for ``proportions="paper"``).
PAPER_SIZES = {name: table_counts(column)["images"] for name, (column, _, _) in MEMBERS.items()}

#: The default share of each member in the union (moderately favouring the high-level tasks).
DEFAULT_PROPORTIONS = {name: entry["proportion"] for name, entry in DEFAULT_TABLE.items()}


#: The course scale's union (docs/course_recipe.md): the slides' members plus a PASCAL-Part-like
#: member whose people fill a third to most of the frame (``"person"`` style; parts only), with
#: shares that favour the high-level tasks more than the default's (the low-level tasks learn in
#: a few thousand samples; semantic, parts, detection and semantic boundaries need many more).
#: The NYU- and MSRA-like members keep their labels (normals; saliency = the object with the most
#: visible pixels) but are rendered in the ``"scene"`` style the test split has: measured, the
#: ``"indoor"`` room corner and the one-object ``"msra"`` view leave normals flat at ~15 degrees and
#: saliency at ~40 % maxF, the scene-style views reach 12.7 degrees and 45 % at 10,000 samples.
#: BSDS-like images are nearly redundant: voc12's images carry boundaries too (87 %), so bsd gives
#: its share to voc12 and nyu (runs K / L of docs/course_recipe.md). The frame-filling parts
#: member takes 0.06 of VOC'07's share (run P1: parts 23.5 -> 26.5 % mIoU, semantic 32.0 -> 32.6,
#: against run M with the shares before; taking 0.10, run P2, cost semantic 3 points).
COURSE_TABLE: dict[str, dict] = {
    "voc07": {**_fractions("voc07"), "style": "scene", "proportion": 0.09},
    "voc12": {**_fractions("voc12_train"), "style": "scene", "proportion": 0.45},
    "pascal_part": {"parts": 1.0, "style": "person", "proportion": 0.18},
    "nyu": {**_fractions("nyu"), "style": "scene", "proportion": 0.13},
    "msra10k": {**_fractions("msra10k"), "style": "scene", "proportion": 0.13},
    "bsd": {**_fractions("bsd"), "style": "scene", "proportion": 0.02},
}

#: The synthetic unions a training run can name (``TrainSettings.union``).
UNION_TABLES: dict[str, dict[str, dict]] = {"default": DEFAULT_TABLE, "course": COURSE_TABLE}


def union_table(name: str) -> dict[str, dict]:
    """The union table called ``name`` (a key of :data:`UNION_TABLES`)."""
    if name not in UNION_TABLES:
        raise ValueError(f"union must be one of {sorted(UNION_TABLES)}, got {name!r}")
    return UNION_TABLES[name]


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
            self.world = SynthWorld(
                split=split, size=size, seed=world_seed, style=spec.style, length=self.length
            )
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
            (:func:`ubernet_lite.data.real.diverse_union_real`); ``size``, ``seed``,
            ``length`` and ``world`` are then unused.
        world: ``world(split=, size=, seed=, style=)`` -> fully labelled samples (default
            :class:`~ubernet_lite.data.SynthWorld`).
        root: the data root of the real data sets (with ``real=True`` only).

    Returns:
        a :class:`DiverseUnion` (a torch ``Dataset``) with ``.members``, ``.annotation_matrix()``
        and ``.sampler()``.
    """
    if real:
        if table is not None:
            raise ValueError(
                "diverse_union(real=True) takes its members from the paper's table "
                "(ubernet_lite.data.real.union); "
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
    sizes = allocate(length, check_proportions(proportions, names))
    members = {
        spec.name: UnionMember(spec, n, split=split, size=size, seed=seed, world=world)
        for spec, n in zip(specs, sizes, strict=True)
    }
    return DiverseUnion(members, proportions, split=split, size=size, seed=seed)
