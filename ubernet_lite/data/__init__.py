"""Data: the synthetic world, the union of partially labelled data sets, transforms, collate.

```python
world = ul.data.SynthWorld(split="train", size=128, seed=0)   # every label of the seven tasks
union = ul.data.diverse_union(split="train", size=128)       # views that carry only some labels
batch = ul.data.collate([union[i] for i in range(4)])        # the batch dict of docs/design.md
voc   = ul.data.load_dataset("voc2007", root, split="trainval")  # real data sets (data/real.py)
```
"""

from .collate import collate
from .real import load_dataset
from .synthetic import SynthWorld
from .transforms import (
    ColorJitter,
    Compose,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    TransformedDataset,
    crop,
    hflip,
    resize,
    train_transforms,
)
from .union import (
    DEFAULT_TABLE,
    AnnotationMatrix,
    DiverseUnion,
    UnionMember,
    UnionSampler,
    diverse_union,
)

__all__ = [
    "SynthWorld",
    "load_dataset",
    "collate",
    "diverse_union",
    "DiverseUnion",
    "UnionMember",
    "UnionSampler",
    "AnnotationMatrix",
    "DEFAULT_TABLE",
    "Compose",
    "RandomScale",
    "RandomCrop",
    "RandomHorizontalFlip",
    "ColorJitter",
    "TransformedDataset",
    "train_transforms",
    "resize",
    "crop",
    "hflip",
]
