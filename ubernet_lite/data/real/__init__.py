"""The paper's real data sets (interim: everything still lives in base.py)."""

from .base import *  # noqa: F403
from .base import (  # noqa: F401
    DATASETS,
    PAPER_PROPORTIONS,
    PAPER_TABLE,
    TEST_SETS,
    CenterCrop,
    CorruptFileError,
    DatasetNotFoundError,
    RealDataset,
    RealUnion,
    ResizeShortestSide,
    available_datasets,
    data_root,
    dataset_folder,
    diverse_union_real,
    load_dataset,
    load_test_sets,
    members_for_targets,
    real_transforms,
    shortest_side_shape,
    voc2012_segmentation_val_ids,
)
