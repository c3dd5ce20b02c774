"""clever-relay: Clever Events API v3 into Redis streams, translated back to the v2 topics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clever-relay")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
