"""Download voc2012 into the data root. PASCAL VOC 2012 trainval (detection, segmentation); the images PASCAL-Part and SBD label.

Usage: `python data_scripts/download_voc2012.py [--root DIR] [--keep-archives]`
(root: `$UBERNET_DATA` or ~/data/ubernet). Sources, sizes and checksums: `_download.SOURCES`;
disk space and time: data_scripts/README.md.
"""

import sys

from _download import main_for

if __name__ == "__main__":
    sys.exit(main_for("voc2012"))
