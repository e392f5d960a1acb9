"""The Speech-FT benchmark harness: fine-tune, merge and evaluate self-supervised speech models."""

from harness.core.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
