"""The paper's real data sets: one registry, one entry point, shared file readers.

``load_dataset(name, root=None, split=...)`` returns a ``torch.utils.data.Dataset`` whose samples
have the structure of :class:`ubernet_lite.data.SynthWorld`'s (docs/design.md): ``image``
float32 [3, H, W] in [0, 1], the targets the set provides, ``has_label`` over
``ubernet_lite.tasks.TARGETS`` (absent key <=> False) and ``meta``.

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

The data root is the ``root`` argument, else ``$UBERNET_DATA``, else ``~/data/ubernet``. A set that
is not there raises :class:`DatasetNotFoundError` naming the set, the folder it expected and the
script that fetches it (``python data_scripts/download_<name>.py``).

Bad files (a truncated JPEG/PNG, a ``.mat`` without a field): every loader takes
``on_error="raise"`` (default: :class:`CorruptFileError` naming the file, and the field for
``.mat`` files) or ``on_error="skip"`` (a warning naming the file, the sample replaced by the next
readable one, and the file counted in ``dataset.skipped``). Nothing is ever silently filled in.

The paper's union of these sets (Sec. 5 and the data-set table of the course slides) is
:func:`diverse_union_real`; :data:`TEST_SETS` / :func:`load_test_sets` name each target's test set
(VOC 2007 test, VOC 2012 segmentation val, SBD val, PASCAL-Part val, PASCAL-S, BSDS500 test,
NYUv2 test), and :func:`real_transforms` turns images of any size into square training crops.
"""

from __future__ import annotations

import bisect
import importlib
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..tasks import TARGETS

#: Environment variable naming the data root.
DATA_ENV = "UBERNET_DATA"


class DatasetNotFoundError(FileNotFoundError):
    """A real data set (or one of its files lists) is not under the data root."""


class CorruptFileError(ValueError):
    """A file of a data set is unreadable, truncated, or misses a field; the message names it."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root``, else ``$UBERNET_DATA``, else ``~/data/ubernet`` (not created)."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path("~/data/ubernet").expanduser()


# ---------------------------------------------------------------------------------------------
# File readers: every failure names the file (and the field), never a deep library trace.
# ---------------------------------------------------------------------------------------------


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """An RGB image file as float32 [3, H, W] in [0, 1]; grey or palette images are made RGB."""
    try:
        with Image.open(path) as im:
            im.load()  # decodes now: a truncated file fails here, not later inside training
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError as e:
        raise CorruptFileError(f"{path}: image file is missing") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptFileError(f"{path}: corrupt or truncated image ({e})") from e
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """A label PNG as its raw values [H, W] (palette indices for ``P`` images, grey levels for
    ``L``; the first channel of an RGB mask), without any colour conversion."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("P", "L", "1", "I", "I;16"):
                arr = np.asarray(im)
            else:
                arr = np.asarray(im.convert("RGB"))[..., 0]
    except FileNotFoundError as e:
        raise CorruptFileError(f"{path}: label file is missing") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptFileError(f"{path}: corrupt or truncated label image ({e})") from e
    return np.array(arr, dtype=np.int64)


def load_mat(path: str | os.PathLike) -> dict:
    """A MATLAB v5 ``.mat`` file via ``scipy.io.loadmat`` (squeezed, structs as attributes)."""
    import scipy.io

    try:
        return scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except FileNotFoundError as e:
        raise CorruptFileError(f"{path}: .mat file is missing") from e
    except Exception as e:  # scipy raises ValueError, TypeError, OSError, MatReadError ...
        raise CorruptFileError(
            f"{path}: corrupt or unreadable .mat file ({type(e).__name__}: {e})"
        ) from e


def mat_field(obj, name: str, path: str | os.PathLike, where: str = ""):
    """``obj.name`` (a MATLAB struct field) or ``obj[name]`` (a top-level variable), with an error
    naming the file and the field when it is missing."""
    if isinstance(obj, dict):
        if name in obj:
            return obj[name]
    elif hasattr(obj, "_fieldnames") and name in obj._fieldnames:
        return getattr(obj, name)
    label = f"{where}.{name}" if where else name
    raise CorruptFileError(f"{path}: missing field {label!r}")


def as_list(x) -> list:
    """A MATLAB struct array / cell array as a Python list (``loadmat(squeeze_me=True)`` turns a
    1-element array into the element itself and an empty one into an empty numeric array)."""
    if x is None:
        return []
    if isinstance(x, np.ndarray) and x.dtype == object:
        return list(x.ravel())
    if isinstance(x, np.ndarray) and x.size == 0:
        return []
    return [x]


