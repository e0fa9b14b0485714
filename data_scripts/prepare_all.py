"""What is under the data root, and fetch what is missing.

Usage:
    python data_scripts/prepare_all.py --list [--root DIR]
    python data_scripts/prepare_all.py --download NAME|all [--root DIR] [--keep-archives]

``--list`` prints, per data set: its status (``ready``: fetched and verified by these scripts,
marker present; ``partial``: an interrupted download or unpacking left ``.part`` / ``.tmp-*``
files, rerun the script to resume; ``corrupt``: a download that failed its size or checksum
check, or an archive that did not unpack, was kept as ``.bad`` (or the marker is unreadable),
rerun the script; ``present (no marker)``: a non-empty folder these scripts did not write, e.g.
your own copy, not verified; ``missing``: no folder or an empty one), the expected download size
and disk size (``~``: approximate, ``?``: not known to us, recorded at first download; ``*``: from
memory of the official page, unverified), and the folder. Sizes and times are documented in
data_scripts/README.md.
"""

import sys

from _download import SOURCES, OneLineParser, data_root, fetch_dataset, status


def fmt_mb(src) -> str:
    mb = src.download_mb
    if mb is None:
        return "?"
    verified = all(a.size_verified for a in src.archives)
    text = f"{mb / 1000:.1f} GB" if mb >= 1000 else f"{mb:.0f} MB"
    return f"~{text}" + ("" if verified else "*")


def list_sets(root) -> list[tuple[str, str]]:
    root = data_root(root)
    print(f"data root: {root}")
    print(f"{'name':<13} {'status':<20} {'download':>10} {'disk':>8}  folder")
    rows = []
    for name, src in SOURCES.items():
        st = status(name, root)
        disk = f"~{src.disk_gb:g} GB" + ("" if src.disk_verified else "*")
        print(f"{name:<13} {st:<20} {fmt_mb(src):>10} {disk:>8}  {root / src.folder}")
        rows.append((name, st))
    missing = [n for n, s in rows if s in ("missing", "partial", "corrupt")]
    if missing:
        print("fetch with: " + "; ".join(f"python data_scripts/download_{n}.py" for n in missing))
    print(
        "* from memory of the official pages, not verified; ? not known, recorded at first download"
    )
    return rows


def main(argv=None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--root", default=None, help="data root (default $UBERNET_DATA or ~/data/ubernet)"
    )
    p.add_argument("--list", action="store_true", help="what is present, missing, and how big")
    p.add_argument("--download", metavar="NAME|all", help="fetch one data set or all of them")
    p.add_argument("--keep-archives", action="store_true")
    a = p.parse_args(argv)
    if not a.list and not a.download:
        a.list = True
    if a.list:
        list_sets(a.root)
    if a.download:
        names = list(SOURCES) if a.download == "all" else [a.download]
        unknown = [n for n in names if n not in SOURCES]
        if unknown:
            print(
                f"error: unknown data set {unknown[0]!r}; choose from {list(SOURCES)} or 'all'",
                file=sys.stderr,
            )
            return 2
        failed = []
        for n in names:
            post = None
            if n == "nyuv2":
                from download_nyuv2 import derive_normals as post
            try:
                import dataclasses

                if post is not None:
                    SOURCES[n] = dataclasses.replace(SOURCES[n], post=post)
                fetch_dataset(n, a.root, keep_archives=a.keep_archives)
            except Exception as e:  # report and go on with the next set
                print(f"error: {n}: {e}", file=sys.stderr)
                failed.append(n)
        if failed:
            print(f"failed: {failed}; rerun to resume", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
