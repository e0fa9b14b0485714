"""The UberNet network (Sec. 2): atrous VGG-16 trunk, normalised taps, per-task skip fusion,
tied-weight image pyramid and the detection branch; ``attentive`` -- attentive single-tasking
(Maninis et al., CVPR 2019) on the same trunk: task-conditioned SE gates, residual adapters and
the adversarial task discriminator."""

from .attentive import (
    AttentiveUberNet,
    GradientReversal,
    TaskDiscriminator,
    TaskSE,
    flops_per_image,
    normalise_gradient,
    reverse_gradient,
)
from .detection import DetectionBranch
from .pyramid import ScaleFusion, image_pyramid, min_input_size
from .skip import SkipFusion, TapNorms
from .ubernet import PyramidFeatures, TaskOutputs, UberNet
from .vgg import TAP_NAMES, VGGTrunk, imagenet_state_dict, load_vgg16_weights

__all__ = [
    "TAP_NAMES",
    "AttentiveUberNet",
    "DetectionBranch",
    "GradientReversal",
    "PyramidFeatures",
    "ScaleFusion",
    "SkipFusion",
    "TapNorms",
    "TaskDiscriminator",
    "TaskOutputs",
    "TaskSE",
    "UberNet",
    "VGGTrunk",
    "flops_per_image",
    "image_pyramid",
    "imagenet_state_dict",
    "load_vgg16_weights",
    "min_input_size",
    "normalise_gradient",
    "reverse_gradient",
]
