"""The synthetic world: scenes (scene.py), their ray casting (render.py), fully labelled samples
(world.py), and the views of it with the labels of the paper's data sets and their union
(views.py)."""

from .views import DEFAULT_TABLE, UnionMember, diverse_union
from .world import SynthWorld

__all__ = ["SynthWorld", "UnionMember", "DEFAULT_TABLE", "diverse_union"]
