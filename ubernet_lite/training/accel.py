"""Speed on a GPU: bf16 autocast, channels_last, ``cudnn.benchmark`` / TF32, CUDA RNG states.

```python
speed = Speedups.for_device("cuda")          # all on for CUDA, all off on the CPU
apply_backend_flags(speed)                   # cudnn.benchmark, TF32 matmuls and convolutions
model = prepare_model(model, speed)          # channels_last weights
with autocast_model(model, speed):           # encode/decode in bf16, outputs back in float32
    losses = multitask_backward(model, batch, memory="low")   # losses in float32
```

* **bf16 autocast** runs the network's convolutions and matmuls in bfloat16 (no loss scaling is
  needed: bf16 has float32's exponent range). Only the network runs under autocast:
  :func:`autocast_model` wraps ``model.encode`` and ``model.decode`` (both backward schedules
  call them; ``forward`` calls them too) and casts the branches' outputs back to float32, so the
  losses (Eq. 1-2), their reductions over pixels and samples, and the optimiser's accumulators
  are float32. Parameters and gradients stay float32 (autocast casts copies).
* **channels_last** (NHWC) lets cuDNN pick its fast tensor-core convolution kernels: the weights
  are converted once (:func:`prepare_model`) and the images on the way in (:func:`prepare_images`).
* **cudnn.benchmark** times the convolution algorithms for each new input shape once (training
  crops are one fixed square size, so this is paid once), and TF32 for the float32 matmuls and
  convolutions that remain.

On by default for CUDA devices, off on the CPU; ``Speedups.for_device(device, enabled=False)``
(the CLI's ``--no-speedups``) turns all of them off. Each part also works on the CPU (autocast in
bf16 on the CPU, channels_last), which the tests use.

**CUDA RNG states.** :func:`cuda_rng_states` / :func:`set_cuda_rng_states` add every CUDA
device's generator state to the torch / numpy / python states of a checkpoint, so that dropout
and the RPN's sampling on a GPU continue exactly after a resume.
"""

from __future__ import annotations

import dataclasses
import functools
from contextlib import contextmanager

import torch

__all__ = [
    "Speedups",
    "apply_backend_flags",
    "autocast_model",
    "cuda_rng_states",
    "prepare_images",
    "prepare_model",
    "set_cuda_rng_states",
    "to_float32",
]


@dataclasses.dataclass(frozen=True)
class Speedups:
    """Which GPU speed-ups a run uses.

    Attributes:
        device_type: ``"cuda"`` or ``"cpu"`` (autocast's device type).
        autocast: run the network under bf16 autocast (losses in float32).
        channels_last: NHWC weights and images.
        benchmark: ``cudnn.benchmark`` and TF32 (CUDA only).
    """

    device_type: str = "cpu"
    autocast: bool = False
    channels_last: bool = False
    benchmark: bool = False

    @classmethod
    def for_device(cls, device, enabled: bool | None = None) -> Speedups:
        """All on for a CUDA device, all off on the CPU; ``enabled`` forces them on or off."""
        kind = torch.device(device).type
        on = (kind == "cuda") if enabled is None else bool(enabled)
        return cls(device_type=kind, autocast=on, channels_last=on, benchmark=on and kind == "cuda")


def apply_backend_flags(speed: Speedups) -> None:
    """Set ``cudnn.benchmark`` and TF32 for CUDA runs (process-wide flags; no-op otherwise)."""
    if speed.device_type != "cuda":
        return
    torch.backends.cudnn.benchmark = speed.benchmark
    torch.backends.cudnn.allow_tf32 = speed.benchmark
    torch.backends.cuda.matmul.allow_tf32 = speed.benchmark


def prepare_model(model: torch.nn.Module, speed: Speedups) -> torch.nn.Module:
    """The model with channels_last weights when asked (in place; returns the model)."""
    if speed.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def prepare_images(images: torch.Tensor, speed: Speedups) -> torch.Tensor:
    """[B, 3, H, W] images in channels_last memory order when asked (same values)."""
    if speed.channels_last and images.dim() == 4:
        return images.contiguous(memory_format=torch.channels_last)
    return images


