"""Deploys with the `releases` strategy to a host over SSH: a real sshd on loopback
(tests/sshd.py) is the host, the system's `ssh` reaches it, the sample app runs there
and answers real HTTP; what fails (the host, its key, a hook, a check) says why in one
line and leaves the environment on its working release."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from steep.pipeline import deploys, hosts, logs, start_run
from steep.pipeline.config import SshSettings, load
from steep.settings import ConfigError, Settings
from tests.conftest import free_port, wait_for
from tests.pipeline_fixtures import definition, toml_value
from tests.sshd import keygen, sshd  # noqa: F401 (the fixture)

HERE = Path(__file__).parent
SECRET = "tok-5e1f9a0c77d2"


def _answer(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


def _ssh_settings(ci, **keys) -> None:
    """The CI server's [pipeline] ssh_* keys (these alone) in its steep.toml."""
    text = ci.config_path.read_text()
    kept = [line for line in text.splitlines(keepends=True) if not line.startswith("ssh_")]
    at = kept.index("[pipeline]\n") + 1
    kept[at:at] = [f"{k} = {toml_value(v)}\n" for k, v in keys.items()]
    ci.config_path.write_text("".join(kept))


@pytest.fixture
def host_shop(ci, sshd, tmp_path):  # noqa: F811 (the sshd fixture)
    """The sample app's repository with a staging environment on the "host" (sshd on
    loopback), the CI server holding the key and the host's key; the app stopped after."""
    port = free_port()
    path = tmp_path / "host" / "srv" / "staging"
    ci.configure(secrets=["SHOP_TOKEN"])
    ci.env["SHOP_TOKEN"] = SECRET
    _ssh_settings(ci, ssh_key=str(sshd.client_key), ssh_known_hosts=str(sshd.known_hosts))

    def files(version, **more):
        env = {
            "branch": "staging",
            "url": f"http://127.0.0.1:{port}",
            "strategy": "releases",
            "host": sshd.host,
            "path": str(path),
            "restart": "sh restart.sh",
            "health": "/health",
            "health_timeout": 3,
            "env": {"PORT": str(port), "GREETING": 'it\'s "quoted" $HOME `x` ; done'},
            **more.pop("env_more", {}),
        }
        text = definition([{"name": "tests", "run": "python3 -c 'import app'"}])
        text += "[pipeline.environments.staging]\n"
        text += "".join(f"{k} = {toml_value(v)}\n" for k, v in env.items())
        text += '[[pipeline.environments.staging.checks]]\nhttp = "/"\nexpect_text = "Shop v"\n'
        return {
            "steep.toml": text,
            "app.py": (HERE / "deploy_app.py").read_text(),
            "restart.sh": (HERE / "deploy_restart.sh").read_text(),
            "VERSION": f"{version}\n",
            **more,
        }

    yield port, path, files
    pidfile = path / "shared" / "app.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)


def _deploy(ci, ref="staging"):
    run = ci.wait(start_run("shop", ref, trigger="manual")[0], timeout=90)
    return run, deploys.history("shop", "staging")


def _log(run) -> str:
    return "\n".join(line for _, line in logs.read(run.id, "deploy-staging"))


def _first_release(ci, files) -> tuple[object, object]:
    ci.repo.commit(files(1), branch="staging")
    ci.repo.push("staging")
    ci.worker()
    run, history = _deploy(ci)
    assert run.state == "passed", (run.reason, [(s.name, s.state, s.reason) for s in run.steps])
    return run, history[0]


