"""PASCAL VOC 2007 / 2012 in their official layout (``VOCdevkit/VOC<year>/...``).

Files read (``<root>/VOCdevkit/VOC<year>/``):

- ``ImageSets/Main/<split>.txt``: the image ids of a split (``image_set="main"``, detection
  lists) or ``ImageSets/Segmentation/<split>.txt`` (``image_set="segmentation"``);
- ``JPEGImages/<id>.jpg`` -> ``image`` float32 [3, H, W] in [0, 1];
- ``Annotations/<id>.xml`` -> ``boxes`` float32 [N, 4], ``labels`` int64 [N] in 1..20
  (``ubernet_lite.tasks.VOC_CLASSES``), ``difficult`` bool [N]. VOC boxes are 1-based inclusive
  pixel indices; we return continuous pixel-edge coordinates ``[xmin - 1, ymin - 1, xmax, ymax]``
  (detectron2's convention; torchvision's ``VOCDetection`` returns the raw 1-based values): the
  box covers pixel columns ``xmin - 1 .. xmax - 1``, and ``metrics.detection`` computes the
  devkit's IoU on these edges without its ``+ 1``. Boxes are clipped to the image of the XML's
  ``<size>``; one more than ``BOX_SLACK_PX`` (4) pixels outside it is a ``CorruptFileError``;
- ``SegmentationClass/<id>.png`` (palette PNG; the palette *index* is the class) -> ``semantic``
  int64 [H, W], 0 background, 1..20, 255 void (the band VOC draws along object outlines and
  ambiguous regions), when the image has one;
- ``SegmentationObject/<id>.png`` -> ``instances`` int64 [H, W] (only with ``with_instances``):
  index i is the i-th object of the XML (the devkit's convention); VOC's void 255 becomes 0.

A sample has ``has_label["detection"]`` when its XML exists and ``has_label["semantic"]`` when its
segmentation PNG exists (VOC 2007 trainval: 5011 images, 422 with segmentation).

``extra_labels`` merges other PASCAL annotations of the same image ids (SBD, PASCAL-Part): any
object with ``covers(id)``, ``flags_for(id)`` and ``labels_for(id, (H, W))``. VOC's own
``semantic`` wins over an extra one.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch

from ...tasks import VOC_CLASSES
from .base import (
    CorruptFileError,
    RealDataset,
    check_shape,
    data_root,
    dataset_folder,
    empty_flags,
    make_sample,
    read_id_list,
    read_image,
    read_label_png,
)

_CLASS_INDEX = {c: i + 1 for i, c in enumerate(VOC_CLASSES)}
VOID = 255


#: How far (pixels) a box edge may lie outside the image of the XML's ``<size>`` and still be
#: clipped to it (the 1-based / 0-based slips of hand annotation); farther is an error.
BOX_SLACK_PX = 4.0


def _clip_to_image(box: list[float], size: tuple[int, int], path, k: int) -> list[float]:
    """Clip pixel-edge ``box`` to ``[0, W] x [0, H]``; a box more than :data:`BOX_SLACK_PX`
    outside is a :class:`CorruptFileError` naming the file, the object and the image size."""
    h, w = size
    x1, y1, x2, y2 = box
    if min(x1, y1) < -BOX_SLACK_PX or x2 > w + BOX_SLACK_PX or y2 > h + BOX_SLACK_PX:
        raise CorruptFileError(
            f"{path}: object {k} has bndbox {[x1 + 1, y1 + 1, x2, y2]} outside its {w} x {h} image "
            f"(by more than {BOX_SLACK_PX:g} pixels)"
        )
    return [max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))]


def parse_voc_xml(path: str | Path) -> dict:
    """One VOC annotation file.

    Returns:
        ``{"boxes": float32 [N, 4] xyxy (pixel edges), "labels": int64 [N] in 1..20,
        "difficult": bool [N], "size": (H, W) or None}``.
    Raises:
        CorruptFileError naming the file (and the field) for unparsable XML, a missing field, an
        unknown class name or a box far outside the image.
    """
    try:
        tree = ET.parse(path)
    except FileNotFoundError as e:
        raise CorruptFileError(f"{path}: annotation file is missing") from e
    except ET.ParseError as e:
        raise CorruptFileError(f"{path}: corrupt XML ({e})") from e
    root = tree.getroot()
    size = None
    if root.find("size") is not None:
        try:
            size = (int(root.findtext("size/height")), int(root.findtext("size/width")))
        except (TypeError, ValueError):
            size = None
    boxes, labels, difficult = [], [], []
    for k, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        if name not in _CLASS_INDEX:
            raise CorruptFileError(
                f"{path}: object {k} has unknown class {name!r}; expected one of {VOC_CLASSES}"
            )
        coords = []
        for field in ("xmin", "ymin", "xmax", "ymax"):
            text = obj.findtext(f"bndbox/{field}")
            if text is None:
                raise CorruptFileError(f"{path}: object {k} misses field 'bndbox/{field}'")
            try:
                coords.append(float(text))
            except ValueError as e:
                raise CorruptFileError(
                    f"{path}: object {k} has non-numeric bndbox/{field} {text!r}"
                ) from e
        x1, y1, x2, y2 = coords
        if x2 < x1 or y2 < y1:
            raise CorruptFileError(f"{path}: object {k} has an empty bndbox {coords}")
        box = [x1 - 1.0, y1 - 1.0, x2, y2]
        if size is not None:
            box = _clip_to_image(box, size, path, k)
        boxes.append(box)
        labels.append(_CLASS_INDEX[name])
        difficult.append((obj.findtext("difficult") or "0").strip() == "1")
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "difficult": torch.tensor(difficult, dtype=torch.bool),
        "size": size,
    }


def read_voc_semantic(path: str | Path) -> torch.Tensor:
    """A ``SegmentationClass`` PNG as int64 [H, W]: 0 background, 1..20, 255 void."""
    arr = read_label_png(path)
    bad = np.setdiff1d(np.unique(arr), np.r_[np.arange(len(VOC_CLASSES) + 1), VOID])
    if bad.size:
        raise CorruptFileError(
            f"{path}: label values {bad.tolist()[:5]} outside 0..20 and 255 (void)"
        )
    return torch.from_numpy(arr)


class VOCDataset(RealDataset):
    """PASCAL VOC ``year`` ("2007" or "2012"), one sample per image id of ``split``.

    Args:
        root: data root holding ``VOCdevkit/VOC<year>``.
        year: "2007" or "2012".
        split: "train", "val", "trainval" or (2007) "test".
        image_set: "main" (detection lists, every image) or "segmentation" (the segmentation lists).
        with_instances: also return ``instances`` from ``SegmentationObject``.
        exclude_ids: image ids to leave out (e.g. a held-out test set).
        extra_labels: providers of further PASCAL labels for the same ids (SBD, PASCAL-Part).
        on_error: "raise" or "skip" (see :mod:`ubernet_lite.data.real`).
    """

    def __init__(
        self,
        root=None,
        year: str = "2007",
        split: str = "trainval",
        image_set: str = "main",
        with_instances: bool = False,
        exclude_ids=(),
        extra_labels=(),
        on_error: str = "raise",
    ):
        super().__init__(on_error)
        year = str(year)
        if year not in ("2007", "2012"):
            raise ValueError(f"VOC year must be '2007' or '2012', got {year!r}")
        if image_set not in ("main", "segmentation"):
            raise ValueError(f"image_set must be 'main' or 'segmentation', got {image_set!r}")
        self.name, self.split, self.year = f"voc{year}", split, year
        self.folder = dataset_folder(self.name, data_root(root))
        lst = (
            self.folder
            / "ImageSets"
            / ("Main" if image_set == "main" else "Segmentation")
            / f"{split}.txt"
        )
        exclude = set(exclude_ids)
        self.ids = [i for i in read_id_list(lst, self.name) if i not in exclude]
        self.with_instances = with_instances
        self.extra_labels = tuple(extra_labels)

    def __len__(self) -> int:
        return len(self.ids)

    def _paths(self, img_id: str) -> dict[str, Path]:
        f = self.folder
        return {
            "image": f / "JPEGImages" / f"{img_id}.jpg",
            "xml": f / "Annotations" / f"{img_id}.xml",
            "semantic": f / "SegmentationClass" / f"{img_id}.png",
            "instances": f / "SegmentationObject" / f"{img_id}.png",
        }

    def label_flags(self, i: int) -> dict[str, bool]:
        img_id, p = self.ids[i], self._paths(self.ids[i])
        flags = empty_flags()
        for extra in self.extra_labels:
            if extra.covers(img_id):
                flags.update({t: v or flags[t] for t, v in extra.flags_for(img_id).items()})
        flags["detection"] = p["xml"].is_file()
        flags["semantic"] = flags["semantic"] or p["semantic"].is_file()
        return flags

    def _load(self, i: int) -> dict:
        img_id = self.ids[i]
        p = self._paths(img_id)
        image = read_image(p["image"])
        hw = tuple(image.shape[-2:])
        targets: dict = {}
        for extra in self.extra_labels:
            if extra.covers(img_id):
                targets.update(extra.labels_for(img_id, hw))
        if p["xml"].is_file():
            ann = parse_voc_xml(p["xml"])
            if ann["size"] is not None and ann["size"] != hw:
                raise CorruptFileError(
                    f"{p['xml']}: size {ann['size']} differs from the image's {hw} (H, W)"
                )
            targets.update(boxes=ann["boxes"], labels=ann["labels"], difficult=ann["difficult"])
        if p["semantic"].is_file():
            sem = read_voc_semantic(p["semantic"])
            check_shape(sem.numpy(), hw, p["semantic"], "segmentation")
            targets["semantic"] = sem
        if self.with_instances and p["instances"].is_file():
            inst = read_label_png(p["instances"])
            check_shape(inst, hw, p["instances"], "instance segmentation")
            inst[inst == VOID] = 0
            targets["instances"] = torch.from_numpy(inst)
        return make_sample(image, targets, self.name, self.split, i, id=img_id)
