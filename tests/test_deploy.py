"""The deployment recipes of examples/deploy: what can run here runs.

systemd, Docker and Kubernetes themselves do not run in the test suite; their files are
checked where they meet steep (the unit files by `systemd-analyze verify` when the machine
has it, the grace periods against steep's shutdown_timeout, every steep command line parsed
by steep's own CLI), and the liveness probe, `steep workers --check`, runs for real.
"""

from __future__ import annotations

import configparser
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from steep.cli import main
from steep.settings import Settings
from tests.conftest import ROOT

DEPLOY = ROOT / "examples" / "deploy"
SHUTDOWN_TIMEOUT = Settings().shutdown_timeout


def parses(argv: list[str]) -> None:
    """Fail unless `steep ARGV` is a valid command line (parsed by the CLI, not run)."""
    assert argv[0] == "steep", argv
    args = argv[1:]
    while args[0] in ("--log-level", "--log-format"):  # the group's own options
        args = args[2:]
    name, rest = args[0], args[1:]
    ctx = main.make_context("steep", argv[1:])
    command = main.get_command(ctx, name)
    assert command is not None, f"no steep command {name!r}"
    command.make_context(name, rest, parent=ctx)  # raises on an unknown option or value


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / name)
    return parser


@pytest.mark.parametrize("name", ["steep-worker.service", "steep-web.service"])
def test_systemd_units_are_valid_and_run_steep(name: str, tmp_path: Path) -> None:
    service = unit(name)["Service"]
    parses(shlex.split(service["ExecStart"].replace("/srv/app/.venv/bin/steep", "steep")))
    assert service["Restart"] == "always"
    if name == "steep-worker.service":
        # systemd must wait longer than the worker does before its SIGKILL, and signal only
        # the supervisor (which forwards one SIGTERM to each worker process)
        assert float(service["TimeoutStopSec"]) > SHUTDOWN_TIMEOUT
        assert service["KillMode"] == "mixed" and service["KillSignal"] == "SIGTERM"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    # verify on a copy pointing at this machine's steep, directory and user
    text = (DEPLOY / "systemd" / name).read_text()
    text = text.replace("/srv/app/.venv/bin/steep", str(Path(sys.executable).parent / "steep"))
    text = text.replace("/srv/app", str(tmp_path)).replace("=app", "=root")
    (tmp_path / name).write_text(text)
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / name)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def test_compose_file_keeps_jobs_safe_and_runs_steep_commands() -> None:
    services = compose()["services"]
    valkey = " ".join(services["valkey"]["command"])
    assert "--appendonly yes" in valkey and "--maxmemory-policy noeviction" in valkey
    assert any(v.endswith(":/data") for v in services["valkey"]["volumes"])
    assert "valkey-data" in compose()["volumes"]
    worker = services["worker"]
    assert float(worker["stop_grace_period"].rstrip("s")) > SHUTDOWN_TIMEOUT
    assert worker["environment"]["STEEP_REDIS_URL"].startswith("redis://valkey:6379")
    for name in ("worker", "web"):
        parses(services[name]["command"])
    parses(worker["healthcheck"]["test"][1:])


def test_kubernetes_worker_has_a_grace_period_and_a_heartbeat_probe() -> None:
    deployment = yaml.safe_load((DEPLOY / "kubernetes" / "worker.yaml").read_text())
    spec = deployment["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > SHUTDOWN_TIMEOUT
    [container] = spec["containers"]
    parses(container["command"])
    probe = container["livenessProbe"]["exec"]["command"]
    assert probe == ["steep", "workers", "--check"]
    parses(probe)


def test_a_wrong_command_line_does_not_parse() -> None:
    with pytest.raises(click.UsageError):
        parses(["steep", "worker", "app.jobs", "--concurency", "4"])
    with pytest.raises(click.BadParameter):
        parses(["steep", "worker", "app.jobs", "-p", "many"])


def test_procfile_commands_parse() -> None:
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        kind, _, command = line.partition(":")
        argv = shlex.split(command.replace("$PORT", "5000"))
        if argv[0] == "steep":
            parses(argv)
        else:
            assert kind == "web" and argv[0] == "gunicorn"


def test_the_liveness_probe_answers_from_the_heartbeat(client, run_worker) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["workers", "--check"])
    assert result.exit_code == 1 and result.output.startswith("unhealthy: 0 live worker"), (
        result.output
    )
    worker = run_worker(burst=False)  # registered from this machine, beating
    result = runner.invoke(main, ["workers", "--check"])
    # stdout alone: the worker running in this process may log to stderr meanwhile
    assert result.exit_code == 0 and result.stdout.strip() == (
        f"ok: 1 live worker processes on {socket.gethostname()}"
    ), result.output
    result = runner.invoke(main, ["workers", "--check", "--min", "2"])
    assert result.exit_code == 1 and "expected at least 2" in result.output
    result = runner.invoke(main, ["workers", "--check", "--host", "elsewhere"])
    assert result.exit_code == 1
    worker.threadsafe(worker.request_stop, "test over")
