"""Attentive single-tasking of multiple tasks (Maninis, Radosavovic, Kokkinos, CVPR 2019) on
UberNet's own trunk, taps, branches and pyramid.

The talk's diagnosis ("Did multi-tasking turn our network to a dilettante?"): UberNet's seven-task
model loses against its single-task models (detection 78.7 -> 77.8, segmentation 72.4 -> 68.7),
because one shared representation must carry every task's features at once -- task interference,
"Count the balls!": what one task needs is noise to another. The remedy, "Attention to task":

* **single-tasking** -- the network performs one task per forward pass, conditioned on that task
  ("Network performs one task at a time"); the shared trunk is run once per task;
* **task-specific modulation by squeeze-and-excitation** (Hu et al., CVPR 2018; the talk's
  "Modulation: Squeeze and Excitation", "Negligible amount of parameters, Global feature
  modulation") -- per trunk block ``b`` and task ``t`` a channel gate on the block's output::

      z   = mean_{h,w} x                              squeeze      x: [B, C, h, w] -> z: [B, C]
      s_t = 2 sigmoid(W2_t relu(W1_t z))              excitation   W1_t: [C/r, C], W2_t: [C, C/r]
      x'  = s_t * x                                   "accentuate relevant, suppress irrelevant"

  (SE's gate is ``sigmoid``; ours is ``2 sigmoid`` with ``W2_t = 0`` at start, so that a fresh
  model computes exactly UberNet: the paper copies ImageNet-trained SE weights, the lite preset
  trains from random weights and starts the comparison from the same network);
* **parallel residual adapters** (Rebuffi et al., NIPS 2017 / CVPR 2018; the talk's "Feature
  Augmentation: Residual Adapters ... parallel residual adapters") -- per block ``b`` and task
  ``t`` a 1x1 convolution beside the block's first 3x3 convolution, started at zero::

      conv_b(x)  ->  conv_b(x) + A_t^b x              A_t^b: 1x1 conv [C_out, C_in], no bias

* the **adversarial task discriminator** (the talk's "Handling Conflicting Gradients:
  Adversarial Training", Ganin & Lempitsky, ICML 2015): :class:`TaskDiscriminator` predicts from
  a gradient ``dL_t / dF`` at the shared features ``F`` which task ``t`` it came from; its own
  gradient is reversed (x -k, :class:`GradientReversal`) into the layers that shaped ``F``'s
  gradient, so that they learn to make the tasks' gradients indistinguishable. The training glue
  (double backward through ``dL_t / dF``) is :mod:`ubernet_lite.training.attentive`.

Each piece switches on its own: ``AttentiveUberNet(cfg, se=..., adapters=...)`` and
``discriminator=`` in training. With ``se=False, adapters=False`` the model *is* UberNet (the same
parameters, the same state dict keys, the same outputs); with them on and freshly initialised it
still computes UberNet's outputs, one trunk pass per task.

Parameters (lite preset, ``describe()``): the SE gates (r = 16) add 3.6% of the trunk for three
tasks and 8.4% for seven; the adapters, a 1x1 beside a 3x3 in every block, add 1/9 of each
block's first convolution per task: 14% of the trunk for three tasks, 33% for seven -- small
against seven single-task networks, not negligible against one trunk.

Trunk blocks are :class:`~ubernet_lite.model.vgg.VGGTrunk`'s six ``segments`` (conv1..conv5 and
fc6/fc7), so SE gate ``b`` sits on tap ``C_b`` (it modulates both what the task's skip layer
``E_b^t`` reads and what block ``b + 1`` computes from), at every pyramid level (tied weights).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .pyramid import image_pyramid, level_size
from .ubernet import PyramidFeatures, TaskOutputs, UberNet

# --------------------------------------------------------------------------------------------
# Gradient reversal (Ganin & Lempitsky, ICML 2015)
# --------------------------------------------------------------------------------------------


class GradientReversal(torch.autograd.Function):
    """Identity forward, ``-k`` times the incoming gradient backward ("Reverse the Gradient").

    ``GradientReversal.apply(x, k)``: x any tensor -> a tensor equal to x; backward returns
    ``-k * grad`` for x (and nothing for k). Twice differentiable (the backward is linear).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, k: float) -> torch.Tensor:
        ctx.k = float(k)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.k * grad, None


def reverse_gradient(x: torch.Tensor, k: float = 1.0) -> torch.Tensor:
    """``GradientReversal.apply(x, k)``; k >= 0 (k = 0 stops the gradient)."""
    if k < 0:
        raise ValueError(f"gradient reversal needs k >= 0 (it multiplies by -k), got {k}")
    return GradientReversal.apply(x, k)


class TaskDiscriminator(nn.Module):
    """Fully convolutional task classifier on (normalised) gradient maps.

    Two 1x1 convolutions with a ReLU between (the ASTMT code base's fully convolutional
    discriminator of depth 2): [B, C, h, w] -> task logits [B, T, h, w], one prediction per cell.

    Args:
        channels: C, the channels of the shared feature map whose gradients it reads.
        num_tasks: T, the number of tasks it tells apart.
        hidden: width of the hidden layer (default C).
    """

    def __init__(self, channels: int, num_tasks: int, hidden: int | None = None):
        super().__init__()
        if channels < 1 or num_tasks < 2:
            raise ValueError(
                f"TaskDiscriminator needs channels >= 1 and num_tasks >= 2, got {channels}, {num_tasks}"
            )
        hidden = channels if hidden is None else hidden
        self.num_tasks = num_tasks
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, num_tasks, 1)
        )

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        return self.net(g)


