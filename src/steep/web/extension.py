"""The dashboard's extension point: pages that an application of steep adds to it
(the delivery pipeline adds its own), with their own routes, templates, entries in
the navigation and panels on the overview. They get the dashboard's security (its
credentials, CSRF protection, read-only mode) and its look."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute


@dataclass(frozen=True, slots=True)
class Panel:
    """A block on the overview page: a template and what it needs to render."""

    template: str
    context: Callable[[], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Extension:
    routes: Sequence[BaseRoute]
    nav: Sequence[tuple[str, str, str]] = ()  # (page key, path, label)
    templates: Path | None = None
    panels: Sequence[Panel] = field(default_factory=tuple)
