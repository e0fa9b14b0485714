"""Real-data loaders on bad inputs: saliency masks in every PNG storage, empty set folders, VOC
boxes outside their image. Fixtures are written here (PIL), nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ubernet_lite.data import real
from ubernet_lite.data.real import CorruptFileError, DatasetNotFoundError, load_dataset
from ubernet_lite.data.real.msra import read_grey_mask
from ubernet_lite.data.real.voc import parse_voc_xml

H, W = 6, 8
MASK = np.zeros((H, W), bool)
MASK[1:4, 2:6] = True  # 12 salient pixels


def save_mask(mask: np.ndarray, path: Path, storage: str) -> None:
    """``mask`` (bool) as a PNG in one of the storages a saliency mask is found in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if storage == "L":
        im = Image.fromarray(mask.astype(np.uint8) * 255)
    elif storage == "1":
        im = Image.fromarray(mask)  # PIL mode "1"
        assert im.mode == "1"
    elif storage == "P":  # indices 0/1, palette black / white
        im = Image.frombytes("P", (mask.shape[1], mask.shape[0]), mask.astype(np.uint8).tobytes())
        im.putpalette([0, 0, 0, 255, 255, 255])
    elif storage == "I;16":
        im = Image.fromarray(mask.astype(np.uint16) * 65535)
    elif storage == "RGB":
        im = Image.fromarray(np.repeat(mask.astype(np.uint8)[..., None] * 255, 3, 2))
    else:
        raise ValueError(storage)
    im.save(path, format="PNG")


STORAGES = ["L", "1", "P", "I;16", "RGB"]


@pytest.mark.parametrize("storage", STORAGES)
def test_grey_mask_reader_sees_the_mask_in_every_storage(tmp_path, storage):
    path = tmp_path / "m.png"
    save_mask(MASK, path, storage)
    with Image.open(path) as im:
        assert im.mode.startswith(storage[0])  # the PNG really is stored that way
    grey = read_grey_mask(path)
    assert grey.shape == (H, W) and set(np.unique(grey)) == {0, 255}
    assert np.array_equal(grey == 255, MASK)


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(path, format="PNG")


@pytest.mark.parametrize("storage", STORAGES)
def test_saliency_loaders_read_1bit_and_palette_masks(tmp_path, storage):
    msra = tmp_path / "MSRA10K_Imgs_GT" / "Imgs"
    _image(msra / "7.jpg")
    save_mask(MASK, msra / "7.png", storage)
    s = load_dataset("msra10k", tmp_path)[0]["saliency"].numpy()
    assert np.array_equal(s.astype(bool), MASK)  # was all zero for "1" and "P"
    ps = tmp_path / "pascal_s" / "datasets"
    _image(ps / "imgs" / "pascal" / "1.jpg")
    save_mask(MASK, ps / "masks" / "pascal" / "1.png", storage)
    s = load_dataset("pascal_s", tmp_path)[0]["saliency"].numpy()
    assert np.array_equal(s.astype(bool), MASK)


def test_palette_graded_mask_keeps_its_grey_levels(tmp_path):
    """A PASCAL-S graded mask stored as a palette PNG: the grey levels are the palette colours."""
    levels = np.array([[0, 100, 128, 200]], np.uint8).repeat(2, 0)
    im = Image.fromarray(levels).convert("P")  # an adaptive palette, indices != grey levels
    path = tmp_path / "g.png"
    im.save(path)
    assert np.array_equal(read_grey_mask(path), levels)


@pytest.mark.parametrize("name", sorted(real.DATASETS))
def test_empty_folder_is_dataset_not_found(tmp_path, name):
    """A folder that exists but holds none of the set's files: an error naming what is missing
    and the script that fetches it (msra10k, bsds500, pascal_s loaded as zero-length sets)."""
    (tmp_path / real.DATASETS[name].folder).mkdir(parents=True)
    if name == "pascal_parts":  # its images and lists live in VOC 2012: give it those
        lists = tmp_path / real.DATASETS["voc2012"].folder / "ImageSets" / "Main"
        lists.mkdir(parents=True)
        (lists / "person_train.txt").write_text("2008_000001  1\n")
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset(name, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and repr(name) in msg
    assert f"data_scripts/download_{name}.py" in msg and str(tmp_path) in msg


XML = """<annotation><size><width>{w}</width><height>{h}</height><depth>3</depth></size>
<object><name>dog</name><difficult>0</difficult>
<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>
</annotation>"""


def test_voc_box_outside_image_clipped_or_refused(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text(XML.format(w=100, h=50, x1=1, y1=1, x2=100, y2=50))
    assert parse_voc_xml(p)["boxes"].tolist() == [[0.0, 0.0, 100.0, 50.0]]
    p.write_text(XML.format(w=100, h=50, x1=0, y1=1, x2=102, y2=50))  # a slip of 1-2 px: clipped
    assert parse_voc_xml(p)["boxes"].tolist() == [[0.0, 0.0, 100.0, 50.0]]
    p.write_text(XML.format(w=100, h=50, x1=10, y1=10, x2=500, y2=40))
    with pytest.raises(CorruptFileError, match=r"a\.xml: object 0 .*outside its 100 x 50 image"):
        parse_voc_xml(p)
