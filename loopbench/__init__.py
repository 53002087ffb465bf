"""loopbench: the instrument. It knows tasks only through the `implementations` registry."""

__version__ = "0.1.0"
