"""NYU Depth v2 (Silberman et al., ECCV 2012), labelled subset, with surface-normal ground truth.

Files under ``<root>/nyuv2/``:

- ``nyu_depth_v2_labeled.mat`` (official, 2.8 GB): MATLAB v7.3, i.e. an HDF5 file, read with h5py.
  MATLAB stores arrays column-major, so h5py sees every axis reversed: MATLAB's ``images``
  [480, 640, 3, 1449] (H, W, C, N) is the HDF5 dataset ``images`` (1449, 3, 640, 480)
  (N, C, W, H), and ``depths`` [480, 640, 1449] is (1449, 640, 480) (N, W, H). We transpose
  the last two axes back: ``image`` float32 [3, 480, 640].
- ``splits.mat`` (official, MATLAB v5): ``trainNdxs`` (795) and ``testNdxs`` (654), 1-based
  indices into the 1449 images -> splits ``train`` / ``test`` (``all``: the 1449 images).
- ``normals/<index>.png`` (derived, ``<index>`` = 0-based image index, 4 digits, e.g.
  ``normals/0000.png``): surface normals, RGB uint8, encoded ``round((n + 1) / 2 * 255)``
  per component, in camera coordinates x right, y down, z towards the camera; pixels
  without ground truth are stored as (0, 0, 0), which no unit vector encodes to, and decode to
  the zero vector (invalid). ``.npy`` files (float32 [H, W, 3], zero vectors invalid) are read
  as well. NYUv2 ships no normals: ``data_scripts/download_nyuv2.py`` derives them from the
  labelled set's (in-painted) ``depths`` with :func:`normals_from_depth` (least-squares plane fit
  over a 7 x 7 window with the Kinect's intrinsics :data:`NYU_INTRINSICS`, the recipe of
  Eigen & Fergus 2015). The paper's 23024 NYU images are raw video frames with normals from
  another pipeline; they are not part of the official labelled download.

Samples carry ``normals`` float32 [3, H, W] (unit, or zero where invalid) when the derived file
exists; NYU's 894-class labels are not used (no VOC class mapping).
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .base import (
    CorruptFileError,
    DatasetNotFoundError,
    RealDataset,
    check_shape,
    data_root,
    dataset_folder,
    empty_flags,
    load_mat,
    make_sample,
    mat_field,
)

#: Kinect RGB intrinsics of NYUv2 (fx, fy, cx, cy), from the NYU toolbox's ``camera_params.m``.
NYU_INTRINSICS = (
    5.1885790117450188e02,
    5.1946961112127485e02,
    3.2558244941119034e02,
    2.5373616633400465e02,
)

MAT_NAME = "nyu_depth_v2_labeled.mat"
SPLITS_NAME = "splits.mat"


def normals_from_depth(
    depth: torch.Tensor | np.ndarray,
    intrinsics: tuple[float, float, float, float] = NYU_INTRINSICS,
    window: int = 7,
    min_points: int = 6,
) -> torch.Tensor:
    """Surface normals from a depth map by a least-squares plane fit in each window.

    Every pixel (u, v) with depth Z > 0 is back-projected, X = (u - cx) Z / fx, Y = (v - cy) Z / fy;
    the normal of a pixel is the eigenvector of the smallest eigenvalue of the covariance of the
    valid 3-D points in its ``window`` x ``window`` neighbourhood, turned to face the camera.

    Args:
        depth: float [H, W] metres (0 = missing).
        intrinsics: (fx, fy, cx, cy) in pixels.
        window: odd window size.
        min_points: fewer valid points in the window -> invalid.
    Returns:
        float32 [3, H, W]: unit normals in camera coordinates x right, y down, z towards the camera,
        the zero vector where invalid.
    """
    if window % 2 != 1:
        raise ValueError(f"window must be odd, got {window}")
    d = torch.as_tensor(np.asarray(depth), dtype=torch.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be [H, W], got shape {tuple(d.shape)}")
    H, W = d.shape
    fx, fy, cx, cy = intrinsics
    v, u = torch.meshgrid(
        torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij"
    )
    valid = (d > 0).to(torch.float64)
    P = (
        torch.stack([(u - cx) * d / fx, (v - cy) * d / fy, d]) * valid
    )  # [3, H, W], z away from camera

    def box(x):  # [C, H, W] -> window sums [C, H, W]
        s = F.avg_pool2d(x[None], window, stride=1, padding=window // 2, count_include_pad=True)[0]
        return s * (window * window)

    n = box(valid[None])[0].clamp_min(1.0)
    mean = box(P) / n
    outer = torch.stack([P[i] * P[j] for i in range(3) for j in range(3)])  # [9, H, W]
    cov = (box(outer) / n).reshape(3, 3, H, W) - mean[:, None] * mean[None, :]
    cov = cov.permute(2, 3, 0, 1).reshape(-1, 3, 3)
    vec, mid = smallest_eigenvector_sym3(cov)
    normal = vec.reshape(H, W, 3).permute(2, 0, 1)  # [3, H, W]
    # a plane needs two clearly non-zero eigenvalues (points not on a line)
    ok = (box(valid[None])[0] >= min_points) & (valid > 0) & (mid.reshape(H, W) > 1e-12)
    flip = (normal * P).sum(0) > 0  # must face the camera: n . P < 0 in the z-forward frame
    normal = torch.where(flip[None], -normal, normal)
    normal = torch.stack(
        [normal[0], normal[1], -normal[2]]
    )  # z towards the camera (our convention)
    return (normal * ok[None]).to(torch.float32)


def smallest_eigenvector_sym3(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvector of the smallest eigenvalue of symmetric 3 x 3 matrices, in closed form.

    The eigenvalues come from the trigonometric solution of the characteristic cubic (Smith,
    CACM 1961); the eigenvector is the longest cross product of two rows of ``A - lambda_min I``.
    About 20x faster than ``torch.linalg.eigh`` on 640 x 480 maps of 3 x 3 covariances.

    Args:
        A: float64 [N, 3, 3] symmetric.
    Returns:
        (unit eigenvectors [N, 3], the middle eigenvalue [N]).
    """
    a00, a11, a22 = A[:, 0, 0], A[:, 1, 1], A[:, 2, 2]
    a01, a02, a12 = A[:, 0, 1], A[:, 0, 2], A[:, 1, 2]
    q = (a00 + a11 + a22) / 3
    p1 = a01**2 + a02**2 + a12**2
    p = torch.sqrt(((a00 - q) ** 2 + (a11 - q) ** 2 + (a22 - q) ** 2 + 2 * p1) / 6).clamp_min(
        1e-300
    )
    b00, b11, b22 = (a00 - q) / p, (a11 - q) / p, (a22 - q) / p
    b01, b02, b12 = a01 / p, a02 / p, a12 / p
    det = (
        b00 * (b11 * b22 - b12 * b12)
        - b01 * (b01 * b22 - b12 * b02)
        + b02 * (b01 * b12 - b11 * b02)
    )
    phi = torch.acos((det / 2).clamp(-1.0, 1.0)) / 3
    largest = q + 2 * p * torch.cos(phi)
    smallest = q + 2 * p * torch.cos(phi + 2 * torch.pi / 3)
    middle = 3 * q - largest - smallest
    M = A - smallest[:, None, None] * torch.eye(3, dtype=A.dtype)
    crosses = torch.stack(
        [
            torch.linalg.cross(M[:, 0], M[:, 1]),
            torch.linalg.cross(M[:, 0], M[:, 2]),
            torch.linalg.cross(M[:, 1], M[:, 2]),
        ],
        dim=1,
    )  # [N, 3 candidates, 3]
    norms = crosses.norm(dim=-1)
    best = norms.argmax(dim=1)
    vec = crosses[torch.arange(len(A)), best]
    vec = vec / norms.gather(1, best[:, None]).clamp_min(1e-300)
    return vec, middle


