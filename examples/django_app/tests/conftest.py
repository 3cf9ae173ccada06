"""Django set up for the shop's tests before they are collected, on a fresh sqlite file
(pytest-django does this too, if you use it)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_DB_DIR = Path(tempfile.mkdtemp(prefix="shop-tests-"))


def pytest_configure(config: pytest.Config) -> None:
    import django

    os.environ["SHOP_DB"] = str(_DB_DIR / "shop.sqlite3")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_DB_DIR, ignore_errors=True)
