"""The synthetic world: scenes (scene.py), their ray casting (render.py), samples (world.py)."""

from .world import SynthWorld

__all__ = ["SynthWorld"]
