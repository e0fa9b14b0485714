"""MSRA10K (Cheng et al., TPAMI 2015) salient-object images and masks.

``MSRA10K_Imgs_GT.zip`` unpacks to ``<root>/MSRA10K_Imgs_GT/Imgs/`` holding pairs
``<id>.jpg`` (the image) and ``<id>.png`` (the binary salient-object mask, 0 / 255; 1-bit and
palette PNGs are read as the grey levels they show, :func:`read_grey_mask`).

Samples: ``image`` float32 [3, H, W], ``saliency`` uint8 [H, W] in {0, 1} (mask value > 127).
The paper trains on all 10000 images, so ``train`` and ``all`` are the same list. An image
without its mask is a corrupt pair: an error naming the missing file (or a skip, see
``on_error``).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .base import (
    CorruptFileError,
    RealDataset,
    check_shape,
    data_root,
    dataset_folder,
    empty_flags,
    make_sample,
    read_image,
    require_files,
)


def read_grey_mask(path) -> np.ndarray:
    """A saliency mask PNG as the grey levels it shows, int64 [H, W] in 0..255, however it is
    stored: 8-bit grey as is; 1-bit (0/1) as 0/255; palette as the luminance of each index's
    colour (a 0/1-index mask with a black/white palette is 0/255); 16-bit grey scaled by 255/65535;
    RGB(A) / LA as luminance. (``read_label_png`` returns raw indices, right for class labels but
    0/1 for a 1-bit or palette mask, which a ``> 127`` test would read as all background.)"""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "L":
                arr = np.asarray(im, dtype=np.int64)
            elif im.mode.startswith("I"):  # 16-bit grey ("I;16", "I;16B", "I")
                arr = np.rint(np.asarray(im, dtype=np.float64) * (255 / 65535)).astype(np.int64)
            else:  # "1", "P", "PA", "LA", "RGB", "RGBA", ...: the grey level shown
                arr = np.asarray(im.convert("L"), dtype=np.int64)
    except FileNotFoundError as e:
        raise CorruptFileError(f"{path}: mask file is missing") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptFileError(f"{path}: corrupt or truncated mask image ({e})") from e
    return arr


def read_binary_mask(path, threshold: int = 127) -> torch.Tensor:
    """A 0/255 mask PNG (or 1-bit / palette / 16-bit, see :func:`read_grey_mask`) -> uint8
    [H, W] in {0, 1} (grey level > ``threshold``)."""
    return torch.from_numpy((read_grey_mask(path) > threshold).astype("uint8"))


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
        require_files("msra10k", root, len(self.ids), "<id>.jpg images (with <id>.png masks)")

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
