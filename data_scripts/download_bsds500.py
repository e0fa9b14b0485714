"""Download bsds500 into the data root. BSDS500 images and multi-annotator boundary ground truth (train/val/test).

Usage: `python data_scripts/download_bsds500.py [--root DIR] [--keep-archives]`
(root: `$UBERNET_DATA` or ~/data/ubernet). Sources, sizes and checksums: `_download.SOURCES`;
disk space and time: data_scripts/README.md.
"""

import sys

from _download import main_for

if __name__ == "__main__":
    sys.exit(main_for("bsds500"))
