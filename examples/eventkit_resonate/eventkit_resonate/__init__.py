"""Example third-party eventkit plugin: a resonate-and-fire neuron model."""

from .model import ResonateAndFire

__all__ = ["ResonateAndFire"]
