"""MSRA10K (Cheng et al., TPAMI 2015) salient-object images and masks.

``MSRA10K_Imgs_GT.zip`` unpacks to ``<root>/MSRA10K_Imgs_GT/Imgs/`` holding pairs
``<id>.jpg`` (the image) and ``<id>.png`` (the binary salient-object mask, 0 / 255).

Samples: ``image`` float32 [3, H, W], ``saliency`` uint8 [H, W] in {0, 1} (mask value > 127).
The paper trains on all 10000 images, so ``train`` and ``all`` are the same list. An image
without its mask is a corrupt pair: an error naming the missing file (or a skip, see
``on_error``).
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
    read_label_png,
)


def read_binary_mask(path, threshold: int = 127) -> torch.Tensor:
    """A 0/255 mask PNG -> uint8 [H, W] in {0, 1} (value > ``threshold``)."""
    return torch.from_numpy((read_label_png(path) > threshold).astype("uint8"))


class MSRA10KDataset(RealDataset):
    """MSRA10K image / mask pairs with the ``saliency`` target.

    Args:
        root: data root holding ``MSRA10K_Imgs_GT/Imgs``.
        split: "train" or "all" (the same 10000 images).
        on_error: "raise" or "skip".
    """

    def __init__(self, root=None, split: str = "train", on_error: str = "raise"):
        super().__init__(on_error)
        if split not in ("train", "all"):
            raise ValueError(f"msra10k split must be 'train' or 'all', got {split!r}")
        self.name, self.split = "msra10k", split
        self.folder = dataset_folder("msra10k", data_root(root))
        self.ids = sorted(p.stem for p in self.folder.glob("*.jpg"))

    def __len__(self) -> int:
        return len(self.ids)

    def label_flags(self, i: int) -> dict[str, bool]:
        return {**empty_flags(), "saliency": True}

    def _load(self, i: int) -> dict:
        img_id = self.ids[i]
        image = read_image(self.folder / f"{img_id}.jpg")
        mask_path = self.folder / f"{img_id}.png"
        sal = read_binary_mask(mask_path)
        check_shape(sal.numpy(), tuple(image.shape[-2:]), mask_path, "mask")
        return make_sample(image, {"saliency": sal}, self.name, self.split, i, id=img_id)