def encode_normals_png(normals: torch.Tensor) -> np.ndarray:
    """float [3, H, W] (zero = invalid) -> uint8 [H, W, 3] as stored in ``normals/<index>.png``."""
    n = torch.as_tensor(normals, dtype=torch.float32)
    valid = n.norm(dim=0) > 0.5
    enc = ((n + 1) / 2 * 255).round().clamp(0, 255).to(torch.uint8)
    enc = enc * valid[None]
    return enc.permute(1, 2, 0).contiguous().numpy()


def decode_normals(arr: np.ndarray, path="normals") -> torch.Tensor:
    """uint8 [H, W, 3] (PNG encoding) or float [H, W, 3] (``.npy``) -> float32 [3, H, W] unit,
    zero where invalid."""
    a = np.asarray(arr)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise CorruptFileError(f"{path}: normals should be [H, W, 3], got shape {a.shape}")
    if a.dtype == np.uint8:
        invalid = (a == 0).all(-1)
        n = torch.from_numpy(a.astype(np.float32)) / 127.5 - 1.0
    else:
        n = torch.from_numpy(a.astype(np.float32))
        invalid = np.asarray(np.linalg.norm(a, axis=-1) < 1e-6)
    n = n.permute(2, 0, 1)
    n = n / n.norm(dim=0, keepdim=True).clamp_min(1e-6)
    return n * torch.from_numpy(~invalid)[None]


