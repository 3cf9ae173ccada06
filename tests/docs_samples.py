"""The Python samples of the docs, extracted per page (tests/test_docs_samples.py)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
_BLOCK = re.compile(r"^([ \t]*)```python\n(.*?)^\1```", re.S | re.M)


def samples(page: Path) -> list[str]:
    """The page's ```python blocks, in order, each dedented (a block inside a list item is
    indented with it)."""
    return [textwrap.dedent(body) for _, body in _BLOCK.findall(page.read_text())]


def module(page: Path) -> str:
    """The page's samples as one module: later samples use what earlier ones defined."""
    return "\n\n".join(samples(page))