def check_shape(arr: np.ndarray, hw: tuple[int, int], path, what: str) -> None:
    """Raise :class:`CorruptFileError` if ``arr`` is not [H, W] of the image's size."""
    if tuple(arr.shape[-2:]) != tuple(hw):
        raise CorruptFileError(
            f"{path}: {what} has size {tuple(arr.shape[-2:])}, the image is {tuple(hw)} (H, W)"
        )


def read_id_list(path: Path, name: str) -> list[str]:
    """The ids of an ``ImageSets``-style list (first token of each non-empty line)."""
    if not path.is_file():
        raise DatasetNotFoundError(
            f"data set {name!r}: split list {path} not found; fetch the set with "
            f"`python data_scripts/download_{name}.py` (or point UBERNET_DATA at a copy)"
        )
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def make_sample(
    image: torch.Tensor, targets: dict, dataset: str, split: str, index: int, **meta
) -> dict:
    """A sample dict (docs/design.md) with ``has_label`` computed from the keys present."""
    sample = {"image": image, **targets}
    sample["has_label"] = {
        t: (("boxes" in sample) if t == "detection" else (t in sample)) for t in TARGETS
    }
    sample["meta"] = {"dataset": dataset, "split": split, "index": index, **meta}
    return sample


def empty_flags() -> dict[str, bool]:
    return {t: False for t in TARGETS}


class RealDataset(torch.utils.data.Dataset):
    """Base of the loaders: the bad-file policy and the cheap label table.

    Subclasses set ``self.name``, ``self.split`` and implement ``__len__``, ``_load(i)`` (a full
    sample) and ``label_flags(i)`` (``has_label`` from file lists only, without decoding).
    """

    name = "real"
    split = ""

    def __init__(self, on_error: str = "raise"):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        #: files skipped under ``on_error="skip"`` (in this process; each DataLoader worker counts its own)
        self.skipped: list[str] = []

    def _load(self, i: int) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def label_flags(self, i: int) -> dict[str, bool]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{self.name}: index {i} out of range for {n} samples")
        i %= n
        for k in range(n):
            j = (i + k) % n
            try:
                return self._load(j)
            except CorruptFileError as e:
                if self.on_error == "raise":
                    raise
                self.skipped.append(str(e))
                warnings.warn(f"{self.name}: skipping sample {j}: {e}", stacklevel=2)
        raise CorruptFileError(f"{self.name}: every sample of split {self.split!r} is unreadable")

    def label_mask(self, i: int) -> dict[str, bool]:
        """Alias of :meth:`label_flags` (the name the synthetic union uses)."""
        return self.label_flags(i)

    def label_table(self) -> dict[str, int]:
        """Samples per target, from the file lists (no decoding): ``{target: count}``."""
        counts = dict.fromkeys(TARGETS, 0)
        for i in range(len(self)):
            for t, v in self.label_flags(i).items():
                counts[t] += int(v)
        return counts

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, n={len(self)})"


