"""mixkit: mixed-sample learning for PyTorch."""

from mixkit.augment.compile import compile

__version__ = "0.1.0"
__all__ = ["compile"]
