"""Jobs for the batches example (docs/batches.md walks through them)."""

from __future__ import annotations

from typing import Any

from steep import job


@job(queue="default", retries=3)
def import_row(row: int) -> int:
    return row * 10


@job(queue="default", result_ttl=300)
def summarize(status: dict[str, Any]) -> str:
    """on_complete: gets the batch's status as its first argument."""
    return (
        f"{status['description']}: {status['succeeded']} of {status['total']} succeeded, "
        f"{status['failed']} dead"
    )


@job(queue="default")
def fetch(url: str) -> str:
    return f"<p>hello from {url}</p>"


@job(queue="default")
def strip_tags(html: str) -> str:
    return html.removeprefix("<p>").removesuffix("</p>")


@job(queue="default")
def shout(text: str, suffix: str = "!") -> str:
    return text.upper() + suffix


@job(queue="default")
def word_count(text: str) -> int:
    return len(text.split())


@job(queue="default", result_ttl=300)
def total(counts: list[int]) -> str:
    """A group's callback: gets the members' results, in the group's order."""
    return f"{counts} -> {sum(counts)} words"
