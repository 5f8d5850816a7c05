"""An asynchronous IVR softswitch for recorded calls that respects callers' privacy."""

from __future__ import annotations

__version__ = "0.1.0"
