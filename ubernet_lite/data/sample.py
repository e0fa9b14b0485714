"""The sample dict that the synthetic world and the real data sets share (docs/design.md).

A sample holds ``image`` float32 [3, H, W] in [0, 1], the keys of the targets it carries,
``has_label`` ``{target: bool}`` over the seven targets (a key is absent <=> False) and ``meta``.
:data:`TARGET_KEYS` says which keys belong to which target; :func:`stable_seed` gives every
random choice made per sample (labelled subsets, sampler draws, augmentation) its own seed.
"""

from __future__ import annotations

import zlib

#: Sample keys that belong to each target (``detection`` stands for boxes, labels, difficult).
TARGET_KEYS: dict[str, tuple[str, ...]] = {
    "boundaries": ("boundaries",),
    "normals": ("normals",),
    "saliency": ("saliency",),
    "semantic": ("semantic",),
    "parts": ("parts",),
    "semantic_boundaries": ("semantic_boundaries",),
    "detection": ("boxes", "labels", "difficult"),
}


def stable_seed(*parts) -> int:
    """A 31-bit seed from any printable parts, the same on every machine and Python run."""
    return zlib.crc32("/".join(str(p) for p in parts).encode()) & 0x7FFFFFFF
