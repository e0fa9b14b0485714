"""``python -m ubernet_lite {train,evaluate,predict,memory-bench}`` (see :mod:`ubernet_lite.cli`)."""

import sys

from .cli import main

sys.exit(main())
