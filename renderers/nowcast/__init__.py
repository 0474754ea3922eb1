"""Radar nowcast: motion estimation (``motion``) and extrapolation (``advection``)."""

from renderers.nowcast.motion import METHODS, estimate_motion, get_method

__all__ = ["METHODS", "estimate_motion", "get_method"]