def test_a_green_branch_deploys_to_a_host_over_ssh(ci, host_shop, sshd):  # noqa: F811
    port, path, files = host_shop
    hook = f'echo "on the host: $STEEP_ENV $STEEP_SHA [$GREETING] {SECRET}"'
    ci.repo.commit(files(1, env_more={"release": hook}), branch="staging")
    ci.repo.push("staging")
    ci.worker()
    run, history = _deploy(ci)
    assert run.state == "passed", (run.reason, [(s.name, s.state, s.reason) for s in run.steps])
    assert _answer(port) == "Shop v1"
    first = history[0]
    assert [p.name for p in first.phases] == [
        "starting",
        "updating",
        "linking",
        "releasing",
        "publishing",
        "restarting",
        "finished",
    ]
    assert os.readlink(path / "current") == f"releases/{first.release}"
    log = _log(run)
    # the deploy's variables reached the host whole, quotes and all; the secret did not
    # reach the log
    assert f'on the host: staging {run.meta.sha} [it\'s "quoted" $HOME `x` ; done] ***' in log
    assert SECRET not in log
    assert f"restart (on {sshd.host}): sh restart.sh" in log
    ci.repo.commit({"VERSION": "2\n"})
    ci.repo.push("staging")
    run, history = _deploy(ci)
    assert run.state == "passed" and _answer(port) == "Shop v2"
    assert history[0].previous == first.release
    assert os.readlink(path / "current") == f"releases/{history[0].release}"
    assert sorted(p.name for p in (path / "releases").iterdir()) == sorted(
        [first.release, history[0].release]
    )
    assert deploys.state("shop", "staging")["release"] == history[0].release


def test_a_failing_health_check_rolls_back_on_the_host(ci, host_shop):
    port, path, files = host_shop
    good, v1 = _first_release(ci, files)
    ci.repo.commit({"BROKEN": "yes", "VERSION": "2\n"})
    ci.repo.push("staging")
    bad, history = _deploy(ci)
    assert bad.state == "failed"
    deploy = history[0]
    assert deploy.state == "rolled_back" and deploy.rolled_back_to == v1.release
    assert f"the checks failed; rolled back to {v1.release}" == deploy.reason
    assert os.readlink(path / "current") == f"releases/{v1.release}"
    wait_for(lambda: _answer(port) == "Shop v1", message="the old release answering")
    assert deploys.state("shop", "staging")["sha"] == good.meta.sha


def test_a_failing_release_hook_on_the_host_switches_nothing(ci, host_shop):
    port, path, files = host_shop
    _, v1 = _first_release(ci, files)
    layout = files(2, env_more={"release": "echo migrating on $(hostname); exit 4"})
    ci.repo.commit(layout)
    ci.repo.push("staging")
    run, history = _deploy(ci)
    assert run.state == "failed" and history[0].state == "failed"
    reason = history[0].reason
    assert reason == "the release command failed (exit code 4); nothing was switched"
    assert "migrating on" in _log(run)
    assert os.readlink(path / "current") == f"releases/{v1.release}"
    assert _answer(port) == "Shop v1"


def test_rollback_over_ssh_from_the_command_line(ci, host_shop):
    from tests.test_pipeline_cli import steep

    port, path, files = host_shop
    first, v1 = _first_release(ci, files)
    ci.repo.commit({"VERSION": "2\n"})
    ci.repo.push("staging")
    assert _deploy(ci)[0].state == "passed" and _answer(port) == "Shop v2"
    out = steep(ci, "rollback", "shop", "staging").stdout
    assert f"rolled back to {v1.release}" in out
    assert os.readlink(path / "current") == f"releases/{v1.release}"
    assert _answer(port) == "Shop v1"
    rolled = deploys.history("shop", "staging")[0]
    assert (rolled.trigger, rolled.state, rolled.sha) == ("rollback", "succeeded", first.meta.sha)
    missing = steep(ci, "rollback", "shop", "staging", "--release", "nope", check=False)
    assert missing.returncode == 2
    assert f"no release nope in {path}/releases on " in missing.stderr
    assert v1.release in missing.stderr  # what is kept there


