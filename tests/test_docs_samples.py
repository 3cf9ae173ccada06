"""Every Python sample in the docs parses, names nothing it does not define or import, and runs.

A page whose samples use the reader's own functions (`fetch`, `send_report` from the jobs
page) says so at its top, `<!-- samples assume: fetch, send_report -->`; a module can never be
assumed, so a sample that forgets an import (`os`, `contextlib`, `FastAPI`) fails here. Each
page's samples then run as one module against the test server, with small real stand-ins for
the reader's code (STANDINS), a real worker beside them where they wait for results, a sample
headed `# app/jobs.py` written as that file and a `# tests/test_*.py` one run by pytest; the
few pages that cannot run here say why (NOT_RUN).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.util
import inspect
import re
import shutil
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from steep import connection, middleware
from steep.connection import get_keys
from steep.features.cron import entry as cron
from steep.settings import configure, get_settings
from tests.conftest import wait_for
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
        # F405 too: after a star import, ruff reports an undefined name as F405, not F821
        [ruff, "check", "--isolated", "--select", "F821,F405", "--output-format", "concise", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, "samples using undefined names:\n" + done.stdout


# The reader's own code that a page's samples use (its `samples assume` names, the modules it
# imports from) gets a small real stand-in here, so that the page's own lines run; jobs of
# the stand-ins run on a real worker beside the samples (pages in WITH_WORKER).
STANDINS: dict[str, str] = {
    "batches.md": """
from steep import job

rows = [{"id": 1}, {"id": 2}]
texts = ["a b c", "d", "e f g h i j k"]


def fetch_links(url: str) -> list[str]:
    return []


@job(result_ttl=60)
def fetch(url: str) -> str:
    return f"<p>{url}</p>"


@job(result_ttl=60)
def strip_tags(html: str) -> str:
    return html.removeprefix("<p>").removesuffix("</p>")


@job(result_ttl=60)
def shout(text: str, suffix: str = "") -> str:
    return text.upper() + suffix


@job(result_ttl=60)
def word_count(text: str) -> int:
    return len(text.split())


@job(result_ttl=60)
def total(counts: list[int]) -> int:
    return sum(counts)
""",
    "limits.md": """
from steep import job


@job
def send_report(user_id: int) -> None: ...


def refresh_token() -> str:
    return "token"


async def export_everything() -> None: ...
""",
    "scheduling.md": """
from steep import job


@job
def send_report(user_id: int) -> str:
    return f"report for user {user_id}"
""",
    "unique.md": """
from steep import job


@job
def send_report(user_id: int) -> str:
    return f"report for user {user_id}"
""",
    "middleware.md": """
import types

import steep
import uuid

request = types.SimpleNamespace(headers={"X-Request-Id": "req-1"})
order = types.SimpleNamespace(id=7, total=12.5)


def new_id() -> str:
    return uuid.uuid4().hex


