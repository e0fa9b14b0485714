"""The paper's real data sets: file readers and the loader base (base.py), one loader per set
(voc.py, sbd.py, parts.py, nyu.py, msra.py, bsds.py, pascal_s.py), the registry and the test sets
(registry.py), the paper's training union (union.py) and the transforms for images of any size
(transforms.py).

```python
voc = ul.data.load_dataset("voc2007", root, split="trainval")
union = ul.data.real.diverse_union_real(root)          # a DiverseUnion of the real members
tests = ul.data.real.load_test_sets(root)              # {target: its test set}, TEST_SETS
```
"""

from .base import (
    DATA_ENV,
    FOLDERS,
    CorruptFileError,
    DatasetNotFoundError,
    RealDataset,
    data_root,
    dataset_folder,
)
from .registry import (
    DATASETS,
    TEST_SETS,
    DatasetInfo,
    EvalSetInfo,
    available_datasets,
    load_dataset,
    load_test_sets,
    voc2012_segmentation_val_ids,
)
from .transforms import (
    CenterCrop,
    RandomScaleShortestSide,
    ResizeShortestSide,
    real_transforms,
    shortest_side_shape,
)
from .union import (
    COLUMNS,
    PAPER_PROPORTIONS,
    PAPER_TABLE,
    diverse_union_real,
    members_for_targets,
)

__all__ = [
    "DATA_ENV",
    "FOLDERS",
    "CorruptFileError",
    "DatasetNotFoundError",
    "RealDataset",
    "data_root",
    "dataset_folder",
    "DATASETS",
    "TEST_SETS",
    "DatasetInfo",
    "EvalSetInfo",
    "available_datasets",
    "load_dataset",
    "load_test_sets",
    "voc2012_segmentation_val_ids",
    "CenterCrop",
    "RandomScaleShortestSide",
    "ResizeShortestSide",
    "real_transforms",
    "shortest_side_shape",
    "COLUMNS",
    "PAPER_PROPORTIONS",
    "PAPER_TABLE",
    "diverse_union_real",
    "members_for_targets",
]
