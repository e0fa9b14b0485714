"""The registry of the paper's real data sets, ``load_dataset``, and each target's test set.

``load_dataset(name, root=None, split=...)`` returns a :class:`~.base.RealDataset` whose samples
follow docs/design.md.

| name           | loader (module)        | targets                                         | folder under the data root       |
| -------------- | ---------------------- | ----------------------------------------------- | -------------------------------- |
| voc2007        | voc.VOCDataset         | detection, semantic (422 trainval images)       | VOCdevkit/VOC2007                |
| voc2012        | voc.VOCDataset         | detection, semantic (VOC's own seg. subset)     | VOCdevkit/VOC2012                |
| sbd            | sbd.SBDDataset         | semantic, semantic_boundaries, boundaries       | benchmark_RELEASE/dataset        |
| pascal_parts   | parts.PascalPartsDataset | parts (six human parts)                      | pascal_parts/Annotations_Part    |
| nyuv2          | nyu.NYUv2Dataset       | normals (derived from depth, see nyu.py)        | nyuv2                            |
| msra10k        | msra.MSRA10KDataset    | saliency                                        | MSRA10K_Imgs_GT/Imgs             |
| bsds500        | bsds.BSDS500Dataset    | boundaries (union of the annotators)            | BSR/BSDS500/data                 |
| pascal_s       | pascal_s.PascalSDataset | saliency (graded masks binarised at 0.5)       | pascal_s/datasets                |

:data:`TEST_SETS` / :func:`load_test_sets` name each target's test set (VOC 2007 test, VOC 2012
segmentation val, SBD val, PASCAL-Part val, PASCAL-S, BSDS500 test, NYUv2 test).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from ...tasks import TARGETS
from .base import FOLDERS, RealDataset, data_root, read_id_list
from .bsds import BSDS500Dataset
from .msra import MSRA10KDataset
from .nyu import NYUv2Dataset
from .parts import PascalPartsDataset
from .pascal_s import PascalSDataset
from .sbd import SBDDataset
from .voc import VOCDataset


@dataclass(frozen=True)
class DatasetInfo:
    """What the project knows about one real data set.

    Attributes:
        name: the ``load_dataset`` name (also ``data_scripts/download_<name>.py``).
        loader: the :class:`~.base.RealDataset` class that reads it.
        splits: the splits the loader accepts; the first is the default.
        targets: the targets its samples carry.
        kwargs: fixed keyword arguments of the loader (e.g. the VOC year).
    """

    name: str
    loader: type[RealDataset]
    splits: tuple[str, ...]
    targets: tuple[str, ...]
    kwargs: tuple[tuple[str, object], ...] = ()

    @property
    def folder(self) -> str:
        """Where the official archive unpacks to, relative to the data root (:data:`~.base.FOLDERS`)."""
        return FOLDERS[self.name]

    @property
    def script(self) -> str:
        return f"data_scripts/download_{self.name}.py"


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo("voc2007", VOCDataset, ("trainval", "train", "val", "test"),
                    ("detection", "semantic"), (("year", "2007"),)),
        DatasetInfo("voc2012", VOCDataset, ("trainval", "train", "val"),
                    ("detection", "semantic"), (("year", "2012"),)),
        DatasetInfo("sbd", SBDDataset, ("train", "val", "trainval"),
                    ("semantic", "semantic_boundaries", "boundaries")),
        DatasetInfo("pascal_parts", PascalPartsDataset, ("train", "val", "trainval"), ("parts",)),
        DatasetInfo("nyuv2", NYUv2Dataset, ("train", "test", "all"), ("normals",)),
        DatasetInfo("msra10k", MSRA10KDataset, ("train", "all"), ("saliency",)),
        DatasetInfo("bsds500", BSDS500Dataset, ("train", "val", "test", "trainval"), ("boundaries",)),
        DatasetInfo("pascal_s", PascalSDataset, ("test", "all"), ("saliency",)),
    ]
}  # fmt: skip
assert set(DATASETS) == set(FOLDERS)


def _info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise KeyError(f"unknown data set {name!r}; the real data sets are {sorted(DATASETS)}")
    return DATASETS[name]


def load_dataset(
    name: str, root: str | os.PathLike | None = None, split: str | None = None, **kwargs
):
    """One real data set by name, e.g. ``load_dataset("voc2007", root, split="trainval")``.

    Args:
        name: one of :data:`DATASETS` (voc2007, voc2012, sbd, pascal_parts, nyuv2, msra10k,
            bsds500, pascal_s).
        root: the data root (default ``$UBERNET_DATA`` or ``~/data/ubernet``).
        split: one of ``DATASETS[name].splits`` (default: the first).
        **kwargs: passed to the loader (e.g. ``on_error="skip"``, ``with_instances=True``).
    Returns:
        a :class:`RealDataset` whose samples follow docs/design.md.
    """
    info = _info(name)
    split = info.splits[0] if split is None else split
    if split not in info.splits:
        raise ValueError(f"data set {name!r} has no split {split!r}; its splits are {info.splits}")
    return info.loader(root=data_root(root), split=split, **dict(info.kwargs), **kwargs)


def available_datasets(root: str | os.PathLike | None = None) -> dict[str, bool]:
    """``{name: folder present}`` for every registered set (a cheap presence check)."""
    base = data_root(root)
    return {name: (base / info.folder).is_dir() for name, info in DATASETS.items()}


def voc2012_segmentation_val_ids(root: str | os.PathLike | None = None) -> list[str]:
    """The ids of VOC 2012's ``ImageSets/Segmentation/val.txt`` (the semantic segmentation test
    set of :data:`TEST_SETS`), or ``[]`` where VOC 2012 or the list is not there."""
    lst = data_root(root) / DATASETS["voc2012"].folder / "ImageSets" / "Segmentation" / "val.txt"
    return read_id_list(lst, "voc2012") if lst.is_file() else []


# ---------------------------------------------------------------------------------------------
# The test sets (Sec. 5, Tables 2-8).
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSetInfo:
    """Where a target is evaluated: ``load_dataset(name, root, split, **kwargs)``."""

    name: str
    split: str
    kwargs: tuple[tuple[str, object], ...] = ()
    note: str = ""


#: The test set of each target. The paper's own test sets where their ground truth is public;
#: VOC 2012 *test* (Table 3) has none, so semantic segmentation is tested on VOC 2012's
#: segmentation val (which the trainer then leaves out of the training union).
TEST_SETS: dict[str, EvalSetInfo] = {
    "detection": EvalSetInfo("voc2007", "test", note="Table 2: VOC 2007 test"),
    "semantic": EvalSetInfo(
        "voc2012", "val", (("image_set", "segmentation"),), "Table 3 (VOC 2012 val for test)"
    ),
    "semantic_boundaries": EvalSetInfo("sbd", "val", note="Table 5: VOC 2010 val of SBD [22]"),
    "parts": EvalSetInfo(
        "pascal_parts", "val", note="Table 4: the held-out PASCAL-Part person set"
    ),
    "saliency": EvalSetInfo("pascal_s", "test", note="Table 6: PASCAL-S"),
    "boundaries": EvalSetInfo("bsds500", "test", note="Table 7: BSDS500 test"),
    "normals": EvalSetInfo("nyuv2", "test", note="Table 8: NYUv2 test (654 images)"),
}


def load_test_sets(
    root: str | os.PathLike | None = None,
    targets: Iterable[str] | None = None,
    on_error: str = "raise",
) -> dict[str, torch.utils.data.Dataset]:
    """``{target: test data set}`` of :data:`TEST_SETS` for ``targets`` (default: all seven).

    A set that is not under the root raises :class:`DatasetNotFoundError` naming it and the
    script that fetches it. Samples keep their original sizes (evaluate with batch size 1, or
    pad: ``collate`` records every image's size).
    """
    targets = list(TARGETS) if targets is None else list(targets)
    unknown = [t for t in targets if t not in TEST_SETS]
    if unknown:
        raise KeyError(f"no test set for targets {unknown}; the targets are {list(TEST_SETS)}")
    out = {}
    for t in targets:
        ts = TEST_SETS[t]
        out[t] = load_dataset(ts.name, root, ts.split, on_error=on_error, **dict(ts.kwargs))
    return out
