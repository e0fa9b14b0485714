"""Download sbd into the data root. SBD, the Semantic Boundaries Dataset: class/instance segmentations and per-class boundaries.

Usage: `python data_scripts/download_sbd.py [--root DIR] [--keep-archives]`
(root: `$UBERNET_DATA` or ~/data/ubernet). Sources, sizes and checksums: `_download.SOURCES`;
disk space and time: data_scripts/README.md.
"""

import sys

from _download import main_for

if __name__ == "__main__":
    sys.exit(main_for("sbd"))
