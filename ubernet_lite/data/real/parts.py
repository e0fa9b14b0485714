"""PASCAL-Part (Chen et al., CVPR 2014) human parts, mapped onto the paper's six parts.

``trainval.tar.gz`` of PASCAL-Part unpacks ``Annotations_Part/<id>.mat``, which we keep under
``<root>/pascal_parts/Annotations_Part/``. The images are VOC 2010's, all of which are in VOC 2012:
they are read from ``<root>/VOCdevkit/VOC2012/JPEGImages`` (so ``voc2012`` must be present too).

A ``.mat`` file holds a struct ``anno`` with ``imname`` and ``objects``, a struct array with
``class`` (e.g. ``'person'``), ``mask`` ([H, W] logical) and ``parts``, a struct array with
``part_name`` and ``mask``. Only ``person`` objects are used: their parts become

``parts`` int64 [H, W]: 0 background (also every non-person object), 1..6 =
``ubernet_lite.tasks.PART_NAMES`` (head, torso, upper arm, lower arm, upper leg, lower leg), and
255 (ignore) on person pixels that no part covers (e.g. a person annotated without parts) and on
parts whose name is not in :data:`PERSON_PART_MAP` (a warning names them).

The mapping from PASCAL-Part's 24 person part names onto six (the grouping of the PASCAL-Person-Part
benchmark of Chen et al. 2014 / Xia et al. 2016, which the paper evaluates on), with nothing dropped:

| paper part | PASCAL-Part names                                                        |
| ---------- | ------------------------------------------------------------------------ |
| head       | head, hair, leye, reye, lear, rear, lebrow, rebrow, nose, mouth (folded) |
| torso      | torso, neck (folded)                                                     |
| upper arm  | luarm, ruarm                                                             |
| lower arm  | llarm, rlarm, lhand, rhand (hands folded into the lower arm)             |
| upper leg  | luleg, ruleg                                                             |
| lower leg  | llleg, rlleg, lfoot, rfoot (feet folded into the lower leg)              |

Splits: ``train`` / ``val`` are the images of VOC 2012's ``ImageSets/Main/person_<split>.txt``
that contain a person (flag 1 or 0) and have a PASCAL-Part file. The paper's table counts 1716
train and 1817 val images with human parts (the PASCAL-Person-Part split); the val images are the
part-segmentation test set that :func:`~.union.diverse_union_real` holds out of training. The
counts this rule gives on the real files have not been checked here (no network).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ...tasks import PART_NAMES
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
    require_files,
)

IGNORE = 255

_GROUPS = {
    "head": ("head", "hair", "leye", "reye", "lear", "rear", "lebrow", "rebrow", "nose", "mouth"),
    "torso": ("torso", "neck"),
    "upper arm": ("luarm", "ruarm"),
    "lower arm": ("llarm", "rlarm", "lhand", "rhand"),
    "upper leg": ("luleg", "ruleg"),
    "lower leg": ("llleg", "rlleg", "lfoot", "rfoot"),
}
assert tuple(_GROUPS) == PART_NAMES

#: PASCAL-Part person part name -> label 1..6 (index into ``PART_NAMES`` + 1).
PERSON_PART_MAP: dict[str, int] = {
    n: PART_NAMES.index(g) + 1 for g, names in _GROUPS.items() for n in names
}


def read_person_parts(path, unknown: set[str] | None = None) -> tuple[torch.Tensor, bool]:
    """``Annotations_Part/<id>.mat`` -> (``parts`` int64 [H, W], whether a person is in it).

    ``unknown`` collects person part names outside :data:`PERSON_PART_MAP` (set to ignore).
    Errors name the file and the missing field.
    """
    anno = mat_field(load_mat(path), "anno", path)
    objects = as_list(mat_field(anno, "objects", path, "anno"))
    out, has_person, shape = None, False, None
    for k, obj in enumerate(objects):
        where = f"anno.objects({k + 1})"
        mask = np.asarray(mat_field(obj, "mask", path, where)) != 0
        if shape is None:
            shape = mask.shape
            out = np.zeros(shape, dtype=np.int64)
        elif mask.shape != shape:
            raise CorruptFileError(f"{path}: {where}.mask has shape {mask.shape}, expected {shape}")
        if str(mat_field(obj, "class", path, where)) != "person":
            continue
        has_person = True
        out[mask] = IGNORE
        for j, part in enumerate(as_list(mat_field(obj, "parts", path, where))):
            pwhere = f"{where}.parts({j + 1})"
            name = str(mat_field(part, "part_name", path, pwhere))
            pmask = np.asarray(mat_field(part, "mask", path, pwhere)) != 0
            if pmask.shape != shape:
                raise CorruptFileError(
                    f"{path}: {pwhere}.mask has shape {pmask.shape}, expected {shape}"
                )
            label = PERSON_PART_MAP.get(name)
            if label is None:
                if unknown is not None:
                    unknown.add(name)
                label = IGNORE
            out[pmask] = label
    if out is None:
        raise CorruptFileError(f"{path}: anno.objects is empty; cannot tell the image size")
    return torch.from_numpy(out), has_person


class PascalPartsDataset(RealDataset):
    """Person images of PASCAL-Part with the six-part ``parts`` target.

    Args:
        root: data root holding ``pascal_parts/Annotations_Part`` and ``VOCdevkit/VOC2012``.
        split: "train", "val" or "trainval" (VOC 2012's person lists, see the module docstring).
        on_error: "raise" or "skip".
    """

    def __init__(self, root=None, split: str = "train", on_error: str = "raise"):
        super().__init__(on_error)
        if split not in ("train", "val", "trainval"):
            raise ValueError(
                f"pascal_parts split must be 'train', 'val' or 'trainval', got {split!r}"
            )
        self.name, self.split = "pascal_parts", split
        root = data_root(root)
        self.folder = dataset_folder("pascal_parts", root)
        self.voc = dataset_folder("voc2012", root)  # the images live there
        lst = self.voc / "ImageSets" / "Main" / f"person_{split}.txt"
        persons = []
        for line in read_id_list_lines(lst):
            img_id, flag = line[0], (line[1] if len(line) > 1 else "1")
            if flag != "-1" and (self.folder / f"{img_id}.mat").is_file():
                persons.append(img_id)
        require_files("pascal_parts", root, any(self.folder.glob("*.mat")), "<id>.mat part files")
        self.ids = persons
        self._id_set = set(persons)
        self.unknown_parts: set[str] = set()

    def __len__(self) -> int:
        return len(self.ids)

    # -- extra_labels protocol (merging into VOC 2012) --
    def covers(self, img_id: str) -> bool:
        return img_id in self._id_set

    def flags_for(self, img_id: str) -> dict[str, bool]:
        return {"parts": True}

    def labels_for(self, img_id: str, hw) -> dict[str, torch.Tensor]:
        path = self.folder / f"{img_id}.mat"
        before = set(self.unknown_parts)
        parts, _ = read_person_parts(path, self.unknown_parts)
        new = self.unknown_parts - before
        if new:
            warnings.warn(
                f"{path}: person part names {sorted(new)} are not mapped; labelled 255 (ignore)",
                stacklevel=2,
            )
        check_shape(parts.numpy(), hw, path, "anno.objects.mask")
        return {"parts": parts}

    # -- Dataset --
    def label_flags(self, i: int) -> dict[str, bool]:
        return {**empty_flags(), "parts": True}

    def _load(self, i: int) -> dict:
        img_id = self.ids[i]
        image = read_image(self.voc / "JPEGImages" / f"{img_id}.jpg")
        targets = self.labels_for(img_id, tuple(image.shape[-2:]))
        return make_sample(image, targets, self.name, self.split, i, id=img_id)


def read_id_list_lines(path) -> list[list[str]]:
    """The whitespace-split lines of a VOC list (``<id> <flag>`` for class lists)."""
    read_id_list(path, "voc2012")  # raises DatasetNotFoundError naming the script if missing
    return [line.split() for line in path.read_text().splitlines() if line.strip()]
