"""One embedded server per project: every process of a project finds the same one, wherever
in the project it starts; two projects never share one; a second server for a project that
already runs one is announced."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from steep.server import ensure_server
from steep.settings import Settings, load_settings, project_root
from tests.conftest import ROOT
from tests.test_server import root, servers_under  # noqa: F401  (the fixture)

NO_URL = {k: v for k, v in os.environ.items() if not k.startswith("STEEP_")}


def make_project(base: Path, name: str, marker: str = "pyproject.toml") -> Path:
    project = base / name
    (project / "web" / "views").mkdir(parents=True)
    (project / "jobs").mkdir()
    (project / marker).write_text('[project]\nname = "x"\n' if marker == "pyproject.toml" else "")
    return project


def test_the_data_dir_sits_beside_the_nearest_project_file(tmp_path: Path) -> None:
    shop = make_project(tmp_path, "shop")
    blog = make_project(tmp_path, "blog", marker="steep.toml")
    (blog / "steep.toml").write_text('namespace = "blog"\n')
    for where in (shop, shop / "web", shop / "web" / "views", shop / "jobs"):
        assert load_settings(cwd=where, environ={}).data_dir == shop / ".steep"
    # steep.toml is read from the project's top too, wherever the process starts
    deep = load_settings(cwd=blog / "web" / "views", environ={})
    assert deep.data_dir == blog / ".steep" and deep.namespace == "blog"
    assert project_root(blog / "jobs") == blog and project_root(shop / "web") == shop
    # outside any project: the current directory, as before
    loose = tmp_path / "loose"
    loose.mkdir()
    if project_root(loose) is None:
        assert load_settings(cwd=loose, environ={}).data_dir == loose / ".steep"
    # STEEP_DATA_DIR stays relative to where the process starts
    env = {"STEEP_DATA_DIR": "var"}
    assert load_settings(cwd=shop / "web", environ=env).data_dir == shop / "web" / "var"


CHILD = """
import sys
from steep.connection import get_client
from steep.settings import get_settings
client = get_client()
if sys.argv[1] == "set":
    client.set("handed-over", "from " + sys.argv[2])
value = client.get("handed-over")
print(get_settings().data_dir, value and value.decode())
"""


def run_in(directory: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        cwd=directory,
        env={**NO_URL, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_processes_started_anywhere_in_a_project_share_its_server(root: Path) -> None:  # noqa: F811
    shop = make_project(root, "shop")
    blog = make_project(root, "blog")
    # the web app starts in web/views, the worker in jobs/: one server, one set of data
    assert run_in(shop / "web" / "views", "set", "web") == f"{shop / '.steep'} from web"
    assert run_in(shop / "jobs", "get") == f"{shop / '.steep'} from web"
    # another project never sees it
    assert run_in(blog / "jobs", "get") == f"{blog / '.steep'} None"
    assert len(servers_under(shop)) == 1 and len(servers_under(blog)) == 1


def test_a_second_server_for_a_running_project_is_announced(
    root: Path,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    shop = make_project(root, "shop")
    blog = make_project(root, "blog")
    with caplog.at_level(logging.WARNING, logger="steep.server"):
        ensure_server(Settings(data_dir=shop / "web" / ".steep"))  # started from web/ once
        ensure_server(Settings(data_dir=blog / ".steep"))  # another project: nothing to say
        assert not [r for r in caplog.records if "second embedded server" in r.message]
        ensure_server(Settings(data_dir=shop / ".steep"))
    said = [r.getMessage() for r in caplog.records if "second embedded server" in r.message]
    assert len(said) == 1, caplog.text
    assert str(shop / "web" / ".steep") in said[0] and str(shop / ".steep") in said[0]
    assert "same data_dir" in said[0]
