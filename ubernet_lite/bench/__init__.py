"""Benchmarks: ``python -m ubernet_lite.bench <name> [options]``, one module per benchmark.

| name         | what it measures                                          | module          |
| ------------ | --------------------------------------------------------- | --------------- |
| forward      | one shared trunk vs seven single-task networks; lite step | forward.py      |
| data         | SynthWorld samples/s; ``--real``: the DataLoader feed     | data.py, loader.py |
| train        | the step against the trunk (ratio), training throughput   | train.py        |
| memory       | peak memory, standard vs low-memory backward (Sec. 4)     | memory.py       |
| boundaries   | boundary evaluation (ODS / OIS / AP)                      | boundaries.py   |
| gpu          | paper preset on a GPU: inference, images/s, peak, widest  | gpu.py          |

Every benchmark module has ``main(argv: list[str]) -> int | None``. The dispatcher imports only
the module asked for: each pulls in its own heavy dependencies (torch, scipy, matplotlib).
"""

from __future__ import annotations

import importlib
import sys

#: benchmark name -> module with ``main(argv)``.
BENCHMARKS: dict[str, str] = {
    "forward": "ubernet_lite.bench.forward",
    "data": "ubernet_lite.bench.data",
    "train": "ubernet_lite.bench.train",
    "memory": "ubernet_lite.bench.memory",
    "boundaries": "ubernet_lite.bench.boundaries",
    "gpu": "ubernet_lite.bench.gpu",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print("usage: python -m ubernet_lite.bench {" + ",".join(BENCHMARKS) + "} [options]")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}; expected one of {list(BENCHMARKS)}", file=sys.stderr)
        return 2
    module_name = BENCHMARKS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            print(f"benchmark {name!r}: no module {module_name}", file=sys.stderr)
            return 2
        raise
    rc = module.main(rest)
    return rc if isinstance(rc, int) else 0
