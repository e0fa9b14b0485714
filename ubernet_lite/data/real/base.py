"""What every real data set shares: where it lives, how its files are read, the loader base.

``data_root`` finds the data root (the ``root`` argument, else ``$UBERNET_DATA``, else
``~/data/ubernet``) and :data:`FOLDERS` where each set's official archive unpacks under it; a set
that is not there raises :class:`DatasetNotFoundError` naming the set, the folder it expected and
the script that fetches it (``python data_scripts/download_<name>.py``).

Samples have the structure of :class:`ubernet_lite.data.SynthWorld`'s (docs/design.md):
``image`` float32 [3, H, W] in [0, 1], the targets the set provides, ``has_label`` over
``ubernet_lite.tasks.TARGETS`` (absent key <=> False) and ``meta``.

Bad files (a truncated JPEG/PNG, a ``.mat`` without a field): every loader takes
``on_error="raise"`` (default: :class:`CorruptFileError` naming the file, and the field for
``.mat`` files) or ``on_error="skip"`` (a warning naming the file, the sample replaced by the next
readable one, and the file counted in ``dataset.skipped``). Nothing is ever silently filled in.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...tasks import TARGETS

#: Environment variable naming the data root.
DATA_ENV = "UBERNET_DATA"

#: Where each data set's official archive unpacks to, relative to the data root.
FOLDERS: dict[str, str] = {
    "voc2007": "VOCdevkit/VOC2007",
    "voc2012": "VOCdevkit/VOC2012",
    "sbd": "benchmark_RELEASE/dataset",
    "pascal_parts": "pascal_parts/Annotations_Part",
    "nyuv2": "nyuv2",
    "msra10k": "MSRA10K_Imgs_GT/Imgs",
    "bsds500": "BSR/BSDS500/data",
    "pascal_s": "pascal_s/datasets",
}


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


def dataset_folder(
    name: str, root: str | os.PathLike | None = None, must_exist: bool = True
) -> Path:
    """``<root>/<folder of name>``; raises :class:`DatasetNotFoundError` if it is not a folder."""
    if name not in FOLDERS:
        raise KeyError(f"unknown data set {name!r}; the real data sets are {sorted(FOLDERS)}")
    folder = data_root(root) / FOLDERS[name]
    if must_exist and not folder.is_dir():
        raise DatasetNotFoundError(
            f"data set {name!r} not found: expected the folder {folder}; fetch it with "
            f"`python data_scripts/download_{name}.py --root {data_root(root)}` "
            f"(or set {DATA_ENV} to a root that has it)"
        )
    return folder


def require_files(name: str, root: str | os.PathLike | None, found: int, wanted: str) -> None:
    """Raise :class:`DatasetNotFoundError` when a set's folder exists but holds none of the files
    it needs (``found == 0``); ``wanted`` says which, relative to the set's folder."""
    if found == 0:
        base = data_root(root)
        raise DatasetNotFoundError(
            f"data set {name!r}: {base / FOLDERS[name]} holds no {wanted}; fetch the set with "
            f"`python data_scripts/download_{name}.py --root {base}` (or set {DATA_ENV} to a "
            "root that has it)"
        )


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
    import scipy.io  # deferred: ~0.8 s of import time that only .mat files (SBD, PASCAL-Part) need

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
