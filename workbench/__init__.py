"""Geo Workbench: geographic contrastive learning and image geolocation."""

__version__ = "0.1.0"