# ---------------------------------------------------------------------------------------------
# The registry.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    """What the project knows about one real data set.

    Attributes:
        name: the ``load_dataset`` name (also ``data_scripts/download_<name>.py``).
        folder: where the official archive unpacks to, relative to the data root.
        loader: ``"module:Class"`` inside ``ubernet_lite.data``.
        splits: the splits the loader accepts; the first is the default.
        targets: the targets its samples carry.
        kwargs: fixed keyword arguments of the loader (e.g. the VOC year).
    """

    name: str
    folder: str
    loader: str
    splits: tuple[str, ...]
    targets: tuple[str, ...]
    kwargs: tuple[tuple[str, object], ...] = ()

    @property
    def script(self) -> str:
        return f"data_scripts/download_{self.name}.py"


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        DatasetInfo("voc2007", "VOCdevkit/VOC2007", "voc:VOCDataset", ("trainval", "train", "val", "test"),
                    ("detection", "semantic"), (("year", "2007"),)),
        DatasetInfo("voc2012", "VOCdevkit/VOC2012", "voc:VOCDataset", ("trainval", "train", "val"),
                    ("detection", "semantic"), (("year", "2012"),)),
        DatasetInfo("sbd", "benchmark_RELEASE/dataset", "sbd:SBDDataset", ("train", "val", "trainval"),
                    ("semantic", "semantic_boundaries", "boundaries")),
        DatasetInfo("pascal_parts", "pascal_parts/Annotations_Part", "parts:PascalPartsDataset",
                    ("train", "val", "trainval"), ("parts",)),
        DatasetInfo("nyuv2", "nyuv2", "nyu:NYUv2Dataset", ("train", "test", "all"), ("normals",)),
        DatasetInfo("msra10k", "MSRA10K_Imgs_GT/Imgs", "msra:MSRA10KDataset", ("train", "all"), ("saliency",)),
        DatasetInfo("bsds500", "BSR/BSDS500/data", "bsds:BSDS500Dataset", ("train", "val", "test", "trainval"),
                    ("boundaries",)),
        DatasetInfo("pascal_s", "pascal_s/datasets", "pascal_s:PascalSDataset", ("test", "all"), ("saliency",)),
    ]
}  # fmt: skip


def dataset_folder(
    name: str, root: str | os.PathLike | None = None, must_exist: bool = True
) -> Path:
    """``<root>/<folder of name>``; raises :class:`DatasetNotFoundError` if it is not a folder."""
    info = _info(name)
    folder = data_root(root) / info.folder
    if must_exist and not folder.is_dir():
        raise DatasetNotFoundError(
            f"data set {name!r} not found: expected the folder {folder}; fetch it with "
            f"`python {info.script} --root {data_root(root)}` (or set {DATA_ENV} to a root that has it)"
        )
    return folder


def require_files(name: str, root: str | os.PathLike | None, found: int, wanted: str) -> None:
    """Raise :class:`DatasetNotFoundError` when a set's folder exists but holds none of the files
    it needs (``found == 0``); ``wanted`` says which, relative to the set's folder."""
    if found == 0:
        info, base = _info(name), data_root(root)
        raise DatasetNotFoundError(
            f"data set {name!r}: {base / info.folder} holds no {wanted}; fetch the set with "
            f"`python {info.script} --root {base}` (or set {DATA_ENV} to a root that has it)"
        )


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
    module, cls = info.loader.split(":")
    loader = getattr(importlib.import_module(f"{__package__}.{module}"), cls)
    return loader(root=data_root(root), split=split, **dict(info.kwargs), **kwargs)


def available_datasets(root: str | os.PathLike | None = None) -> dict[str, bool]:
    """``{name: folder present}`` for every registered set (a cheap presence check)."""
    base = data_root(root)
    return {name: (base / info.folder).is_dir() for name, info in DATASETS.items()}


# ---------------------------------------------------------------------------------------------
# The paper's union.
# ---------------------------------------------------------------------------------------------

#: The data-set table of the course slides (``reference/000_*``): images per training set and
#: how many carry each target. VOC'12 train + val are one member here (5717 + 5823 images).
PAPER_TABLE: dict[str, dict[str, int]] = {
    "voc2007": {"images": 5011, "detection": 5011, "semantic": 422},
    "voc2012": {"images": 5717 + 5823, "detection": 5717 + 5823, "semantic": 4998 + 5105,
                "semantic_boundaries": 4998 + 5105, "parts": 1716 + 1817, "boundaries": 4998 + 5105},
    "nyuv2": {"images": 23024, "normals": 23024},
    "msra10k": {"images": 10000, "saliency": 10000},
    "bsds500": {"images": 5100, "boundaries": 5100},
}  # fmt: skip

#: Sampling proportions of the union: each set's share of the table's images. The paper says only
#: that it uses "a particular proportion of images per dataset, moderately favoring the high-level
#: tasks" (Sec. 5; details in its supplement, which we do not have); the table's counts are our
#: reading. NYU's 23024 and BSD's 5100 are augmented/raw-frame counts (BSD: 300 images x 17), so
#: their fewer on-disk images are drawn more often.
PAPER_PROPORTIONS: dict[str, float] = {
    k: v["images"] / sum(t["images"] for t in PAPER_TABLE.values()) for k, v in PAPER_TABLE.items()
}