def to_float32(x):
    """Floating tensors (also inside dicts, lists and ``TaskOutputs``' ``.scales``) as float32."""
    if torch.is_tensor(x):
        return x.float() if x.is_floating_point() and x.dtype != torch.float32 else x
    if isinstance(x, dict):
        out = type(x)() if hasattr(x, "scales") else {}
        out.update({k: to_float32(v) for k, v in x.items()})
        if hasattr(x, "scales"):
            out.scales = {k: to_float32(v) for k, v in x.scales.items()}
        return out
    if isinstance(x, (list, tuple)):
        return type(x)(to_float32(v) for v in x)
    return x


def _autocast_encode(fn, speed: Speedups, images):
    with torch.autocast(device_type=speed.device_type, dtype=torch.bfloat16):
        return fn(images)


def _autocast_decode(fn, model, speed: Speedups, name, feats, targets=None):
    spec = getattr(model, "specs", {}).get(name)
    if spec is not None and spec.kind == "detection":
        # torchvision's RPN / RoI heads want float boxes: detection runs in float32
        if feats.detection is not None:
            feats = dataclasses.replace(feats, detection=feats.detection.float())
        with torch.autocast(device_type=speed.device_type, enabled=False):
            return to_float32(fn(name, feats, targets=targets))
    with torch.autocast(device_type=speed.device_type, dtype=torch.bfloat16):
        out = fn(name, feats, targets=targets)
    return to_float32(out)


@contextmanager
def autocast_model(model: torch.nn.Module, speed: Speedups):
    """Inside the context ``model.encode`` and ``model.decode`` run under bf16 autocast.

    ``encode``'s features stay bf16 (the branches read them under autocast too); ``decode``'s
    outputs (predictions, or detection's loss dict) come back as float32, so the losses computed
    outside the context are float32. The detection branch (torchvision's RPN and RoI heads,
    whose box code requires float32 boxes) runs in float32 on a float32 copy of its feature
    map. No-op when ``speed.autocast`` is off.
    """
    if not speed.autocast:
        yield model
        return
    patched = []
    try:
        for name in ("encode", "decode"):
            own = model.__dict__.get(name)
            bound = own or getattr(type(model), name).__get__(model)
            if name == "encode":
                wrapped = functools.partial(_autocast_encode, bound, speed)
            else:
                wrapped = functools.partial(_autocast_decode, bound, model, speed)
            setattr(model, name, wrapped)
            patched.append((name, own))
        yield model
    finally:
        for name, own in patched:
            if own is None:
                delattr(model, name)
            else:
                setattr(model, name, own)


def cuda_rng_states(cuda=torch.cuda) -> list[torch.Tensor] | None:
    """Every CUDA device's RNG state (``cuda``: the ``torch.cuda`` module, or a stand-in in
    tests); None when CUDA is not available or not initialised (nothing to save)."""
    if not cuda.is_available() or not cuda.is_initialized():
        return None
    return [s.clone() for s in cuda.get_rng_state_all()]


def set_cuda_rng_states(states: list[torch.Tensor] | None, cuda=torch.cuda) -> None:
    """Restore :func:`cuda_rng_states`; a checkpoint from a CPU run (None) leaves CUDA as is,
    and so does a machine without CUDA (a CPU resume draws nothing from CUDA generators).

    Raises if the checkpoint has more CUDA devices' states than this machine has devices.
    """
    if states is None or not cuda.is_available():
        return
    if cuda.device_count() < len(states):
        raise RuntimeError(
            f"the checkpoint holds the RNG states of {len(states)} CUDA device(s), this machine "
            f"has {cuda.device_count()}; resume on a machine with as many GPUs "
            "(CUDA_VISIBLE_DEVICES may hide some)"
        )
    cuda.set_rng_state_all(states)
