"""The UberNet network (Sec. 2): atrous VGG-16 trunk, normalised taps, per-task skip fusion,
tied-weight image pyramid and the detection branch."""

from .detection import DetectionBranch
from .pyramid import ScaleFusion, image_pyramid, min_input_size
from .skip import SkipFusion, TapNorms
from .ubernet import PyramidFeatures, TaskOutputs, UberNet
from .vgg import TAP_NAMES, VGGTrunk, imagenet_state_dict, load_vgg16_weights

__all__ = [
    "TAP_NAMES",
    "DetectionBranch",
    "PyramidFeatures",
    "ScaleFusion",
    "SkipFusion",
    "TapNorms",
    "TaskOutputs",
    "UberNet",
    "VGGTrunk",
    "image_pyramid",
    "imagenet_state_dict",
    "load_vgg16_weights",
    "min_input_size",
]
