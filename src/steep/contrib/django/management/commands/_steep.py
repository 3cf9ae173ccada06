"""Running a steep CLI command from a Django management command."""

from __future__ import annotations

import click


def run_steep(argv: list[str], prog_name: str) -> None:
    """Run `steep ARGV` in this process (Django set up, settings.STEEP applied)."""
    from steep.cli import main

    try:
        main.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Abort:
        raise SystemExit(1) from None
