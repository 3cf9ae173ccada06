"""Every Python sample in the docs parses and names nothing it does not define or import; the
samples of the pages that stand alone run.

A page whose samples use the reader's own functions (`fetch`, `send_report` from the jobs
page) says so at its top, `<!-- samples assume: fetch, send_report -->`; a module can never be
assumed, so a sample that forgets an import (`os`, `contextlib`, `FastAPI`) fails here.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tests.docs_samples import PAGES, module, samples

_ASSUME = re.compile(r"<!-- samples assume: ([^>]*) -->")


def assumed(page: Path) -> list[str]:
    found = _ASSUME.search(page.read_text())
    return [n.strip() for n in found.group(1).split(",")] if found else []


WITH_SAMPLES = [p for p in PAGES if samples(p)]


@pytest.mark.parametrize("page", WITH_SAMPLES, ids=lambda p: p.name)
def test_every_sample_parses(page: Path) -> None:
    for i, block in enumerate(samples(page)):
        try:
            compile(block, f"{page.name} sample {i + 1}", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError as exc:
            pytest.fail(f"{page.name}, sample {i + 1}: {exc}")


def test_no_sample_uses_a_name_it_does_not_define_or_import(tmp_path: Path) -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    for page in WITH_SAMPLES:
        names = assumed(page)
        modules = [n for n in names if importlib.util.find_spec(n.split(".")[0]) is not None]
        assert not modules, f"{page.name} assumes modules {modules}: import them in the sample"
        prelude = "".join(f"{name} = ...  # assumed by the page\n" for name in names)
        (tmp_path / f"{page.stem}.py").write_text(prelude + module(page))
    done = subprocess.run(
        [ruff, "check", "--isolated", "--select", "F821", "--output-format", "concise", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, "samples using undefined names:\n" + done.stdout


# pages whose samples are complete programs: they run here, against the test server (the
# others need an application of their own, a worker, top-level await or another server)
RUNNABLE = [
    "index.md",
    "configuration.md",
    "dashboard.md",
    "failures.md",
    "iterable.md",
    "logging.md",
    "operations.md",
    "priority.md",
    "progress.md",
    "testing.md",
    "workers.md",
]


@pytest.mark.parametrize("name", RUNNABLE)
def test_the_samples_of_standalone_pages_run(name: str, client) -> None:
    page = next(p for p in PAGES if p.name == name)
    code = compile(module(page), name, "exec", dont_inherit=True)  # not this file's __future__
    # a module of its own, as a reader's file would be (dataclasses look theirs up)
    sample = types.ModuleType(f"docs_{page.stem}")
    sys.modules[sample.__name__] = sample
    try:
        exec(code, sample.__dict__)
    finally:
        del sys.modules[sample.__name__]
