"""`manage.py steep_worker`: steep's worker, with Django set up in every worker process."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from steep.contrib.django.apps import job_modules
from steep.contrib.django.management.commands._steep import run_steep


class Command(BaseCommand):
    help = (
        "Run steep worker processes for this project's jobs: every installed app's jobs "
        "module (or settings.STEEP_JOB_MODULES), or the MODULES given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("modules", nargs="*", help="job modules (default: discovered)")
        parser.add_argument("-q", "--queues", help="queues in priority order, or a:5,b:2")
        parser.add_argument("-p", "--processes", type=int, help="worker processes")
        parser.add_argument("-c", "--concurrency", type=int, help="jobs at once per process")
        parser.add_argument("--max-memory", type=float, metavar="MB", help="recycle above this")
        parser.add_argument("--burst", action="store_true", help="exit once the queues are empty")

    def handle(self, *args: Any, **options: Any) -> None:
        modules = list(options["modules"]) or job_modules()
        if not modules:
            raise CommandError(
                "no job modules: add a jobs.py to an installed app, set STEEP_JOB_MODULES, "
                "or name the modules (manage.py steep_worker shop.jobs)"
            )
        argv = ["worker", "steep.contrib.django.boot", *modules]
        for flag in ("queues", "processes", "concurrency", "max_memory"):
            if options[flag] is not None:
                argv += [f"--{flag.replace('_', '-')}", str(options[flag])]
        if options["burst"]:
            argv.append("--burst")
        _project_on_path()
        run_steep(argv, prog_name="manage.py steep_worker")


def _project_on_path() -> None:
    """Let worker processes import the project wherever manage.py was started from."""
    module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    top = module.partition(".")[0]
    origin = getattr(importlib.import_module(top), "__file__", None) if top else None
    if origin is None:
        return
    root = str(Path(origin).resolve().parent.parent)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])
