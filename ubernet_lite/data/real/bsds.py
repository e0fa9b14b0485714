"""BSDS500 (Arbelaez et al., TPAMI 2011), the boundary benchmark of the paper's Table 7.

``BSR_bsds500.tgz`` unpacks to ``<root>/BSR/BSDS500/data/``:

- ``images/{train,val,test}/<id>.jpg`` (200 / 100 / 200 images, 481 x 321 or 321 x 481);
- ``groundTruth/{train,val,test}/<id>.mat``: a 1 x A cell ``groundTruth`` (A = 4..9 annotators),
  each a struct with ``Segmentation`` (uint16 region ids) and ``Boundaries`` (logical [H, W]).

Samples: ``image`` float32 [3, H, W] and ``boundaries`` uint8 [H, W] in {0, 1}, the union of the
annotators' boundary maps (a pixel is a boundary if any annotator marked it; the MIL boundary
loss tolerates their misalignment). With ``keep_annotators=True`` the sample also has
``boundaries_annotators`` uint8 [A, H, W], every annotator's map, for evaluation against each
annotator as the BSDS benchmark does (an extra key outside the batch contract: use it with
``ubernet_lite.metrics``, not through ``collate``).

Splits: ``train``, ``val``, ``test``, and ``trainval`` (the 300 training images of HED and the
paper; its table's 5100 = 300 x 17 is our reading of an augmented count).
"""

from __future__ import annotations

import numpy as np
import torch

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
    read_image,
    require_files,
)


def read_bsds_gt(path) -> torch.Tensor:
    """``groundTruth/<split>/<id>.mat`` -> every annotator's boundaries, uint8 [A, H, W]."""
    cells = as_list(mat_field(load_mat(path), "groundTruth", path))
    if not cells:
        raise CorruptFileError(f"{path}: field 'groundTruth' holds no annotator")
    maps = []
    for k, gt in enumerate(cells):
        b = np.asarray(mat_field(gt, "Boundaries", path, f"groundTruth{{{k + 1}}}"))
        if b.ndim != 2 or (maps and b.shape != maps[0].shape):
            raise CorruptFileError(f"{path}: groundTruth{{{k + 1}}}.Boundaries has shape {b.shape}")
        maps.append((b != 0).astype(np.uint8))
    return torch.from_numpy(np.stack(maps))


class BSDS500Dataset(RealDataset):
    """BSDS500 images with the ``boundaries`` target.

    Args:
        root: data root holding ``BSR/BSDS500/data``.
        split: "train", "val", "test" or "trainval".
        keep_annotators: also return ``boundaries_annotators`` [A, H, W].
        on_error: "raise" or "skip".
    """

    def __init__(
        self,
        root=None,
        split: str = "train",
        keep_annotators: bool = False,
        on_error: str = "raise",
    ):
        super().__init__(on_error)
        if split not in ("train", "val", "test", "trainval"):
            raise ValueError(
                f"bsds500 split must be 'train', 'val', 'test' or 'trainval', got {split!r}"
            )
        self.name, self.split, self.keep_annotators = "bsds500", split, keep_annotators
        self.folder = dataset_folder("bsds500", data_root(root))
        subsets = ("train", "val") if split == "trainval" else (split,)
        self.items = [
            (s, p.stem) for s in subsets for p in sorted((self.folder / "images" / s).glob("*.jpg"))
        ]
        require_files("bsds500", root, len(self.items), f"images/{'|'.join(subsets)}/*.jpg")

    def __len__(self) -> int:
        return len(self.items)

    def label_flags(self, i: int) -> dict[str, bool]:
        return {**empty_flags(), "boundaries": True}

    def _load(self, i: int) -> dict:
        subset, img_id = self.items[i]
        image = read_image(self.folder / "images" / subset / f"{img_id}.jpg")
        gt_path = self.folder / "groundTruth" / subset / f"{img_id}.mat"
        ann = read_bsds_gt(gt_path)
        check_shape(ann.numpy(), tuple(image.shape[-2:]), gt_path, "groundTruth Boundaries")
        targets = {"boundaries": ann.max(dim=0).values}
        if self.keep_annotators:
            targets["boundaries_annotators"] = ann
        return make_sample(image, targets, self.name, self.split, i, id=img_id)
