"""The layers of the house and the direction of their imports (docs/internals.md).

Read from the source with `ast`, so every import counts: at module level, inside
functions, and under `if TYPE_CHECKING:`. The layers, and what each may import:

    core      steep/*.py (job, options, registry, client, connection, keys, lane,
              scripts, settings, server, hooks, context, middleware, ...): only the core
    features  steep/features/: the core, and other features
    worker    steep/worker/: the core
    ops       steep/ops/: the core and the features
    web       steep/web/: ops, the core and the features
    cli       steep/cli/: everything but contrib
    contrib   steep/contrib/: the core, ops, web, cli
    api       steep/__init__.py: the core and the features (the facade); `python -m steep`
              (__main__.py) belongs to the cli
    staging   steep/mail/, steep/data/: the staging toolkit, on the core only
    pipeline  steep/pipeline/: an application of steep: its public API (the facade and
              the core), ops, and the dashboard's extension point (web)
    testing   steep/testing/: the core, the features, the worker, ops (what a test of an
              application needs: jobs run in its process)

Nothing in the core imports a feature, the worker, ops, web or the CLI, so the core
runs jobs with no feature registered (tests/test_core_alone.py shows it does).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "steep"

ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "features": {"core", "features"},
    "worker": {"core", "worker"},
    "ops": {"core", "features", "ops"},
    "web": {"core", "features", "ops", "web"},
    "cli": {"core", "features", "worker", "ops", "web", "cli", "api", "pipeline", "staging"},
    "contrib": {"core", "features", "ops", "web", "cli", "contrib", "api", "staging"},
    "api": {"core", "features", "api", "staging"},
    # the staging toolkit (steep/mail, steep/data): the core's clients, like any app
    "staging": {"core", "staging"},
    "pipeline": {"core", "features", "ops", "web", "api", "pipeline"},
    "testing": {"core", "features", "worker", "ops", "testing", "api"},
}
LAYER_DIRS = ("features", "worker", "ops", "web", "cli", "contrib", "pipeline", "testing")
STAGING_DIRS = ("mail", "data")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "api"
    if parts[1] == "__main__":
        return "cli"
    if parts[1] in LAYER_DIRS:
        return parts[1]
    if parts[1] in STAGING_DIRS:
        return "staging"
    return "core"


def _exists(module: str) -> bool:
    path = SRC.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every steep module `path` imports, anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "steep"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "steep":
                continue
            # `from steep.x import y`: y may be a submodule (its own layer) or a name
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if _exists(sub) else target))
    return found


def all_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_import_points_down_the_layers() -> None:
    wrong = []
    for path in all_modules():
        me = module_name(path)
        mine = layer_of(me)
        for line, target in imports_of(path):
            theirs = layer_of(target)
            if theirs not in ALLOWED[mine] and theirs != mine:
                wrong.append(f"{path.relative_to(SRC)}:{line}: {mine} imports {theirs} ({target})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_layer_rule_itself_has_no_circle() -> None:
    # a directed graph of the layers: following "may import" never comes back
    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt}))
            for nxt in ALLOWED[start] - {start}
        )

    for layer in ALLOWED:
        assert not reaches(layer, layer), f"the layer rule lets {layer} import itself back"


@pytest.mark.parametrize("layer", ["core", "worker"])
def test_no_module_of_a_lower_layer_knows_a_feature(layer: str) -> None:
    knows = [
        f"{path.relative_to(SRC)}:{line} imports {target}"
        for path in all_modules()
        if layer_of(module_name(path)) == layer
        for line, target in imports_of(path)
        if layer_of(target) == "features"
    ]
    assert not knows, "\n".join(knows)


def test_no_circle_among_module_level_imports_of_the_core_and_the_worker() -> None:
    """`import steep.worker` works without leaning on imports inside functions."""
    graph: dict[str, set[str]] = {}
    for path in all_modules():
        me = module_name(path)
        if layer_of(me) not in ("core", "worker"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {n.lineno for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)}
        graph[me] = {
            t
            for line, t in imports_of(path)
            if line in top and layer_of(t) in ("core", "worker") and t != me
        }
    state: dict[str, int] = {}
    path_stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path_stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path_stack[path_stack.index(nxt) :], nxt]
            if nxt not in state and (circle := visit(nxt)):
                return circle
        path_stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (circle := visit(node)):
            pytest.fail("import circle: " + " -> ".join(circle))


def test_modules_stay_small() -> None:
    big = [
        f"{path.relative_to(SRC)}: {n} lines"
        for path in all_modules()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 450
    ]
    assert not big, "modules over 450 lines (one concept per module):\n" + "\n".join(big)
