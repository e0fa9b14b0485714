"""Download pascal_s into the data root. PASCAL-S, the saliency test set (850 images, graded masks).

Usage: `python data_scripts/download_pascal_s.py [--root DIR] [--keep-archives]`
(root: `$UBERNET_DATA` or ~/data/ubernet). Sources, sizes and checksums: `_download.SOURCES`;
disk space and time: data_scripts/README.md.
"""

import sys

from _download import main_for

if __name__ == "__main__":
    sys.exit(main_for("pascal_s"))