class RealUnion(torch.utils.data.Dataset):
    """The concatenation of named real data sets, with sampling proportions.

    Duck-compatible with :class:`ubernet_lite.data.union.DiverseUnion` (``members`` list,
    ``names``, ``proportions`` list, ``offsets``, ``locate``, ``label_mask``,
    ``annotation_matrix``, ``sampler``), so the trainer and the union's sampler treat real and
    synthetic unions alike.

    ``union[i]`` is the i-th sample of the concatenation (``meta["dataset"]`` names its member,
    ``meta["union_index"]`` is ``i``); ``union.sampler(...)`` draws member ``m`` with probability
    ``proportions[m]`` and one of its images uniformly.

    Args:
        members: ``{name: dataset}`` in order.
        proportions: ``{name: weight}`` or one weight per member (>= 0, not all 0; normalised).
    """

    def __init__(self, members: dict[str, torch.utils.data.Dataset], proportions):
        if not members:
            raise ValueError("a union needs at least one member data set")
        self._names = list(members)
        self.members = list(members.values())
        self.proportions = normalise_proportions(proportions, self._names)
        self.offsets = np.cumsum([0] + [len(d) for d in self.members]).tolist()

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def member(self, name: str) -> torch.utils.data.Dataset:
        if name not in self._names:
            raise KeyError(f"no member {name!r}; the members are {self._names}")
        return self.members[self._names.index(name)]

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, i: int) -> tuple[int, int]:
        """``(member number, index inside the member)`` of union index ``i``."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"union index {i} out of range [0, {n})")
        i = int(i) % n
        k = bisect.bisect_right(self.offsets, i) - 1
        return k, i - self.offsets[k]

    def __getitem__(self, i: int) -> dict:
        k, j = self.locate(i)
        sample = self.members[k][j]
        sample["meta"]["union_index"] = int(i) % len(self)
        return sample

    def label_mask(self, i: int) -> dict[str, bool]:
        """``has_label`` of union index ``i`` from the file lists (no decoding)."""
        k, j = self.locate(i)
        return self.members[k].label_flags(j)

    def label_table(self) -> dict[str, dict[str, int]]:
        """``{member: {"images": n, target: count}}`` from the members' file lists."""
        return {
            name: {"images": len(d), **d.label_table()}
            for name, d in zip(self._names, self.members, strict=True)
        }

    def annotation_matrix(self):
        """The paper's table computed from the file lists, as a union ``AnnotationMatrix``."""
        from .union import AnnotationMatrix

        table = self.label_table()
        counts = {t: {m: table[m][t] for m in self._names} for t in TARGETS}
        return AnnotationMatrix(counts, {m: table[m]["images"] for m in self._names})

    def sample_weights(self) -> torch.Tensor:
        """float64 [N]: the probability of drawing each union index (sums to 1)."""
        w = torch.zeros(len(self), dtype=torch.float64)
        for k, p in enumerate(self.proportions):
            a, b = self.offsets[k], self.offsets[k + 1]
            if b > a:
                w[a:b] = p / (b - a)
        return w / w.sum()

    def sampler(self, proportions=None, num_samples: int | None = None, seed: int = 0):
        """The union's sampler (``ubernet_lite.data.union.UnionSampler``): member by proportion,
        then an image uniformly, with replacement, reproducible from ``seed``."""
        from .union import UnionSampler

        return UnionSampler(self, proportions=proportions, num_samples=num_samples, seed=seed)

    def __repr__(self) -> str:
        body = ", ".join(
            f"{n}: {len(d)} ({p:.2f})"
            for n, d, p in zip(self._names, self.members, self.proportions, strict=True)
        )
        return f"RealUnion(n={len(self)}, {body})"


def normalise_proportions(proportions, names: list[str]) -> list[float]:
    """One normalised weight per name from ``{name: weight}``, a sequence, ``"paper"`` or None
    (both :data:`PAPER_PROPORTIONS`)."""
    if proportions is None or proportions == "paper":
        proportions = {n: PAPER_PROPORTIONS.get(n, 0.0) for n in names}
    if isinstance(proportions, dict):
        unknown = [k for k in proportions if k not in names]
        if unknown:
            raise ValueError(f"proportions name data sets {unknown} that are not members {names}")
        weights = [proportions.get(n, 0.0) for n in names]
    elif isinstance(proportions, list | tuple):
        if len(proportions) != len(names):
            raise ValueError(
                f"proportions: expected {len(names)} weights for {names}, got {len(proportions)}"
            )
        weights = list(proportions)
    else:
        raise ValueError(
            f"proportions must be a dict, a list, 'paper' or None, got {proportions!r}"
        )
    weights = [float(w) for w in weights]
    if any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(
            f"proportions must be finite, >= 0 and not all 0, got {dict(zip(names, weights, strict=True))}"
        )
    return [w / sum(weights) for w in weights]


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
) -> RealUnion:
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
    if isinstance(proportions, dict):
        proportions = {k: v for k, v in proportions.items() if k in built}
    return RealUnion(built, proportions)