def test_an_unreachable_host_fails_naming_it_and_switches_nothing(ci, host_shop, sshd):  # noqa: F811
    from tests.test_pipeline_cli import steep

    port, path, files = host_shop
    _, v1 = _first_release(ci, files)
    closed = free_port()
    gone = f"{sshd.user}@127.0.0.1:{closed}"
    ci.repo.commit({**files(2, env_more={"host": gone})})
    ci.repo.push("staging")
    run, history = _deploy(ci)
    assert run.state == "failed"
    reason = f"cannot reach {gone}: connection refused; nothing was switched"
    assert history[0].state == "failed" and history[0].reason == reason
    assert run.step("deploy-staging").reason == reason
    shown = json.loads(steep(ci, "history", "shop", "staging", "--json").stdout)["deploys"]
    assert shown[0]["reason"] == reason
    assert os.readlink(path / "current") == f"releases/{v1.release}"
    assert _answer(port) == "Shop v1"


def test_a_missing_key_file_is_named_before_connecting(ci, host_shop, sshd, tmp_path):  # noqa: F811
    _, path, files = host_shop
    nowhere = tmp_path / "keys" / "deploy_ed25519"
    _ssh_settings(ci, ssh_key=str(nowhere), ssh_known_hosts=str(sshd.known_hosts))
    ci.repo.commit(files(1), branch="staging")
    ci.repo.push("staging")
    ci.worker()
    before = sshd.connections()
    run, history = _deploy(ci)
    assert run.state == "failed"
    assert history[0].reason == (
        f"[pipeline] ssh_key: no such file {nowhere} (the CI server's steep.toml):"
        f" not connecting to {sshd.host}; nothing was switched"
    )
    assert sshd.connections() == before
    assert not path.exists()


def test_an_unknown_or_changed_host_key_is_refused(ci, host_shop, sshd, tmp_path):  # noqa: F811
    _, path, files = host_shop
    known = tmp_path / "ci-known-hosts"
    known.write_text("")
    _ssh_settings(ci, ssh_key=str(sshd.client_key), ssh_known_hosts=str(known))
    ci.repo.commit(files(1), branch="staging")
    ci.repo.push("staging")
    ci.worker()
    run, history = _deploy(ci)
    assert run.state == "failed"
    assert history[0].reason.startswith(
        f"the host key of {sshd.host} is unknown: not in {known} (add it with ssh-keyscan"
    )
    assert not path.exists()
    other = keygen(tmp_path / "another_host_key")
    known.write_text(sshd.known_hosts_line(other))
    run, history = _deploy(ci)
    assert run.state == "failed"
    assert history[0].reason.startswith(
        f"the host key of {sshd.host} has changed: it does not match {known}"
    )
    assert not path.exists()


def test_a_key_the_host_does_not_know_is_refused_plainly(ci, host_shop, sshd, tmp_path):  # noqa: F811
    _, path, files = host_shop
    stranger = keygen(tmp_path / "stranger_ed25519")
    _ssh_settings(ci, ssh_key=str(stranger), ssh_known_hosts=str(sshd.known_hosts))
    ci.repo.commit(files(1), branch="staging")
    ci.repo.push("staging")
    ci.worker()
    run, history = _deploy(ci)
    assert run.state == "failed"
    assert history[0].reason == (
        f"{sshd.host} refused the login with {stranger} (is its public key in the user's"
        " authorized_keys?); nothing was switched"
    )
    assert not path.exists()


def test_a_new_host_key_is_learned_when_the_server_says_so(ci, host_shop, sshd, tmp_path):  # noqa: F811
    port, _, files = host_shop
    known = tmp_path / "learned-known-hosts"
    _ssh_settings(
        ci,
        ssh_key=str(sshd.client_key),
        ssh_known_hosts=str(known),
        ssh_accept_new_host_keys=True,
    )
    _first_release(ci, files)
    assert _answer(port) == "Shop v1"
    assert (sshd.host_key.with_suffix(".pub").read_text().split()[1]) in known.read_text()


