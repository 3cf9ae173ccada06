"""Import of a contrib module's third-party dependency, with an error that says what to install."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import `module`, or raise an ImportError naming the steep extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{feature} needs the {module.partition('.')[0]!r} package, which is not installed: "
            f"pip install 'steep[{extra}]'"
        ) from exc