def _union_member(
    name: str,
    root,
    hold_out_parts_test: bool,
    sbd_split: str,
    on_error: str,
    require_all: bool,
    exclude_ids: Iterable[str] = (),
):
    if name == "voc2007":
        return load_dataset("voc2007", root, "trainval", on_error=on_error)
    if name == "voc2012":
        from .parts import PascalPartsDataset
        from .sbd import SBDDataset

        dataset_folder("voc2012", root)  # the images: without them there is no member
        base = data_root(root)
        extras, exclude = [], set(exclude_ids)
        try:
            extras.append(SBDDataset(root=base, split=sbd_split, on_error=on_error))
        except DatasetNotFoundError as e:
            if require_all:
                raise
            warnings.warn(f"union: voc2012 without SBD labels: {e}", stacklevel=3)
        try:
            extras.append(PascalPartsDataset(root=base, split="train", on_error=on_error))
            if hold_out_parts_test:
                exclude |= set(PascalPartsDataset(root=base, split="val", on_error=on_error).ids)
        except DatasetNotFoundError as e:
            if require_all:
                raise
            warnings.warn(f"union: voc2012 without PASCAL-Part labels: {e}", stacklevel=3)
        return load_dataset(
            "voc2012",
            root,
            "trainval",
            extra_labels=tuple(extras),
            exclude_ids=exclude,
            on_error=on_error,
        )
    if name == "nyuv2":
        return load_dataset("nyuv2", root, "train", on_error=on_error)
    if name == "msra10k":
        return load_dataset("msra10k", root, "train", on_error=on_error)
    if name == "bsds500":
        return load_dataset("bsds500", root, "trainval", on_error=on_error)
    raise ValueError(f"unknown union member {name!r}")  # pragma: no cover


def members_for_targets(targets: Iterable[str]) -> list[str]:
    """The union members (in :data:`PAPER_TABLE`'s order) that carry at least one of ``targets``,
    e.g. ``["nyuv2"]`` for ``{"normals"}``: a run on some tasks needs only their data sets."""
    targets = set(targets)
    return [m for m, row in PAPER_TABLE.items() if targets & set(row)]


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


# ---------------------------------------------------------------------------------------------
# Transforms for images of any size.
# ---------------------------------------------------------------------------------------------


def shortest_side_shape(height: int, width: int, side: int) -> tuple[int, int]:
    """``(h, w)`` of an ``height x width`` image resized so that its shorter side is ``side``,
    aspect ratio kept (each side at least 1 pixel)."""
    s = side / min(height, width)
    return max(1, round(height * s)), max(1, round(width * s))


class ResizeShortestSide:
    """Resize a sample (every label with it, :func:`ubernet_lite.data.transforms.resize`) so
    that its shorter side is ``side`` pixels, keeping the aspect ratio (the paper's input
    normalisation: shortest side 621)."""

    def __init__(self, side: int):
        if int(side) < 1:
            raise ValueError(f"ResizeShortestSide: side must be >= 1, got {side}")
        self.side = int(side)

    def __call__(self, sample: dict, generator=None) -> dict:
        from .transforms import resize

        H, W = sample["image"].shape[-2:]
        return resize(sample, shortest_side_shape(H, W, self.side))

    def __repr__(self) -> str:
        return f"ResizeShortestSide(side={self.side})"


class CenterCrop:
    """The central ``size x size`` window of a sample (padded with 0 / 255 where it is smaller,
    :func:`ubernet_lite.data.transforms.crop`)."""

    def __init__(self, size: int):
        if int(size) < 1:
            raise ValueError(f"CenterCrop: size must be >= 1, got {size}")
        self.size = int(size)

    def __call__(self, sample: dict, generator=None) -> dict:
        from .transforms import crop

        H, W = sample["image"].shape[-2:]
        return crop(sample, (H - self.size) // 2, (W - self.size) // 2, self.size, self.size)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


def real_transforms(size: int, augment: bool = True):
    """Training transforms for real images of any size and aspect ratio -> ``size x size``.

    The image is first resized so that its shorter side is ``size``; then, with ``augment``,
    :func:`~ubernet_lite.data.transforms.train_transforms` (a random scale in [0.75, 1.25], a
    random ``size`` crop padded with 0 / ignore 255 where the image is smaller, a flip, colour
    jitter); without it, the central ``size x size`` crop.
    """
    from .transforms import Compose, train_transforms

    if not augment:
        return Compose([ResizeShortestSide(size), CenterCrop(size)])
    return Compose([ResizeShortestSide(size), *train_transforms(size=size).transforms])
