"""Async client for the codecell HTTP API (``codecell serve``)."""
from .client import CodecellClient, CodecellError

__all__ = ["CodecellClient", "CodecellError"]
__version__ = "0.2.0"
