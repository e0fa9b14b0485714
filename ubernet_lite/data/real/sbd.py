"""SBD, the Semantic Boundaries Dataset (Hariharan et al., ICCV 2011), in its official layout.

``benchmark.tgz`` unpacks to ``<root>/benchmark_RELEASE/dataset/``:

- ``train.txt`` (8498 ids), ``val.txt`` (2857 ids): VOC 2011 image ids;
- ``img/<id>.jpg`` -> ``image`` float32 [3, H, W];
- ``cls/<id>.mat``: a MATLAB struct ``GTcls`` with
  ``Segmentation`` (uint8 [H, W], 0 background, 1..20; SBD has no void label) and
  ``Boundaries`` (a 20 x 1 cell of sparse [H, W] logical maps, one per VOC class)
  -> ``semantic`` int64 [H, W], ``semantic_boundaries`` uint8 [20, H, W];
- ``inst/<id>.mat``: ``GTinst`` with ``Segmentation`` (instance ids) -> ``instances`` int64
  [H, W] (only with ``with_instances``).

``boundaries`` (category-agnostic, uint8 [H, W]) is the union over the 20 classes of
``GTcls.Boundaries``: the outlines of the annotated objects. It is how the paper's table has
boundary ground truth on its PASCAL images (our reading; object outlines, not BSD-style edges).

An ``SBDDataset`` also serves as an ``extra_labels`` provider of :class:`~.voc.VOCDataset`, which
merges its labels into the VOC 2012 image of the same id.
"""

from __future__ import annotations

import numpy as np
import torch

from ...tasks import VOC_CLASSES
from .base import (
    CorruptFileError,
    RealDataset,
    as_list,
    check_shape,
    data_root,
    dataset_folder,
    empty_flags,
    load_mat,
    make_sample,
    mat_field,
    read_id_list,
    read_image,
)

K = len(VOC_CLASSES)


def read_sbd_cls(path) -> dict[str, torch.Tensor]:
    """``cls/<id>.mat`` -> ``semantic`` int64 [H, W], ``semantic_boundaries`` uint8 [20, H, W],
    ``boundaries`` uint8 [H, W] (their union). Errors name the file and the field."""
    gt = mat_field(load_mat(path), "GTcls", path)
    seg = np.asarray(mat_field(gt, "Segmentation", path, "GTcls"))
    if seg.ndim != 2:
        raise CorruptFileError(
            f"{path}: GTcls.Segmentation should be [H, W], got shape {seg.shape}"
        )
    if seg.size and (seg.min() < 0 or seg.max() > K):
        raise CorruptFileError(f"{path}: GTcls.Segmentation has values outside 0..{K}")
    cells = as_list(mat_field(gt, "Boundaries", path, "GTcls"))
    if len(cells) != K:
        raise CorruptFileError(
            f"{path}: GTcls.Boundaries should be a cell of {K} maps, got {len(cells)}"
        )
    sb = np.zeros((K, *seg.shape), dtype=np.uint8)
    for k, cell in enumerate(cells):
        arr = cell.toarray() if hasattr(cell, "toarray") else np.asarray(cell)
        if arr.shape != seg.shape:
            raise CorruptFileError(
                f"{path}: GTcls.Boundaries{{{k + 1}}} has shape {arr.shape}, expected {seg.shape}"
            )
        sb[k] = arr != 0
    return {
        "semantic": torch.from_numpy(seg.astype(np.int64)),
        "semantic_boundaries": torch.from_numpy(sb),
        "boundaries": torch.from_numpy(sb.max(axis=0)),
    }


def read_sbd_inst(path) -> torch.Tensor:
    """``inst/<id>.mat`` -> ``instances`` int64 [H, W] (0 background, 1..N)."""
    gt = mat_field(load_mat(path), "GTinst", path)
    seg = np.asarray(mat_field(gt, "Segmentation", path, "GTinst"))
    return torch.from_numpy(seg.astype(np.int64))


class SBDDataset(RealDataset):
    """SBD images with semantic labels, per-class and category-agnostic boundaries.

    Args:
        root: data root holding ``benchmark_RELEASE/dataset``.
        split: "train" (SBD's train.txt), "val" (val.txt) or "trainval" (both).
        with_instances: also return ``instances`` from ``inst/<id>.mat``.
        on_error: "raise" or "skip".
    """

    def __init__(
        self, root=None, split: str = "train", with_instances: bool = False, on_error: str = "raise"
    ):
        super().__init__(on_error)
        if split not in ("train", "val", "trainval"):
            raise ValueError(f"SBD split must be 'train', 'val' or 'trainval', got {split!r}")
        self.name, self.split = "sbd", split
        self.folder = dataset_folder("sbd", data_root(root))
        parts = ("train", "val") if split == "trainval" else (split,)
        self.ids = [i for s in parts for i in read_id_list(self.folder / f"{s}.txt", "sbd")]
        self._id_set = set(self.ids)
        self.with_instances = with_instances

    def __len__(self) -> int:
        return len(self.ids)

    # -- extra_labels protocol (merging into VOC 2012) --
    def covers(self, img_id: str) -> bool:
        return img_id in self._id_set

    def flags_for(self, img_id: str) -> dict[str, bool]:
        return {"semantic": True, "semantic_boundaries": True, "boundaries": True}

    def labels_for(self, img_id: str, hw) -> dict[str, torch.Tensor]:
        path = self.folder / "cls" / f"{img_id}.mat"
        out = read_sbd_cls(path)
        check_shape(out["semantic"].numpy(), hw, path, "GTcls.Segmentation")
        return out

    # -- Dataset --
    def label_flags(self, i: int) -> dict[str, bool]:
        return {**empty_flags(), **self.flags_for(self.ids[i])}

    def _load(self, i: int) -> dict:
        img_id = self.ids[i]
        image = read_image(self.folder / "img" / f"{img_id}.jpg")
        targets = self.labels_for(img_id, tuple(image.shape[-2:]))
        if self.with_instances:
            path = self.folder / "inst" / f"{img_id}.mat"
            inst = read_sbd_inst(path)
            check_shape(inst.numpy(), tuple(image.shape[-2:]), path, "GTinst.Segmentation")
            targets["instances"] = inst
        return make_sample(image, targets, self.name, self.split, i, id=img_id)
