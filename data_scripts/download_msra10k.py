"""Download msra10k into the data root. MSRA10K salient-object images and masks (the paper's saliency training set).

Usage: `python data_scripts/download_msra10k.py [--root DIR] [--keep-archives]`
(root: `$UBERNET_DATA` or ~/data/ubernet). Sources, sizes and checksums: `_download.SOURCES`;
disk space and time: data_scripts/README.md.
"""

import sys

from _download import main_for

if __name__ == "__main__":
    sys.exit(main_for("msra10k"))