def read_normals(path) -> torch.Tensor:
    """``normals/<index>.png`` or ``.npy`` -> float32 [3, H, W]."""
    path = str(path)
    if path.endswith(".npy"):
        try:
            arr = np.load(path)
        except (OSError, ValueError, EOFError) as e:
            raise CorruptFileError(f"{path}: corrupt or truncated .npy ({e})") from e
        return decode_normals(arr, path)
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptFileError(f"{path}: corrupt or truncated normals image ({e})") from e
    return decode_normals(arr, path)


def read_nyu_splits(path) -> dict[str, np.ndarray]:
    """``splits.mat`` -> ``{"train": int64 [795], "test": int64 [654]}`` 0-based indices."""
    mat = load_mat(path)
    return {
        "train": np.atleast_1d(np.asarray(mat_field(mat, "trainNdxs", path)))
        .astype(np.int64)
        .ravel()
        - 1,
        "test": np.atleast_1d(np.asarray(mat_field(mat, "testNdxs", path))).astype(np.int64).ravel()
        - 1,
    }


class NYUv2Dataset(RealDataset):
    """NYUv2 labelled images with derived surface normals.

    Args:
        root: data root holding ``nyuv2/``.
        split: "train" (795), "test" (654) or "all" (1449).
        on_error: "raise" or "skip".
    """

    def __init__(self, root=None, split: str = "train", on_error: str = "raise"):
        super().__init__(on_error)
        if split not in ("train", "test", "all"):
            raise ValueError(f"nyuv2 split must be 'train', 'test' or 'all', got {split!r}")
        self.name, self.split = "nyuv2", split
        self.folder = dataset_folder("nyuv2", data_root(root))
        self.mat_path = self.folder / MAT_NAME
        self._h5, self._pid = None, None
        if not self.mat_path.is_file():
            raise DatasetNotFoundError(
                f"data set 'nyuv2': {self.mat_path} not found; fetch it with `python data_scripts/download_nyuv2.py`"
            )
        count = self._dataset("images").shape[0]
        if split == "all":
            self.indices = np.arange(count)
        else:
            sp = self.folder / SPLITS_NAME
            if not sp.is_file():
                raise DatasetNotFoundError(
                    f"data set 'nyuv2': {sp} not found; fetch it with `python data_scripts/download_nyuv2.py`"
                )
            self.indices = read_nyu_splits(sp)[split]
            if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= count):
                raise CorruptFileError(
                    f"{sp}: {split} indices outside 1..{count} of {self.mat_path}"
                )

    def _file(self):
        import h5py  # deferred: ~0.2 s of import time that only the official NYU .mat (HDF5) needs

        if (
            self._h5 is None or self._pid != os.getpid()
        ):  # one handle per process (DataLoader workers)
            try:
                self._h5 = h5py.File(self.mat_path, "r")
            except OSError as e:
                raise CorruptFileError(
                    f"{self.mat_path}: not a readable MATLAB v7.3 (HDF5) file ({e})"
                ) from e
            self._pid = os.getpid()
        return self._h5

    def _dataset(self, field: str):
        f = self._file()
        if field not in f:
            raise CorruptFileError(f"{self.mat_path}: missing field {field!r}")
        return f[field]

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self):  # h5py handles do not pickle; reopen in the worker
        state = dict(self.__dict__)
        state["_h5"] = None
        return state

    def normals_path(self, index: int):
        for ext in (".png", ".npy"):
            p = self.folder / "normals" / f"{index:04d}{ext}"
            if p.is_file():
                return p
        return None

    def label_flags(self, i: int) -> dict[str, bool]:
        return {**empty_flags(), "normals": self.normals_path(int(self.indices[i])) is not None}

    def _load(self, i: int) -> dict:
        index = int(self.indices[i])
        images = self._dataset("images")
        if images.ndim != 4 or images.shape[1] != 3:
            raise CorruptFileError(
                f"{self.mat_path}: field 'images' should be (N, 3, W, H) as h5py sees it, got {images.shape}"
            )
        try:
            raw = np.asarray(images[index])  # (3, W, H)
        except OSError as e:
            raise CorruptFileError(f"{self.mat_path}: cannot read images[{index}] ({e})") from e
        image = (
            torch.from_numpy(np.ascontiguousarray(raw.transpose(0, 2, 1))).float().div_(255.0)
        )  # [3, H, W]
        targets = {}
        p = self.normals_path(index)
        if p is not None:
            normals = read_normals(p)
            check_shape(normals.numpy(), tuple(image.shape[-2:]), p, "normals")
            targets["normals"] = normals
        return make_sample(image, targets, self.name, self.split, i, id=f"{index:04d}")


__all__ = [
    "NYUv2Dataset",
    "NYU_INTRINSICS",
    "normals_from_depth",
    "encode_normals_png",
    "decode_normals",
    "read_normals",
    "read_nyu_splits",
]