def normalise_gradient(g: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Unit L2 norm over channels per cell: [B, C, h, w] -> [B, C, h, w] (what D reads; the
    gradients' scale differs by orders of magnitude between tasks and would give the task away)."""
    return g / (g.norm(p=2, dim=1, keepdim=True) + eps)


# --------------------------------------------------------------------------------------------
# Task-specific modulation and adapters
# --------------------------------------------------------------------------------------------


class TaskSE(nn.Module):
    """One trunk block's squeeze-and-excitation gates, one per task.

    ``forward(x, task)``: [B, C, h, w] -> ``s_t(x) * x`` [B, C, h, w] with
    ``s_t = 2 sigmoid(W2_t relu(W1_t mean_hw x))`` in (0, 2), equal to 1 at initialisation.
    ``gate(x, task)`` returns ``s_t`` [B, C].

    Args:
        channels: C.
        tasks: task names (one gate each).
        reduction: r, hidden width ``max(4, C // r)`` (16 as in SE).
    """

    def __init__(self, channels: int, tasks, reduction: int = 16):
        super().__init__()
        hidden = max(4, channels // reduction)
        self.excite = nn.ModuleDict()
        for t in tasks:
            mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))
            nn.init.zeros_(mlp[2].weight)  # s_t = 2 sigmoid(0) = 1: starts as the identity
            nn.init.zeros_(mlp[2].bias)
            self.excite[t] = mlp

    def gate(self, x: torch.Tensor, task: str) -> torch.Tensor:
        z = x.mean(dim=(2, 3))  # squeeze: [B, C]
        return 2.0 * torch.sigmoid(self.excite[task](z))  # excitation s_t: [B, C]

    def forward(self, x: torch.Tensor, task: str) -> torch.Tensor:
        return x * self.gate(x, task)[:, :, None, None]  # x' = s_t * x


def _first_conv(block: nn.Sequential) -> nn.Conv2d:
    for m in block.children():
        if isinstance(m, nn.Conv2d):
            return m
    raise ValueError("a trunk block without a convolution")  # pragma: no cover


class AttentiveUberNet(UberNet):
    """UberNet that single-tasks: one trunk pass per task, modulated by the task.

    Args:
        cfg: an :class:`~ubernet_lite.UberNetConfig` (the same trunk, tasks and pyramid).
        se: task-specific SE modulation after every trunk block (:class:`TaskSE`).
        adapters: task-specific parallel residual adapters beside every block's first conv.
        se_reduction: r of the SE gates.

    ``forward(images, tasks=None, targets=None)`` is UberNet's (a :class:`TaskOutputs`), but each
    requested task runs its own ``encode(images, task)`` (the trunk conditioned on the task). With
    neither mechanism on there is nothing to condition on and the trunk runs once (UberNet).

    ``task_parameters(name)`` -- the task's branch, SE gates and adapters -- is what
    :class:`~ubernet_lite.training.AsyncSGD` reads for the task's group (its own counter and
    B_p = ``spec.batch_size``: the modulation of task t only sees samples labelled for t); the
    trunk and tap BatchNorms stay in the ``"shared"`` group.
    """

    def __init__(self, cfg, se: bool = True, adapters: bool = True, se_reduction: int = 16):
        super().__init__(cfg)
        self.use_se, self.use_adapters = bool(se), bool(adapters)
        names = self.task_names
        blocks = list(self.trunk.segments)
        if self.use_se:
            self.se = nn.ModuleList(TaskSE(c, names, se_reduction) for c in self.trunk.tap_channels)
        if self.use_adapters:
            self.adapters = nn.ModuleList()
            for block in blocks:
                conv = _first_conv(block)
                per_task = nn.ModuleDict()
                for t in names:
                    a = nn.Conv2d(conv.in_channels, conv.out_channels, 1, bias=False)
                    nn.init.zeros_(a.weight)  # A_t^b = 0: starts as UberNet (ASTMT's choice)
                    per_task[t] = a
                self.adapters.append(per_task)
        self._first_convs = [_first_conv(b) for b in blocks]

    @property
    def conditioned(self) -> bool:
        """True when the trunk depends on the task (SE or adapters on)."""
        return self.use_se or self.use_adapters

    def task_parameters(self, name: str) -> list[nn.Parameter]:
        """The parameters only task ``name`` uses: its branch, SE gates and adapters."""
        (name,) = self._check_tasks([name])
        params = list(self.heads[name].parameters())
        if self.use_se:
            params += [p for se in self.se for p in se.excite[name].parameters()]
        if self.use_adapters:
            params += [p for a in self.adapters for p in a[name].parameters()]
        return params

    def modulation_parameters(self, name: str) -> list[nn.Parameter]:
        """Task ``name``'s SE and adapter parameters only (without its branch)."""
        head = {id(p) for p in self.heads[name].parameters()}
        return [p for p in self.task_parameters(name) if id(p) not in head]

    # ---------------------------------------------------------------- the conditioned trunk
    def trunk_taps(
        self, x: torch.Tensor, task: str | None, gates: list | None = None
    ) -> list[torch.Tensor]:
        """The six taps C_1..C_6 of one pyramid level, conditioned on ``task``.

        [B, 3, h, w] -> six [B, C_b, h_b, w_b] as ``VGGTrunk.forward``; with SE, tap b is
        ``s_t^b * block_b(...)``; with adapters, block b's first conv is ``conv + A_t^b``.
        ``gates``: a list that receives the six SE gates s_t^b [B, C_b] (when SE is on).
        """
        if not self.conditioned:
            return self.trunk(x)
        if task is None:
            raise ValueError(
                "AttentiveUberNet with SE or adapters runs one task per pass: pass task=<name>"
            )
        taps = []
        for b, block in enumerate(self.trunk.segments):
            first = self._first_convs[b]
            for layer in block.children():
                if self.use_adapters and layer is first:
                    x = layer(x) + self.adapters[b][task](x)  # parallel residual adapter
                else:
                    x = layer(x)
            if self.use_se:
                gate = self.se[b].gate(x, task)  # s_t^b: [B, C_b]
                if gates is not None:
                    gates.append(gate)
                x = x * gate[:, :, None, None]  # task-specific SE modulation of block b
            taps.append(x)
        return taps

    @torch.no_grad()
    def se_gates(self, images: torch.Tensor, task: str) -> list[torch.Tensor]:
        """Task ``task``'s SE gates on the images (finest pyramid level): six [B, C_b] in (0, 2)."""
        if not self.use_se:
            raise ValueError("this AttentiveUberNet has no SE gates (se=False)")
        (task,) = self._check_tasks([task])
        gates: list[torch.Tensor] = []
        self.trunk_taps(images, task, gates=gates)
        return gates

    def encode(self, images: torch.Tensor, task: str | None = None) -> PyramidFeatures:
        """UberNet's ``encode`` with the trunk conditioned on ``task`` (needed when SE/adapters
        are on): [B, 3, H, W] -> :class:`PyramidFeatures`."""
        if not self.conditioned:
            return super().encode(images)
        self._check_images(images)
        (task,) = self._check_tasks([task]) if task is not None else (None,)
        size = tuple(images.shape[-2:])
        taps, det = [], None
        for l, level in enumerate(image_pyramid(images, self.scales)):
            raw = self.trunk_taps(level, task)
            taps.append(self.taps(raw))  # B_i(C_i), shared
            if l == 0 and any(s.kind == "detection" for s in self.specs.values()):
                det = raw[self.detection_tap]
        sizes = [level_size(size, s) for s in self.scales]
        return PyramidFeatures(taps=taps, detection=det, image_size=size, level_sizes=sizes)

    def forward(self, images: torch.Tensor, tasks=None, targets=None) -> TaskOutputs:
        names = self._check_tasks(tasks)
        if not self.conditioned:
            return super().forward(images, names, targets)
        out = TaskOutputs()
        for name in names:  # single-tasking: one conditioned trunk pass per task
            out.update(self.decode(name, self.encode(images, task=name), targets))
        return out

    def describe(self, print_fn=print) -> dict[str, int]:
        """UberNet's parameter counts, plus ``se`` and ``adapters`` (all tasks together)."""
        counts = super().describe(print_fn=None)
        for name in self.task_names:  # heads only in UberNet's count of the task
            counts[name] = sum(p.numel() for p in self.heads[name].parameters())
        if self.use_se:
            counts["se"] = sum(p.numel() for p in self.se.parameters())
        if self.use_adapters:
            counts["adapters"] = sum(p.numel() for p in self.adapters.parameters())
        if print_fn is not None:
            width = max(len(k) for k in counts) + 2
            on = [m for m, f in (("SE", self.use_se), ("adapters", self.use_adapters)) if f]
            print_fn(
                f"AttentiveUberNet ({self.cfg.preset}): {len(self.specs)} tasks, {on or 'off'}"
            )
            for k, v in counts.items():
                print_fn(f"  {k:<{width}}{v:>12,d}")
            print_fn(f"  {'total':<{width}}{sum(counts.values()):>12,d}")
        return counts


def flops_per_image(model: nn.Module, size: int | tuple[int, int], tasks=None) -> int:
    """Floating-point operations of one eval-mode forward of one image (torch's FLOP counter:
    convolutions and matrix products, 2 per multiply-add), for the given tasks (default: all).

    An AttentiveUberNet pays one trunk pass per task; UberNet one for every task together.
    """
    hw = (size, size) if isinstance(size, int) else tuple(size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.rand(1, 3, *hw), tasks=tasks)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


__all__ = [
    "AttentiveUberNet",
    "GradientReversal",
    "TaskDiscriminator",
    "TaskSE",
    "flops_per_image",
    "normalise_gradient",
    "reverse_gradient",
]
