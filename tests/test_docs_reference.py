"""The reference parts of the docs agree with the code and render as written.

Guards what a newcomer tripped over: a table with a paragraph inside it (it renders as two
tables and a stray line), the options table without an option, a state list without a state,
an exception attribute documented that does not exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from steep import JobFailed, JobStatus
from steep.options import _CORE_FIELDS
from tests.docs_samples import PAGES

_FENCE = re.compile(r"^\s*```")


def _lines_outside_code(page: Path) -> list[tuple[int, str]]:
    inside, out = False, []
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if _FENCE.match(line):
            inside = not inside
        elif not inside:
            out.append((number, line))
    return out


def _table_rows(line: str) -> int:
    body = line.strip().strip("|")
    return len(re.split(r"(?<!\\)\|", re.sub(r"`[^`]*`", "x", body)))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_table_is_one_block_with_a_header_and_equal_rows(page: Path) -> None:
    lines = _lines_outside_code(page)
    problems = []
    i = 0
    while i < len(lines):
        number, line = lines[i]
        if not line.lstrip().startswith("|"):
            i += 1
            continue
        block = []
        while i < len(lines) and lines[i][1].lstrip().startswith("|"):
            block.append(lines[i])
            i += 1
        if len(block) < 2 or not re.fullmatch(r"\s*\|(\s*:?-+:?\s*\|)+\s*", block[1][1]):
            problems.append(f"{page.name}:{number}: table rows without a header line above")
            continue
        width = _table_rows(block[0][1])
        for row_number, row in block[2:]:
            if _table_rows(row) != width:
                problems.append(f"{page.name}:{row_number}: {_table_rows(row)} cells, not {width}")
    assert not problems, "\n".join(problems)


def test_the_options_table_names_every_option() -> None:
    table = Path(PAGES[0]).parent / "jobs.md"
    named = set(re.findall(r"^\| `(\w+)` \|", table.read_text(), re.M))
    core = set(_CORE_FIELDS)
    assert "tags" in core
    missing = core - named
    assert not missing, f"docs/jobs.md's options table lacks {sorted(missing)}"


@pytest.mark.parametrize("name", ["operations.md", "protocol.md"])
def test_the_state_lists_name_every_state(name: str) -> None:
    text = (Path(PAGES[0]).parent / name).read_text()
    states = {s.value for s in JobStatus} - {"queued"}  # queued: the state of having no entry
    missing = [s for s in sorted(states) if f"`{s}`" not in text]
    assert not missing, f"docs/{name} does not name the states {missing}"


def test_job_failed_has_the_attributes_the_docs_give_it() -> None:
    error = {"type": "builtins.ValueError", "message": "on purpose", "traceback": "…"}
    failed = JobFailed("j1", {**error, "reason": "UnknownJob"})
    assert (failed.job_id, failed.type, failed.message, failed.reason) == (
        "j1",
        "builtins.ValueError",
        "on purpose",
        "UnknownJob",
    )
    assert JobFailed("j2", error).reason == ""  # the job's own code raised
    text = (Path(PAGES[0]).parent / "jobs.md").read_text()
    documented = re.search(r"`steep\.JobFailed` \(with ([^)]*)\)", text)
    assert documented, "docs/jobs.md no longer lists JobFailed's attributes"
    attributes = re.findall(r"`\.(\w+)`", documented.group(1))
    assert "reason" in attributes
    for attribute in attributes:
        assert hasattr(failed, attribute), f"docs/jobs.md documents JobFailed.{attribute}"


# the pages that explain the machinery; every other page is a user's and names no script or key
MACHINERY = {"internals.md", "protocol.md", "benchmark-method.md", "benchmarks.md"}
_INNARDS = re.compile(r"\w+\.lua\b|<ns>:|<namespace>:|\bsteep:\{")


@pytest.mark.parametrize(
    "page", [p for p in PAGES if p.name not in MACHINERY], ids=lambda p: p.name
)
def test_user_pages_name_no_lua_script_or_key_layout(page: Path) -> None:
    found = [
        f"{page.name}:{n}: {m.group(0)}"
        for n, line in enumerate(page.read_text().splitlines(), 1)
        for m in [_INNARDS.search(line)]
        if m
    ]
    assert not found, "belongs in internals.md or protocol.md:\n" + "\n".join(found)
