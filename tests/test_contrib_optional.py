"""A contrib module whose package is missing says what to install."""

from __future__ import annotations

import importlib
import sys

import pytest

from steep import middleware
from steep.settings import configure


@pytest.mark.parametrize(
    ("module", "package", "extra"),
    [
        ("steep.contrib.sentry", "sentry_sdk", "sentry"),
        ("steep.contrib.opentelemetry", "opentelemetry", "opentelemetry"),
        ("steep.contrib.flask", "flask", "flask"),
        ("steep.contrib.django", "django", "django"),
    ],
)
def test_missing_package_names_the_extra(monkeypatch, module, package, extra):
    for name in [n for n in sys.modules if n == module or n.startswith(f"{module}.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)  # what an uninstalled package looks like
    monkeypatch.setitem(sys.modules, f"{package}.trace", None)
    with pytest.raises(ImportError, match=rf"pip install 'steep\[{extra}\]'"):
        importlib.import_module(module)


def test_a_settings_named_middleware_passes_the_hint_on(monkeypatch, settings):
    monkeypatch.delitem(sys.modules, "steep.contrib.sentry", raising=False)
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)
    configure(middleware=["steep.contrib.sentry:SentryMiddleware"])
    with pytest.raises(
        ImportError, match=r"cannot load middleware .*pip install 'steep\[sentry\]'"
    ):
        middleware.chains()
