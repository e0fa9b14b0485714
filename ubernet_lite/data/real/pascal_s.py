"""PASCAL-S (Li et al., CVPR 2014), the saliency test set of the paper's Table 6.

``salObj.zip`` unpacks (we keep it under ``<root>/pascal_s/``) to
``datasets/imgs/pascal/<n>.jpg`` (850 images) and ``datasets/masks/pascal/<n>.png``, graded masks
whose grey level is the fraction of the 12 subjects that chose the object (0..255); a mask
stored as 1-bit, palette or 16-bit PNG is read as the grey levels it shows (``read_grey_mask``).

Samples: ``image`` float32 [3, H, W], ``saliency`` uint8 [H, W] in {0, 1}, the graded mask
binarised at 0.5 as is customary for PASCAL-S (value / 255 >= 0.5, i.e. grey level >= 128).
``threshold`` changes the cut. Splits ``test`` and ``all`` are the 850 images.
"""

from __future__ import annotations

import torch

from .base import (
    RealDataset,
    check_shape,
    data_root,
    dataset_folder,
    empty_flags,
    make_sample,
    read_image,
    require_files,
)
from .msra import read_grey_mask


class PascalSDataset(RealDataset):
    """PASCAL-S images with binarised ``saliency``.

    Args:
        root: data root holding ``pascal_s/datasets``.
        split: "test" or "all".
        threshold: fraction of subjects (0..1) at or above which a pixel is salient.
        on_error: "raise" or "skip".
    """

    def __init__(
        self, root=None, split: str = "test", threshold: float = 0.5, on_error: str = "raise"
    ):
        super().__init__(on_error)
        if split not in ("test", "all"):
            raise ValueError(f"pascal_s split must be 'test' or 'all', got {split!r}")
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.name, self.split, self.threshold = "pascal_s", split, threshold
        self.folder = dataset_folder("pascal_s", data_root(root))
        self.images = self.folder / "imgs" / "pascal"
        self.masks = self.folder / "masks" / "pascal"
        self.ids = sorted((p.stem for p in self.images.glob("*.jpg")), key=lambda s: (len(s), s))
        require_files("pascal_s", root, len(self.ids), "imgs/pascal/<n>.jpg images")

    def __len__(self) -> int:
        return len(self.ids)

    def label_flags(self, i: int) -> dict[str, bool]:
        return {**empty_flags(), "saliency": True}

    def _load(self, i: int) -> dict:
        img_id = self.ids[i]
        image = read_image(self.images / f"{img_id}.jpg")
        mask_path = self.masks / f"{img_id}.png"
        graded = read_grey_mask(mask_path)
        check_shape(graded, tuple(image.shape[-2:]), mask_path, "mask")
        sal = torch.from_numpy((graded >= self.threshold * 255).astype("uint8"))
        return make_sample(image, {"saliency": sal}, self.name, self.split, i, id=img_id)
