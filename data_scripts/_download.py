"""Shared download / verify / unpack machinery of ``data_scripts/download_<name>.py``.

Guarantees (so that an interrupted or failed run never leaves something a later run, or a
loader, would take for a complete data set):

- downloads go to ``<root>/.downloads/<file>.part``. A download is complete only when its byte
  count equals what the server promised (``Content-Length``, or the total of a
  ``Content-Range``) and, where we know it, the file's exact size (:attr:`Archive.size`); a
  connection cut early is resumed with an HTTP ``Range`` request from the bytes on disk, and a
  ``206`` reply whose range does not start there is refused (nothing is appended);
- a complete file is then checked against a checksum that did not come from the file itself:
  the official md5 (VOC, SBD: the ones torchvision's dataset classes check) or a sha256 we ship.
  We know no published sha256 for any of these files (this project was built without network
  access), so every file without an md5 says so, and the sha256 of its first size-verified
  download is *recorded* in ``<root>/.downloads/<file>.sha256`` (with its size) and checked on
  later runs (compare it with a colleague's copy: it is *recorded*, not *official*). A mismatch
  is kept as ``<file>.part.bad`` and the run fails;
- archives unpack into a fresh temporary folder ``<root>/.tmp-<name>-*`` that is moved into place
  with ``os.replace`` (a rename) only once unpacking has finished; if the target folder already
  exists (VOC 2007's test archive joins its trainval folder) the tree is merged file by file,
  never overwriting. An archive that fails to unpack is moved aside to ``<file>.bad`` with a
  one-line error that says to rerun;
- the marker ``<root>/<folder>/.ubernet_complete`` (JSON: files, checksums, time) is written
  last; ``prepare_all.py --list`` reports each set as ``ready`` (marker), ``partial``
  (``.part`` files, ``.tmp-*`` folders: rerun), ``corrupt`` (a ``.bad`` file kept, or an
  unreadable marker: rerun), ``present (no marker)`` (e.g. a copy you made yourself) or
  ``missing``.

Nothing here runs at import time, and nothing in the package or the tests downloads.
"""

from __future__ import annotations

import argparse
import bz2
import dataclasses
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MARKER = ".ubernet_complete"
DATA_ENV = "UBERNET_DATA"
RETRY_WAIT_S = 2.0  # seconds before retry k is k * RETRY_WAIT_S (tests set 0)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$UBERNET_DATA``, else ``~/data/ubernet`` (same rule as the package)."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path("~/data/ubernet").expanduser()


@dataclass(frozen=True)
class Archive:
    """One file to fetch.

    Attributes:
        url: the official address.
        filename: the name it is stored under in ``<root>/.downloads`` (or ``dest`` for ``file``).
        md5 / sha256: checksums from outside the file that we are sure of (None: none known;
            the sha256 of the first size-verified download is recorded and said).
        size: the exact size in bytes where we know it (checked against what the server
            promises and what arrives); None: the server's Content-Length is all we have.
        size_mb: expected download size in MB (1e6 bytes), ``size_verified`` whether it is from an
            official listing or a checksum-verified copy rather than memory.
        kind: "tar" (any compression), "zip" or "file" (stored as is, not unpacked).
        anchor: a path that must exist in the unpacked tree, relative to the folder that is moved.
        target: where that folder goes, relative to the data root ("." = the root itself).
    """

    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None
    size_mb: float | None = None
    size_verified: bool = False
    kind: str = "tar"
    anchor: str = ""
    target: str = "."


@dataclass(frozen=True)
class Source:
    """One data set: where it goes and what to fetch.

    Attributes:
        name: the ``load_dataset`` name.
        folder: the folder the loader reads, relative to the data root (the marker goes there).
        archives: what to download, in order.
        disk_gb: approximate disk space after unpacking (GB), ``disk_verified`` as for sizes.
        minutes: rough time at 10 MB/s including unpacking (and derivation for NYUv2).
        notes: anything a user should know (licence, mirrors, what is derived).
    """

    name: str
    folder: str
    archives: tuple[Archive, ...]
    disk_gb: float
    disk_verified: bool = False
    minutes: float = 0.0
    notes: str = ""
    post: Callable[[Path], None] | None = field(default=None, compare=False)

    @property
    def download_mb(self) -> float | None:
        sizes = [a.size_mb for a in self.archives]
        return None if any(s is None for s in sizes) else sum(sizes)


