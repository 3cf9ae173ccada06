"""`manage.py steep ...`: any steep command (status, jobs, queues, dead, web...) with the
project's settings."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand

from steep.contrib.django.management.commands._steep import run_steep


class Command(BaseCommand):
    help = "Run a steep command with this project's settings, e.g. `manage.py steep status`."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("steep_args", nargs=argparse.REMAINDER, help="steep's arguments")

    def run_from_argv(self, argv: list[str]) -> None:
        # steep parses its own options (and --help): Django's parser would reject them
        run_steep(argv[2:], prog_name=f"{argv[0]} steep")

    def handle(self, *args: Any, **options: Any) -> None:
        run_steep(list(options["steep_args"]), prog_name="steep")
