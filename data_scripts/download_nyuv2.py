"""Download NYU Depth v2 (labelled subset) and derive its surface-normal ground truth.

Usage:
    python data_scripts/download_nyuv2.py [--root DIR] [--keep-archives]
    python data_scripts/download_nyuv2.py --normals-only [--root DIR]   # you already have the .mat

Fetches ``nyu_depth_v2_labeled.mat`` (2.8 GB, MATLAB v7.3 = HDF5) and ``splits.mat`` (the
official 795 / 654 train / test split) into ``<root>/nyuv2/``, then derives
``<root>/nyuv2/normals/<index>.png`` (index = 0-based image index, 4 digits) from the labelled
set's in-painted depth maps: NYUv2 ships no normals. The derivation is
``ubernet_lite.data.nyu.normals_from_depth``: back-project with the Kinect intrinsics of the NYU
toolbox, fit a least-squares plane to the 3-D points of each 7 x 7 window, orient the normal to
face the camera. Encoding: RGB uint8 ``round((n + 1) / 2 * 255)``, camera coordinates x right,
y down, z towards the camera; (0, 0, 0) marks pixels without a normal (too few valid points).
These are *not* the normals of the paper (which used 23024 raw frames and another pipeline) nor
the Ladicky et al. normals some benchmarks use; they are documented, reproducible stand-ins.

Normals are written into ``normals.tmp/`` (each file through a temporary name) and the folder is
renamed to ``normals/`` when all 1449 are done; an interrupted run resumes where it stopped.
Needs the installed package (``pip install -e .``) and h5py.
"""

import os
import sys
import time
from pathlib import Path

from _download import OneLineParser, data_root, main_for


def derive_normals(root: Path, window: int = 7) -> None:
    import h5py
    from PIL import Image

    from ubernet_lite.data.real.nyu import encode_normals_png, normals_from_depth

    base = root / "nyuv2"
    final, tmp = base / "normals", base / "normals.tmp"
    if final.is_dir():
        print(f"  normals: {final} exists")
        return
    tmp.mkdir(parents=True, exist_ok=True)
    with h5py.File(base / "nyu_depth_v2_labeled.mat", "r") as f:
        depths = f["depths"]  # (N, W, H) as h5py sees MATLAB's [H, W, N]
        n = depths.shape[0]
        t0 = time.time()
        for i in range(n):
            out = tmp / f"{i:04d}.png"
            if out.is_file():
                continue
            depth = depths[i].T  # [H, W] metres
            normals = normals_from_depth(depth, window=window)
            part = tmp / f"{i:04d}.part.png"
            Image.fromarray(encode_normals_png(normals)).save(part)
            os.replace(part, out)
            if i % 50 == 0:
                print(f"  normals: {i + 1}/{n} ({time.time() - t0:.0f} s)", flush=True)
    os.replace(tmp, final)
    print(f"  normals: {n} files in {final}")


if __name__ == "__main__":
    if "--normals-only" in sys.argv:
        p = OneLineParser(description="Derive nyuv2/normals/ from an existing labelled .mat")
        p.add_argument("--normals-only", action="store_true")
        p.add_argument("--root", default=None)
        p.add_argument("--window", type=int, default=7)
        a = p.parse_args()
        mat = data_root(a.root) / "nyuv2" / "nyu_depth_v2_labeled.mat"
        if not mat.is_file():
            print(f"error: no {mat}; fetch it first (without --normals-only)", file=sys.stderr)
            sys.exit(2)
        derive_normals(data_root(a.root), a.window)
        sys.exit(0)
    print("(use --normals-only to derive nyuv2/normals/ for a .mat you already have)")
    sys.exit(main_for("nyuv2", post=derive_normals))