def test_a_deploy_whose_worker_is_killed_resumes_on_the_host(ci, host_shop, tmp_path):
    port, path, files = host_shop
    marker = tmp_path / "hook-ran"
    sleeper = tmp_path / "sleeper.pid"
    hook = (
        f"echo x >> {marker}; if [ $(wc -l < {marker}) -lt 2 ]; then"
        f" sleep 30 & echo $! > {sleeper}; wait; fi"
    )
    ci.repo.commit(files(1, env_more={"release": hook}), branch="staging")
    ci.repo.push("staging")
    worker = ci.worker()
    run_id = start_run("shop", "staging", trigger="manual")[0]

    def in_hook():
        history = deploys.history("shop", "staging")
        return history and history[0].done("linking") and sleeper.exists()

    try:
        wait_for(in_hook, timeout=60, message="the deploy's release hook to run on the host")
        worker.kill_tree()
        assert not (path / "current").exists()
        ci.worker()
        run = ci.wait(run_id, timeout=90)
    finally:
        with contextlib.suppress(ProcessLookupError, ValueError, FileNotFoundError):
            os.kill(int(sleeper.read_text()), signal.SIGTERM)
    assert run.state == "passed", run.reason
    deploy = deploys.history("shop", "staging")[0]
    names = [p.name for p in deploy.phases]
    assert names.count("updating") == 1  # resumed after linking, from the host's state
    assert names[-4:] == ["releasing", "publishing", "restarting", "finished"]
    assert os.readlink(path / "current") == f"releases/{deploy.release}"
    assert _answer(port) == "Shop v1"


# -- the commands, as data -------------------------------------------------------------


def test_the_ssh_command_line_never_prompts_and_checks_the_host_key(tmp_path):
    settings = SshSettings(key=tmp_path / "k", known_hosts=tmp_path / "kh", connect_timeout=7)
    argv = hosts.OverSsh("deploy@web1:2222", "/srv/shop", settings).argv("sh -s")
    assert argv[0] == "ssh" and argv[-3:] == ["--", "web1", "sh -s"]
    pairs = {argv[i + 1] for i, a in enumerate(argv) if a == "-o"}
    assert {"BatchMode=yes", "StrictHostKeyChecking=yes", "ConnectTimeout=7"} <= pairs
    assert f"UserKnownHostsFile={tmp_path / 'kh'}" in pairs
    assert argv[argv.index("-i") + 1] == str(tmp_path / "k")
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-l") + 1] == "deploy"
    learn = hosts.OverSsh("web1", "x", SshSettings(accept_new_host_keys=True)).argv("true")
    assert "StrictHostKeyChecking=accept-new" in learn and "-l" not in learn


def test_the_remote_script_quotes_every_value(tmp_path):
    nasty = "a'b\"c $(touch pwned) `touch pwned2`; rm -rf / \\ end\nsecond line"
    (tmp_path / "dir with space").mkdir()
    script = hosts.remote_script(
        'printf "%s|%s" "$VALUE" "$(pwd)"', str(tmp_path / "dir with space"), {"VALUE": nasty}
    )
    done = subprocess.run(["sh", "-s"], input=script.encode(), capture_output=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == f"{nasty}|{tmp_path / 'dir with space'}"
    assert not list(tmp_path.glob("pwned*"))
    with pytest.raises(hosts.DeployFailed, match="not a variable name"):
        hosts.remote_script("true", "/", {"A-B": "x"})


def test_the_ssh_settings_are_checked_naming_the_table():
    def fails(**keys) -> str:
        with pytest.raises(ConfigError) as caught:
            load(Settings(pipeline=keys))
        return str(caught.value)

    assert "[pipeline] 'ssh_key' must be a non-empty string" in fails(ssh_key=3)
    assert "[pipeline] 'ssh_connect_timeout' must be seconds >= 1" in fails(ssh_connect_timeout=0)
    assert "[pipeline] 'ssh_accept_new_host_keys' must be true or false" in fails(
        ssh_accept_new_host_keys="yes"
    )
    assert "'ssh_options': BatchMode is set by steep" in fails(ssh_options=["BatchMode=no"])
    assert "is not Name=value" in fails(ssh_options=["-v"])
    ssh = load(Settings(pipeline={"ssh_key": "~/k", "ssh_options": ["ServerAliveInterval=5"]})).ssh
    assert ssh.key == Path("~/k").expanduser() and ssh.options == ("ServerAliveInterval=5",)
    assert ssh.connect_timeout == 10 and ssh.accept_new_host_keys is False
