"""The paper's training union of the real data sets (Sec. 5), with its proportions.

One :class:`~ubernet_lite.data.union.DiverseUnion` holds the real members as it holds the synthetic
views; the counts and proportions come from the slides' table
(:data:`ubernet_lite.data.union.DATASET_TABLE`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable

import torch

from ..union import DiverseUnion, table_counts
from .base import DatasetNotFoundError, data_root, dataset_folder
from .parts import PascalPartsDataset
from .registry import load_dataset
from .sbd import SBDDataset

#: The columns of the slides' table that each member holds. VOC'12 train + val are one member
#: here (5717 + 5823 images): one sample per image, with every label PASCAL has for it.
COLUMNS: dict[str, tuple[str, ...]] = {
    "voc2007": ("voc07",),
    "voc2012": ("voc12_train", "voc12_val"),
    "nyuv2": ("nyu",),
    "msra10k": ("msra10k",),
    "bsds500": ("bsd",),
}

#: Images per member and how many carry each target (the slides' table, columns merged).
PAPER_TABLE: dict[str, dict[str, int]] = {m: table_counts(*c) for m, c in COLUMNS.items()}


#: Sampling proportions of the union: each set's share of the table's images. The paper says only
#: that it uses "a particular proportion of images per dataset, moderately favoring the high-level
#: tasks" (Sec. 5; details in its supplement, which we do not have); the table's counts are our
#: reading. NYU's 23024 and BSD's 5100 are augmented/raw-frame counts (BSD: 300 images x 17), so
#: their fewer on-disk images are drawn more often.
PAPER_PROPORTIONS: dict[str, float] = {
    k: v["images"] / sum(t["images"] for t in PAPER_TABLE.values()) for k, v in PAPER_TABLE.items()
}


def diverse_union_real(
    root: str | os.PathLike | None = None,
    split: str = "train",
    proportions: dict[str, float] | None = None,
    members: Iterable[str] | None = None,
    hold_out_parts_test: bool = True,
    sbd_split: str = "trainval",
    require_all: bool = True,
    on_error: str = "raise",
    exclude_ids: Iterable[str] = (),
) -> DiverseUnion:
    """The paper's training union of real data sets (Sec. 5), with its proportions.

    Members (``split="train"``; the test sets VOC 2007 test, PASCAL-S, BSDS500 test, NYUv2 test
    are loaded with :func:`load_dataset`):

    - ``voc2007``: VOC 2007 trainval, detection (+ semantic where VOC has it);
    - ``voc2012``: VOC 2012 trainval (VOC'12 train + val of the table), one sample per image with
      every label PASCAL has for it: detection (VOC XML), semantic (VOC's PNG, else SBD),
      semantic boundaries and boundaries (SBD), parts (PASCAL-Part). With
      ``hold_out_parts_test`` the images of the part-segmentation test set (person images of
      PASCAL-Part in VOC val) are removed: the paper "puts aside part of the PASCAL validation set,
      since that is used to test part segmentation";
    - ``nyuv2``: NYUv2 labelled train split (795 images) with normals;
    - ``msra10k``: all 10000 images, saliency;
    - ``bsds500``: BSDS500 train + val (300 images), boundaries.

    Args:
        root: the data root.
        split: only ``"train"`` (the union is a training set).
        proportions: sampling proportions: ``{member: weight}``, one weight per member, or
            ``None`` / ``"paper"`` for :data:`PAPER_PROPORTIONS`.
        members: a subset of the member names (default: all five).
        hold_out_parts_test: drop the part-segmentation test images from ``voc2012``.
        sbd_split: which SBD images lend their labels to ``voc2012``: ``"trainval"`` (the
            table's counts include VOC'12 val) or ``"train"`` (keep SBD val, the semantic boundary
            benchmark's test set, unseen).
        require_all: a missing set raises (default); else it is left out with a warning.
        on_error: the bad-file policy of every member.
        exclude_ids: further VOC 2012 image ids to leave out of ``voc2012`` (e.g. the semantic
            segmentation test images, :func:`voc2012_segmentation_val_ids`).
    """
    if split != "train":
        raise ValueError(
            f"diverse_union_real builds the training union only (split='train'), got {split!r}"
        )
    names = list(PAPER_TABLE) if members is None else list(members)
    bad = [n for n in names if n not in PAPER_TABLE]
    if bad:
        raise ValueError(f"unknown union members {bad}; the members are {list(PAPER_TABLE)}")
    built: dict[str, torch.utils.data.Dataset] = {}
    for name in names:
        try:
            built[name] = _union_member(
                name, root, hold_out_parts_test, sbd_split, on_error, require_all, exclude_ids
            )
        except DatasetNotFoundError as e:
            if require_all:
                raise
            warnings.warn(f"union: leaving out {name}: {e}", stacklevel=2)
    if not built:
        raise DatasetNotFoundError(
            f"none of the union's data sets {names} is under {data_root(root)}"
        )
    if proportions is None or proportions == "paper":
        proportions = {n: PAPER_PROPORTIONS[n] for n in built}
    elif isinstance(proportions, dict):
        proportions = {k: v for k, v in proportions.items() if k in built}
    return DiverseUnion(built, proportions, split=split)


#: The split each member loads: the training images of the slides' table.
MEMBER_SPLITS = {
    "voc2007": "trainval",
    "voc2012": "trainval",
    "nyuv2": "train",
    "msra10k": "train",
    "bsds500": "trainval",
}


def _union_member(
    name: str,
    root,
    hold_out_parts_test: bool,
    sbd_split: str,
    on_error: str,
    require_all: bool,
    exclude_ids: Iterable[str] = (),
):
    extra = {}
    if name == "voc2012":  # the one member that merges the labels of three data sets
        extra = _voc2012_labels(root, hold_out_parts_test, sbd_split, on_error, require_all)
        extra["exclude_ids"] |= set(exclude_ids)
    return load_dataset(name, root, MEMBER_SPLITS[name], on_error=on_error, **extra)


def _voc2012_labels(
    root, hold_out_parts_test: bool, sbd_split: str, on_error: str, require_all: bool
) -> dict:
    """The VOC 2012 loader's ``extra_labels`` (SBD, PASCAL-Part) and ``exclude_ids`` (the
    part-segmentation test images)."""
    dataset_folder("voc2012", root)  # the images: without them there is no member
    base = data_root(root)
    extras, exclude = [], set()
    try:
        extras.append(SBDDataset(root=base, split=sbd_split, on_error=on_error))
    except DatasetNotFoundError as e:
        if require_all:
            raise
        warnings.warn(f"union: voc2012 without SBD labels: {e}", stacklevel=4)
    try:
        extras.append(PascalPartsDataset(root=base, split="train", on_error=on_error))
        if hold_out_parts_test:
            exclude |= set(PascalPartsDataset(root=base, split="val", on_error=on_error).ids)
    except DatasetNotFoundError as e:
        if require_all:
            raise
        warnings.warn(f"union: voc2012 without PASCAL-Part labels: {e}", stacklevel=4)
    return {"extra_labels": tuple(extras), "exclude_ids": exclude}


def members_for_targets(targets: Iterable[str]) -> list[str]:
    """The union members (in :data:`PAPER_TABLE`'s order) that carry at least one of ``targets``,
    e.g. ``["nyuv2"]`` for ``{"normals"}``: a run on some tasks needs only their data sets."""
    targets = set(targets)
    return [m for m, row in PAPER_TABLE.items() if targets & set(row)]