@steep.job
def send_invoice(order_id: int) -> None: ...
""",
}
# modules a page imports that are the reader's (`from app.jobs import ...`): made for the run,
# each name a job that returns its first argument
READER_MODULES: dict[str, dict[str, list[str]]] = {
    "batches.md": {"app.jobs": ["import_row", "notify", "summarize"]},
}
# pages that wait for results: a real worker runs beside their samples
WITH_WORKER = {"batches.md", "cron.md", "expiry.md", "jobs.md", "README.md", "tutorial.md"}
# samples that cannot run here, with the reason the page could not give them a stand-in
NOT_RUN: dict[str, str] = {
    "deploy.md": "its sample decides on deploys waiting for approval, which only a pipeline run "
    "makes; tests/test_pipeline_approvals.py makes one and makes these calls on it",
    "environments.md": "its samples are lines of an app's own settings modules (Django, Flask, "
    "pydantic-settings) choosing them by STEEP_ENV; nothing of steep runs in them",
    "integrations.md": "each sample is a file of a Django, Flask or FastAPI project: the same "
    "code runs as examples/django_app, flask_app and fastapi_app in tests/test_example_*.py",
    "mail.md": "its samples send through an SMTP server with a Django or Flask app around them; "
    "tests/test_mail.py and the example apps' tests send them through a real one",
}
QUEUES = ("critical", "default", "mail", "reports")  # the docs' worker's
# pages whose samples leave a job dead on purpose
DEAD_ON_PURPOSE = {"expiry.md"}

_FILE_HEADER = re.compile(r"^# ([\w/]+)\.py\n")


def _reader_module(tmp: Path, name: str, jobs: list[str]) -> None:
    path = tmp.joinpath(*name.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.relative_to(tmp).parents:
        (tmp / parent / "__init__.py").touch()
    body = ["from steep import job", ""]
    for job_name in jobs:
        body += [
            "",
            "@job(result_ttl=60)",
            f"def {job_name}(*args, **kwargs):",
            "    return args[0] if args else None",
            "",
        ]
    path.write_text("\n".join(body))


@contextlib.contextmanager
def _worker_beside() -> Iterator[None]:
    from steep import ops
    from steep.worker import WorkerProcess, parse_queues

    worker = WorkerProcess(parse_queues(",".join(QUEUES)), 10, install_signals=False)
    thread = threading.Thread(target=worker.run, name="docs-worker", daemon=True)
    thread.start()
    wait_for(lambda: hasattr(worker, "heartbeat"), message="the docs' worker to start")
    crons = {e.name for e in cron.entries(get_settings())}
    wait_for(  # the cron entries of the modules imported before it started are published
        lambda: crons <= {e.name for e in ops.cron_entries()}, message="cron entries published"
    )
    try:
        yield
    finally:
        worker.threadsafe(worker.request_stop, "the page ran")
        thread.join(30)
        assert not thread.is_alive(), "the docs' worker did not stop"


def _run_page(page: Path, tmp: Path) -> None:
    """The page's samples as one module; a sample headed `# pkg/name.py` is that file,
    written for the others to import."""
    for module_name, jobs in READER_MODULES.get(page.name, {}).items():
        _reader_module(tmp, module_name, jobs)
    body: list[str] = []
    files: list[str] = []
    for block in samples(page):
        header = _FILE_HEADER.match(block)
        if header and header.group(1) != "settings":
            path = tmp / f"{header.group(1)}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            for parent in path.relative_to(tmp).parents:
                (tmp / parent / "__init__.py").touch()
            path.write_text(block)
            files.append(header.group(1).replace("/", "."))
        else:
            body.append(block)
    source = STANDINS.get(page.name, "") + "\n\n" + "\n\n".join(body)
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    code = compile(source, page.name, "exec", flags=flags, dont_inherit=True)
    sample = types.ModuleType(f"docs_{page.stem.replace('-', '_')}")
    sys.modules[sample.__name__] = sample
    sys.path.insert(0, str(tmp))
    before = set(sys.modules)
    crons = set(cron._DECORATED)
    added = list(middleware._added)
    try:
        for name in files:  # imported before the worker starts, as a worker imports them
            if name.rsplit(".", 1)[-1].startswith("test_"):
                continue
            imported = importlib.import_module(name)
            # later samples use what the file defines, as the page reads
            sample.__dict__.update(
                (k, v) for k, v in vars(imported).items() if not k.startswith("_")
            )
        with _worker_beside() if page.name in WITH_WORKER else contextlib.nullcontext():
            if code.co_flags & inspect.CO_COROUTINE:
                asyncio.run(_awaited(eval(code, sample.__dict__)))
            else:
                exec(code, sample.__dict__)
            if page.name in WITH_WORKER and page.name not in DEAD_ON_PURPOSE:
                dead = sum(connection.get_client().zcard(get_keys().queue(q).dead) for q in QUEUES)
                assert dead == 0, f"{page.name}'s samples left {dead} job(s) dead"
        for name in files:  # a test file of the page runs as its reader would run it
            if name.rsplit(".", 1)[-1].startswith("test_"):
                _pytest(tmp, name.replace(".", "/") + ".py")
    finally:
        sys.path.remove(str(tmp))
        del sys.modules[sample.__name__]
        for name in set(cron._DECORATED) - crons:
            cron.unregister(name)
        middleware.clear()  # what a page added (steep.middleware.add) is the page's only
        middleware.add(*added)
        for name in set(sys.modules) - before:  # the reader's modules made for this page
            if name.split(".")[0] in {f.split(".")[0] for f in files} | {
                m.split(".")[0] for m in READER_MODULES.get(page.name, {})
            }:
                del sys.modules[name]


async def _awaited(main: Any) -> None:
    try:
        await main
    finally:
        await connection.close_async_client()


def _pytest(tmp: Path, path: str) -> None:
    # the reader's test file, with steep's pytest plugin and its private server
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "PYTHONPATH": str(tmp)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", ".", path],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "failed" not in done.stdout, done.stdout


TO_RUN = [p for p in WITH_SAMPLES if p.name not in NOT_RUN]


@pytest.mark.parametrize("page", TO_RUN, ids=lambda p: p.name)
def test_the_samples_of_every_page_run(page: Path, client, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SENTRY_DSN", "")  # Sentry's client, set up with nowhere to send
    previous = get_settings()
    try:
        _run_page(page, tmp_path)
    finally:
        configure(previous)
        if page.name == "middleware.md":
            import sentry_sdk

            sentry_sdk.get_client().close()
            sentry_sdk.get_global_scope().set_client(None)


def test_pages_not_run_say_why() -> None:
    for name, reason in NOT_RUN.items():
        assert any(p.name == name for p in WITH_SAMPLES), f"{name} has no samples any more"
        assert len(reason) > 20, f"{name}: say why its samples cannot run here"
