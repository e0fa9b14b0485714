"""Download pascal_parts into the data root. PASCAL-Part annotations (the human parts of the paper's part task). Needs voc2012 for the images.

Usage: `python data_scripts/download_pascal_parts.py [--root DIR] [--keep-archives]`
(root: `$UBERNET_DATA` or ~/data/ubernet). Sources, sizes and checksums: `_download.SOURCES`;
disk space and time: data_scripts/README.md.
"""

import sys

from _download import main_for

if __name__ == "__main__":
    sys.exit(main_for("pascal_parts"))
