"""Download voc2007 into the data root. PASCAL VOC 2007 trainval + test (detection; segmentation for 422 trainval images).

Usage: `python data_scripts/download_voc2007.py [--root DIR] [--keep-archives]`
(root: `$UBERNET_DATA` or ~/data/ubernet). Sources, sizes and checksums: `_download.SOURCES`;
disk space and time: data_scripts/README.md.
"""

import sys

from _download import main_for

if __name__ == "__main__":
    sys.exit(main_for("voc2007"))
