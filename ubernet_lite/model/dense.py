"""Every dense task's branch in one pass: the tasks' layers side by side along the channels.

Each dense task t has its own skip layers E_i^t (1x1 convolutions), tap fusion F^t and scale
fusion S^t (Fig. 2). All of them are linear and act on each output channel separately, so the
branches of several tasks are one branch whose layers are the tasks' layers concatenated along
the output channels:

    [E_i^1; ...; E_i^T] (B_i(C_i)) = [E_i^1(B_i(C_i)); ...; E_i^T(B_i(C_i))]   (Fig. 2, per tap i)

and the interpolations and the fusions F^t, S^t (one weight per channel) commute with the
concatenation. One 1x1 convolution per tap and level then produces every task's channels, one
interpolation per stride and level brings all of them up, one scale fusion adds the levels, and
the result is split into the tasks' predictions: the same values as the tasks' own branches
(``DenseBranch.forward``), at a fraction of the calls. The parameters stay the tasks' own (the
concatenation is recomputed from them at every call), so their names, their gradients and the
lazy evaluation of Sec. 4 (only the tasks asked for are run) are unchanged.
"""

from __future__ import annotations

import torch

from .pyramid import to_input_resolution
from .skip import SkipFusion, upsample_from_stride


def _level_outputs(
    skip: SkipFusion, taps, size, joint, channels: list[int], image_size
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One pyramid level of every task: ``skip(taps, size, joint)`` split into the tasks'
    channels, T pairs ``(z [B, C_t, h, w] at the level's resolution, y = z brought to the input
    resolution [B, C_t, H, W])``.

    The split is made before the last, full-resolution steps (the finest interpolation of the
    coarse-to-fine chain, plus the finest taps' map; the level's interpolation to the input
    resolution), so that each task's full-size tensors are its own contiguous tensors (and their
    gradients need no full-size concatenation), while every coarser step is shared."""
    by_stride = skip.by_stride(taps, joint)
    strides = sorted(by_stride, reverse=True)
    if len(strides) < 2 or not skip.chains(by_stride):
        joint_out = skip.upsampled(by_stride, size)
        return [(z, to_input_resolution(z, image_size)) for z in joint_out.split(channels, dim=1)]
    out = skip.coarse_to_fine(by_stride, strides[:-1])  # all but the last step, shared
    coarse, fine = strides[-2], strides[-1]
    finest = by_stride[fine]
    outs = []
    for o, y in zip(out.split(channels, dim=1), finest.split(channels, dim=1), strict=True):
        z = upsample_from_stride(o, coarse // fine, tuple(y.shape[-2:])) + y
        z = upsample_from_stride(z, fine, size)
        outs.append((z, to_input_resolution(z, image_size)))
    return outs


def decode_dense(branches, feats) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """The pyramid levels of several dense branches (``DenseBranch``: ``.skip`` a ``SkipFusion``,
    ``.scale_fusion`` a ``ScaleFusion``, all on the same taps) computed as one branch.

    Args:
        branches: the T dense branches, in the order of the result.
        feats: the ``PyramidFeatures`` (taps of L levels, their sizes, the image size (H, W)).

    Returns:
        per branch, per level, ``(z [B, C_t, h_l, w_l], y [B, C_t, H, W])``: the branch's map
        at the level's resolution and brought to the input resolution, what
        ``branch(feats, levels=...)`` fuses over the levels (S^t).
    """
    skips = [b.skip for b in branches]
    if len({s.tap_strides for s in skips}) > 1:
        raise ValueError("decode_dense: the branches must read taps of the same strides")
    if len(branches) <= 1:
        return [b.levels(feats) for b in branches]
    channels = [b.scale_fusion.weight.shape[1] for b in branches]
    folded = [s.folded() for s in skips]  # per task, per tap: F^t_i E^t_i, (w [C_t, C_i, 1, 1], b)
    joint = [
        (torch.cat([f[i][0] for f in folded]), torch.cat([f[i][1] for f in folded]))
        for i in range(len(folded[0]))
    ]  # per tap: [sum C_t, C_i, 1, 1], [sum C_t]
    levels = [
        _level_outputs(skips[0], taps, size, joint, channels, feats.image_size)
        for taps, size in zip(feats.taps, feats.level_sizes, strict=True)
    ]  # L x T x (z [B, C_t, h_l, w_l], y [B, C_t, H, W])
    return [[level[k] for level in levels] for k in range(len(branches))]
