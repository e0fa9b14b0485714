"""``python -m ubernet_lite.bench <name> [options]`` (see :mod:`ubernet_lite.bench`)."""

import sys

from . import main

sys.exit(main())
