"""trainmon: watch model training live, in a terminal dashboard fed over ZeroMQ."""

__all__ = ["__version__"]

__version__ = "0.1.0"