VOC = "http://host.robots.ox.ac.uk/pascal/VOC"

#: The official sources. Checksums only where we are sure (the VOC and SBD md5s are the ones
#: torchvision's dataset classes check); we know no published sha256 of any of these files, so
#: every file without an md5 has its sha256 recorded at first (size-verified) download, and says
#: so. Exact byte sizes (``size``) only where several independent download logs agree (the three
#: VOC tars); sizes in MB marked unverified are from memory of the official pages: rough.
SOURCES: dict[str, Source] = {
    s.name: s
    for s in [
        Source(
            "voc2007",
            "VOCdevkit/VOC2007",
            (
                Archive(f"{VOC}/voc2007/VOCtrainval_06-Nov-2007.tar", "VOCtrainval_06-Nov-2007.tar",
                        md5="c52e279531787c972589f7e41ab4ae64", size=460_032_000, size_mb=460, anchor="VOCdevkit/VOC2007"),
                Archive(f"{VOC}/voc2007/VOCtest_06-Nov-2007.tar", "VOCtest_06-Nov-2007.tar",
                        md5="b6e924de25625d8de591ea690078ad9f", size=451_020_800, size_mb=451, anchor="VOCdevkit/VOC2007"),
            ),
            disk_gb=0.9,
            minutes=5,
            notes="trainval (5011 images) + test (4952 images, with annotations) merged in one folder",
        ),
        Source(
            "voc2012",
            "VOCdevkit/VOC2012",
            (
                Archive(f"{VOC}/voc2012/VOCtrainval_11-May-2012.tar", "VOCtrainval_11-May-2012.tar",
                        md5="6cd6e144f989b92b3379bac3b3de84fd", size=1_999_639_040, size_mb=2000, anchor="VOCdevkit/VOC2012"),
            ),
            disk_gb=2.0,
            minutes=10,
            notes="trainval only (11540 detection images, 2913 segmentation); the test set is on the "
                  "evaluation server",
        ),
        Source(
            "sbd",
            "benchmark_RELEASE/dataset",
            (
                Archive("http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/"
                        "semantic_contours/benchmark.tgz", "benchmark.tgz",
                        md5="82b4d87ceb2ed10f6038a1cba92111cb", size_mb=1400, anchor="benchmark_RELEASE/dataset"),
            ),
            disk_gb=1.8,
            minutes=8,
            notes="11355 VOC 2011 images with .mat class/instance segmentations and boundaries",
        ),
        Source(
            "pascal_parts",
            "pascal_parts/Annotations_Part",
            (
                Archive("http://roozbehm.info/pascal-parts/trainval.tar.gz", "pascal_parts_trainval.tar.gz",
                        size_mb=None, anchor="Annotations_Part", target="pascal_parts"),
            ),
            disk_gb=0.6,
            minutes=3,
            notes="annotations only (10103 VOC 2010 images); the images are read from voc2012, so "
                  "fetch voc2012 too. Size unknown to us: recorded at first download",
        ),
        Source(
            "nyuv2",
            "nyuv2",
            (
                Archive("http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat",
                        "nyu_depth_v2_labeled.mat", size_mb=2970, kind="file", target="nyuv2"),
                Archive("http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat", "splits.mat",
                        size_mb=0.003, kind="file", target="nyuv2"),
            ),
            disk_gb=3.5,
            minutes=25,
            notes="normals are derived from depth by download_nyuv2.py into nyuv2/normals/ "
                  "(about 10 minutes of CPU, 0.5 GB)",
        ),
        Source(
            "msra10k",
            "MSRA10K_Imgs_GT/Imgs",
            (
                Archive("https://mmcheng.net/mftp/Data/MSRA10K_Imgs_GT.zip", "MSRA10K_Imgs_GT.zip",
                        size_mb=None, kind="zip", anchor="MSRA10K_Imgs_GT/Imgs"),
            ),
            disk_gb=0.2,
            minutes=2,
            notes="10000 image/mask pairs; size unknown to us: recorded at first download",
        ),
        Source(
            "bsds500",
            "BSR/BSDS500/data",
            (
                Archive("http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz",
                        "BSR_bsds500.tgz", size_mb=70, anchor="BSR/BSDS500/data"),
            ),
            disk_gb=0.1,
            minutes=1,
            notes="500 images, 5-9 annotators each (.mat); the BSR folder also holds the benchmark code",
        ),
        Source(
            "pascal_s",
            "pascal_s/datasets",
            (
                Archive("http://cbs.ri.gatech.edu/salobj/download/salObj.zip", "salObj.zip",
                        size_mb=None, kind="zip", anchor="datasets/imgs/pascal", target="pascal_s"),
            ),
            disk_gb=0.3,
            minutes=2,
            notes="850 images with graded masks (and eye fixations, unused); size unknown to us",
        ),
    ]
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Download with resume and checksums
# ---------------------------------------------------------------------------------------------


def file_hash(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ChecksumError(RuntimeError):
    """A downloaded file does not match its checksum or its known size."""


class UnpackError(RuntimeError):
    """A downloaded archive does not unpack; it has been moved aside to ``<file>.bad``."""


class DownloadError(RuntimeError):
    """A download did not complete (cut, short, refused range); the ``.part`` is kept to resume."""


def _recorded(path: Path, archive: Archive) -> Path:
    return path.parent / f"{archive.filename}.sha256"


def verify(path: Path, archive: Archive, expected_size: int | None = None) -> str:
    """Check ``path``'s size (``archive.size``, ``expected_size`` from the server) and its checksum
    (official md5 / sha256, else the one recorded at first download; record the sha256, and say
    so, if there is none). Returns the sha256. Raises :class:`ChecksumError`."""
    size = path.stat().st_size
    for want, what in ((archive.size, "its known size"), (expected_size, "what the server sent")):
        if want is not None and size != want:
            raise ChecksumError(f"{path}: {size} bytes, {what} is {want}")
    if archive.md5 and file_hash(path, "md5") != archive.md5:
        raise ChecksumError(f"{path}: md5 differs from the official {archive.md5}")
    sha = file_hash(path, "sha256")
    if archive.sha256 and sha != archive.sha256:
        raise ChecksumError(f"{path}: sha256 differs from the official {archive.sha256}")
    recorded = _recorded(path, archive)
    if not (archive.md5 or archive.sha256):
        if recorded.is_file():
            fields = recorded.read_text().split()
            want_sha = fields[0]
            want_size = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else None
            if want_size is not None and size != want_size:
                raise ChecksumError(
                    f"{path}: {size} bytes, the copy recorded at first download had {want_size}"
                )
            if sha != want_sha:
                raise ChecksumError(
                    f"{path}: sha256 {sha} differs from the one recorded at first download "
                    f"({want_sha})"
                )
        else:
            recorded.write_text(f"{sha}  {archive.filename}  {size}\n")
            print(
                f"  {archive.filename}: no official checksum is known to us; recorded its sha256 "
                f"{sha} ({size} bytes) in {recorded} for later runs to check"
            )
    return sha


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _expected_total(r, start: int, url: str) -> tuple[int, int | None]:
    """(offset the reply's body starts at, total size it promises or None) for an HTTP reply to a
    request from byte ``start``. A ``206`` whose range does not start at ``start`` is refused."""
    status = getattr(r, "status", 200)
    length = r.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if status == 206:
        m = _CONTENT_RANGE.match(r.headers.get("Content-Range", ""))
        if m is None:
            raise DownloadError(
                f"{url}: the server answered 206 without a readable Content-Range "
                f"({r.headers.get('Content-Range')!r}); refused"
            )
        first, last, total = int(m[1]), int(m[2]), m[3]
        if first != start:
            raise DownloadError(
                f"{url}: asked for bytes from {start}, the server sent bytes from {first}; refused "
                "(nothing appended)"
            )
        return start, (int(total) if total != "*" else last + 1)
    return 0, length  # 200: the whole file (a server that ignores Range starts over)


def _fetch_once(archive: Archive, part: Path, timeout: float) -> tuple[int, int | None]:
    """One HTTP request continuing ``part``; returns (bytes on disk, total promised or None)."""
    start = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "ubernet_lite-data-scripts"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        r = urllib.request.urlopen(
            urllib.request.Request(archive.url, headers=headers), timeout=timeout
        )
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # range not satisfiable: the .part may be complete already
            m = re.match(
                r"bytes\s+\*/(\d+)", e.headers.get("Content-Range", "") if e.headers else ""
            )
            return start, int(m[1]) if m else archive.size
        raise
    with r:
        offset, total = _expected_total(r, start, archive.url)
        done, last = offset, time.time()
        with open(part, "ab" if offset else "wb") as f:
            for chunk in iter(lambda: r.read(1 << 20), b""):
                f.write(chunk)
                done += len(chunk)
                if time.time() - last > 2:
                    pct = f" ({100 * done / total:.0f}%)" if total else ""
                    print(f"  {part.name}: {done / 1e6:.0f} MB{pct}", flush=True)
                    last = time.time()
            f.flush()
            os.fsync(f.fileno())
    return done, total


def download(
    archive: Archive, dest: Path, retries: int = 3, timeout: float = 60.0
) -> tuple[Path, str]:
    """Fetch ``archive.url`` to ``dest`` through ``dest.part``, verify it, rename it into place.

    Complete means: as many bytes as the server promised (``Content-Length`` or the total of a
    ``Content-Range``) and as :attr:`Archive.size` where known; a shorter body (a cut
    connection) is resumed with a ``Range`` request from the bytes on disk, up to ``retries``
    requests. Then the checksum (see :func:`verify`). An existing verified ``dest`` is kept.
    Returns (dest, sha256). Raises :class:`DownloadError` (``.part`` kept: rerun to resume) or
    :class:`ChecksumError` (the file kept as ``.part.bad``)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        try:
            sha = verify(dest, archive)
            print(f"  {dest.name}: already downloaded and verified")
            return dest, sha
        except ChecksumError as e:
            print(f"  {e}; downloading again")
            dest.unlink()
    part = dest.with_name(dest.name + ".part")
    total = None
    for attempt in range(1, retries + 1):
        try:
            done, total = _fetch_once(archive, part, timeout)
            if total is None or done >= total:
                break
            problem = f"connection closed after {done} of {total} bytes"
        except DownloadError:
            raise
        except urllib.error.HTTPError as e:
            problem = f"HTTP {e.code} ({e.reason})"
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            problem = str(e)
        if attempt == retries:
            kept = f"; {part} is kept and the next run resumes it" if part.is_file() else ""
            raise DownloadError(
                f"{archive.url}: download incomplete after {retries} tries ({problem}){kept}"
            )
        print(f"  {archive.url}: {problem}; resuming ({attempt}/{retries})", flush=True)
        time.sleep(RETRY_WAIT_S * attempt)
    if total is None and archive.size is None:
        print(
            f"  {archive.filename}: the server gave no size and none is known to us, so the byte "
            "count cannot be checked (only the checksum)"
        )
    try:
        sha = verify(part, archive, expected_size=total)
    except ChecksumError as e:
        bad = part.with_name(part.name + ".bad")
        os.replace(part, bad)
        raise ChecksumError(
            f"{archive.url}: the download does not match its size or checksum ({e}); kept as "
            f"{bad}, rerun to fetch it again"
        ) from None
    os.replace(part, dest)
    return dest, sha


# ---------------------------------------------------------------------------------------------
# Unpack into a temporary folder, then move into place
# ---------------------------------------------------------------------------------------------


def _safe_members(tar: tarfile.TarFile, dest: Path):
    for m in tar.getmembers():
        target = (dest / m.name).resolve()
        if not str(target).startswith(str(dest.resolve())) or m.islnk() or m.issym() or m.isdev():
            raise RuntimeError(f"refusing to unpack unsafe archive member {m.name!r}")
        yield m


_COMPRESSED = ((b"\x1f\x8b", gzip.open), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open))


def check_archive(path: Path, kind: str) -> None:
    """Read the whole archive once, so that a truncated or corrupted one fails here, before any
    file is unpacked: a compressed tar is decompressed to its end (the gzip / bz2 / xz trailer
    and checksum are checked; tarfile alone stops at the end-of-archive marker and can unpack a
    cut archive without a word), a zip has every member's CRC checked."""
    if kind == "zip":
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
        if bad is not None:
            raise zipfile.BadZipFile(f"member {bad!r} fails its CRC check")
        return
    with open(path, "rb") as f:
        head = f.read(6)
    for magic, opener in _COMPRESSED:
        if head.startswith(magic):
            with opener(path, "rb") as stream:
                while stream.read(1 << 20):
                    pass
    with tarfile.open(path) as tar:
        tar.getmembers()  # every header, to the end-of-archive marker


def unpack(path: Path, dest: Path, kind: str) -> None:
    """Unpack a tar (any compression) or zip archive into ``dest`` (refusing unsafe paths),
    after :func:`check_archive`."""
    check_archive(path, kind)
    if kind == "tar":
        with tarfile.open(path) as tar:
            tar.extractall(dest, members=_safe_members(tar, dest))  # noqa: S202 - members checked
    elif kind == "zip":
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if not str((dest / name).resolve()).startswith(str(dest.resolve())):
                    raise RuntimeError(f"refusing to unpack unsafe archive member {name!r}")
            z.extractall(dest)
    else:
        raise ValueError(f"unknown archive kind {kind!r}")


def find_anchor(tmp: Path, anchor: str) -> Path:
    """The folder under ``tmp`` (itself or up to two levels down) that contains ``anchor``."""
    candidates = [tmp, *[p for p in tmp.iterdir() if p.is_dir()]]
    candidates += [q for p in candidates[1:] for q in p.iterdir() if q.is_dir()]
    for c in candidates:
        if (c / anchor).exists():
            return c
    found = sorted(str(p.relative_to(tmp)) for p in tmp.iterdir())
    raise RuntimeError(f"unpacked archive has no {anchor!r} (top level: {found[:10]})")


def merge_move(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` by rename; merge into an existing folder file by file (existing files
    are kept)."""
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    elif src.is_dir() and dst.is_dir():
        for child in src.iterdir():
            merge_move(child, dst / child.name)


def install_archive(root: Path, name: str, archive: Archive, path: Path) -> None:
    """Unpack ``path`` into ``<root>/.tmp-<name>-*`` and move its anchored folder into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
    try:
        print(f"  unpacking {path.name} ...", flush=True)
        try:
            unpack(path, tmp, archive.kind)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError,
                OSError) as e:  # fmt: skip
            bad = path.with_name(path.name + ".bad")
            os.replace(path, bad)
            recorded = _recorded(path, archive)
            if recorded.is_file():  # a sha256 recorded from a broken file is no reference
                os.replace(recorded, recorded.with_name(recorded.name + ".bad"))
            raise UnpackError(
                f"{path.name} does not unpack ({type(e).__name__}: {str(e).splitlines()[0]}); "
                f"moved aside to {bad}, "
                f"rerun the script to download it again"
            ) from None
        top = find_anchor(tmp, archive.anchor)
        target = root / archive.target
        if archive.target == ".":
            for child in top.iterdir():
                merge_move(child, root / child.name)
        else:
            merge_move(top, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Status and the per-set entry point
# ---------------------------------------------------------------------------------------------


STATES = ("ready", "partial", "corrupt", "present (no marker)", "missing")


def _marker_ok(folder: Path) -> bool:
    try:
        return isinstance(json.loads((folder / MARKER).read_text()).get("files"), dict)
    except (OSError, ValueError, AttributeError):
        return False


def status(name: str, root: Path) -> str:
    """One of :data:`STATES`: ``ready`` (the marker these scripts write last), ``corrupt`` (a
    download or archive kept as ``.bad``, or an unreadable marker: rerun), ``partial`` (a
    ``.part`` file or a ``.tmp-*`` folder: rerun),
    ``present (no marker)`` (a non-empty folder these scripts did not write, e.g. your own copy)
    or ``missing`` (no folder, or an empty one)."""
    src = SOURCES[name]
    folder = root / src.folder
    places = [
        (root / a.target if a.kind == "file" else root / ".downloads") / a.filename
        for a in src.archives
    ]
    if _marker_ok(folder):
        return "ready"
    bad = [p.with_name(p.name + suffix) for p in places for suffix in (".bad", ".part.bad")]
    if (folder / MARKER).exists() or any(p.is_file() for p in bad):
        return "corrupt"
    leftovers = list(root.glob(f".tmp-{name}-*")) + [
        p.with_name(p.name + ".part") for p in places if p.with_name(p.name + ".part").is_file()
    ]
    if leftovers:
        return "partial"
    if folder.is_dir() and any(folder.iterdir()):
        return "present (no marker)"
    return "missing"


def fetch_dataset(
    name: str, root: str | os.PathLike | None = None, keep_archives: bool = False
) -> Path:
    """Download, verify and unpack one data set under ``root``; write its completion marker."""
    src = SOURCES[name]
    root = data_root(root)
    root.mkdir(parents=True, exist_ok=True)
    folder = root / src.folder
    if _marker_ok(folder):
        print(f"{name}: complete at {folder}")
        return folder
    print(f"{name}: fetching into {root} (about {_mb(src)} download, {src.disk_gb} GB on disk)")
    record = {}
    downloads = root / ".downloads"
    fetched = []
    for a in src.archives:
        if a.kind == "file":  # stored as is: downloaded straight to its place (a rename, no copy)
            path, sha = download(a, root / a.target / a.filename)
        else:
            path, sha = download(a, downloads / a.filename)
            install_archive(root, name, a, path)
            fetched.append(path)
        record[a.filename] = {"url": a.url, "sha256": sha, "md5_official": a.md5}
    if not folder.is_dir():
        raise RuntimeError(
            f"{name}: after unpacking, {folder} does not exist; the archive layout changed?"
        )
    if src.post is not None:
        src.post(root)
    (folder / (MARKER + ".tmp")).write_text(
        json.dumps({"name": name, "files": record, "time": time.ctime()}, indent=1)
    )
    os.replace(folder / (MARKER + ".tmp"), folder / MARKER)
    if not keep_archives:
        for p in fetched:
            p.unlink(missing_ok=True)
    print(f"{name}: complete at {folder}")
    return folder


def _mb(src: Source) -> str:
    return "? MB (unknown)" if src.download_mb is None else f"{src.download_mb:.0f} MB"


class OneLineParser(argparse.ArgumentParser):
    """argparse whose bad-option answer is one line (and exit status 2), not usage text too."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def main_for(name: str, argv=None, post: Callable[[Path], None] | None = None) -> int:
    """Command line of ``download_<name>.py``."""
    src = SOURCES[name]
    parser = OneLineParser(
        description=f"Download {name} from its official source into the data root "
        f"(folder {src.folder}; about {_mb(src)}, {src.disk_gb} GB on disk). {src.notes}"
    )
    parser.add_argument(
        "--root", default=None, help=f"data root (default ${DATA_ENV} or ~/data/ubernet)"
    )
    parser.add_argument(
        "--keep-archives", action="store_true", help="keep the archives in <root>/.downloads"
    )
    args = parser.parse_args(argv)
    if post is not None and src.post is None:
        SOURCES[name] = dataclasses.replace(src, post=post)
    try:
        fetch_dataset(name, args.root, keep_archives=args.keep_archives)
    except (RuntimeError, OSError) as e:  # ChecksumError, DownloadError, UnpackError too
        print(f"error: {name}: {e}", file=sys.stderr)
        return 1
    return 0
